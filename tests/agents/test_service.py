"""Agents and brokers at the service layer (agents/service.py), on both databases, as the API acts.

Expected answers come from the rules of issue 12 (part 1) as the service's docstring states them:
code unique per tenant; a linked login holds the kind's role in the tenant, one record per login; a
partner's own login changes only its contact details; suspend from active with a reason; reactivate
clears it; delete only when nothing refers; the licensing rule (active, a licence number, expiry not
before today).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from mobility.agents import service
from mobility.agents.models import Agent, Broker, PartnerStatus
from mobility.agents.schemas import PartnerListParams
from mobility.authz.permissions import SystemRole
from mobility.core.calendar import today
from mobility.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from tests.support.factories import make_candidate, make_tenant, make_user, unique
from tests.support.sessions import Db, scope_of, system_session


async def _world(db: Db):
    async with system_session(db.url) as session:
        tenant, other = await make_tenant(session), await make_tenant(session)
        admin = await make_user(session, tenant, SystemRole.admin)
        other_admin = await make_user(session, other, SystemRole.admin)
        agent_login = await make_user(session, tenant, SystemRole.agent)
        broker_login = await make_user(session, tenant, SystemRole.broker)
        other_agent_login = await make_user(session, other, SystemRole.agent)
    return tenant, other, admin, other_admin, agent_login, broker_login, other_agent_login


def _staff(tenant, admin):
    return scope_of(tenant.id, admin.id, SystemRole.admin)


async def _make(db: Db, tenant, model=Agent, **values) -> uuid.UUID:
    async with system_session(db.url) as session:
        values.setdefault("code", unique("P-").upper().replace("_", "-")[:32])
        values.setdefault("name", "Pacific Labour Hire")
        partner = model(tenant_id=tenant.id, **values)
        session.add(partner)
        await session.flush()
        return partner.id


async def test_code_is_unique_per_tenant_only(db: Db) -> None:
    tenant, other, admin, other_admin, *_ = await _world(db)
    code = unique("AG-").upper().replace("_", "-")[:32]
    await _make(db, tenant, code=code)
    async with db.acting(_staff(tenant, admin)) as session:
        with pytest.raises(Conflict) as caught:
            await service.create_partner(session, Agent, {"code": code, "name": "Again"})
        assert caught.value.extra["field"] == "code"
        # A broker may carry an agent's code: the kinds are separate lists.
        broker = await service.create_partner(session, Broker, {"code": code, "name": "Broker"})
        assert broker.code == code
    async with db.acting(_staff(other, other_admin)) as session:
        agent = await service.create_partner(session, Agent, {"code": code, "name": "Elsewhere"})
        assert (agent.tenant_id, agent.status) == (other.id, PartnerStatus.active)


async def test_a_login_holds_the_kinds_role_in_the_tenant_and_links_one_record(db: Db) -> None:
    tenant, other, admin, other_admin, agent_login, broker_login, other_agent_login = await _world(db)
    async with db.acting(_staff(tenant, admin)) as session:
        for user_id in (admin.id, broker_login.id, other_agent_login.id, uuid.uuid4()):
            with pytest.raises(InvalidInput) as caught:
                await service.create_partner(
                    session, Agent, {"code": unique("X").upper()[:30], "name": "A", "user_id": user_id}
                )
            assert caught.value.extra["field"] == "userId"
        first = await service.create_partner(
            session, Agent, {"code": unique("A").upper()[:30], "name": "A", "user_id": agent_login.id}
        )
        assert first.user_id == agent_login.id
        with pytest.raises(Conflict):
            await service.create_partner(
                session, Agent, {"code": unique("B").upper()[:30], "name": "B", "user_id": agent_login.id}
            )
        broker = await service.create_partner(
            session, Broker, {"code": unique("C").upper()[:30], "name": "C", "user_id": broker_login.id}
        )
        assert broker.user_id == broker_login.id


async def test_a_partner_changes_only_its_own_contact_details(db: Db) -> None:
    tenant, other, admin, other_admin, agent_login, *_ = await _world(db)
    own = await _make(db, tenant, user_id=agent_login.id, licence_number="RA/1")
    someone_else = await _make(db, tenant)
    scope = scope_of(tenant.id, agent_login.id, SystemRole.agent, agent_id=own)
    async with db.acting(scope) as session:
        changed = await service.update_partner(
            session, Agent, own, {"email": "desk@example.org", "contact_name": "Mele"}
        )
        assert (changed.email, changed.contact_name) == ("desk@example.org", "Mele")
        for changes in (
            {"licence_expiry": today() + timedelta(days=400)},
            {"notes": "x"},
            {"code": "MINE"},
            {"user_id": None},
        ):
            with pytest.raises(Forbidden):
                await service.update_partner(session, Agent, own, changes)
        with pytest.raises(NotFound):
            await service.update_partner(session, Agent, someone_else, {"email": "x@example.org"})
        with pytest.raises(NotFound):
            await service.suspend_partner(session, Agent, someone_else, reason="no")
        assert not service.sees_notes(session, Agent)
    async with db.acting(_staff(tenant, admin)) as session:
        assert service.sees_notes(session, Agent)


async def test_an_expiry_needs_a_licence_number(db: Db) -> None:
    tenant, other, admin, *_ = await _world(db)
    partner_id = await _make(db, tenant)
    async with db.acting(_staff(tenant, admin)) as session:
        with pytest.raises(InvalidInput):
            await service.update_partner(session, Agent, partner_id, {"licence_expiry": today()})
        partner = await service.update_partner(
            session, Agent, partner_id, {"licence_number": "RA 12", "licence_expiry": today()}
        )
        assert partner.licence_expiry == today()


async def test_suspend_reactivate_deactivate(db: Db) -> None:
    tenant, other, admin, *_ = await _world(db)
    partner_id = await _make(db, tenant)
    async with db.acting(_staff(tenant, admin)) as session:
        with pytest.raises(Conflict):
            await service.reactivate_partner(session, Agent, partner_id)
        partner = await service.suspend_partner(session, Agent, partner_id, reason="Licence under review")
        assert partner.status == PartnerStatus.suspended
        assert (partner.suspension_reason, partner.suspended_by) == ("Licence under review", admin.id)
        assert partner.suspended_at is not None
        with pytest.raises(Conflict):
            await service.suspend_partner(session, Agent, partner_id, reason="again")
        partner = await service.reactivate_partner(session, Agent, partner_id)
        assert (partner.status, partner.suspension_reason, partner.suspended_at, partner.suspended_by) == (
            PartnerStatus.active,
            None,
            None,
            None,
        )
        partner = await service.deactivate_partner(session, Agent, partner_id)
        assert partner.status == PartnerStatus.inactive
        with pytest.raises(Conflict):
            await service.deactivate_partner(session, Agent, partner_id)
        with pytest.raises(Conflict):
            await service.suspend_partner(session, Agent, partner_id, reason="inactive already")


async def test_delete_only_when_nothing_refers(db: Db) -> None:
    tenant, other, admin, *_ = await _world(db)
    used, unused = await _make(db, tenant), await _make(db, tenant, model=Broker)
    async with system_session(db.url) as session:
        await make_candidate(session, tenant, agent_id=used)
    async with db.acting(_staff(tenant, admin)) as session:
        with pytest.raises(service.PartnerInUse) as caught:
            await service.delete_partner(session, Agent, used)
        assert caught.value.extra["references"] == {"candidates": 1}
        assert "candidates" in caught.value.detail
        await service.delete_partner(session, Broker, unused)
        with pytest.raises(NotFound):
            await service.get_partner(session, Broker, unused)


async def test_another_tenants_partner_does_not_exist(db: Db) -> None:
    tenant, other, admin, other_admin, *_ = await _world(db)
    theirs = await _make(db, other, licence_number="RA 1")
    async with db.acting(_staff(tenant, admin)) as session:
        for act in (
            service.get_partner(session, Agent, theirs),
            service.update_partner(session, Agent, theirs, {"name": "Mine"}),
            service.suspend_partner(session, Agent, theirs, reason="x"),
            service.deactivate_partner(session, Agent, theirs),
            service.reactivate_partner(session, Agent, theirs),
            service.delete_partner(session, Agent, theirs),
        ):
            with pytest.raises(NotFound):
                await act
        with pytest.raises(InvalidInput) as caught:
            await service.ensure_can_register(session, agent_id=theirs)
        assert caught.value.extra["field"] == "agentId"


async def test_the_licensing_rule(db: Db) -> None:
    tenant, other, admin, *_ = await _world(db)
    day = today()
    licensed = await _make(db, tenant, licence_number="RA 1", licence_expiry=day)  # valid through today
    no_expiry = await _make(db, tenant, model=Broker, licence_number="BR 1")
    expired = await _make(db, tenant, licence_number="RA 2", licence_expiry=day - timedelta(days=1))
    unlicensed = await _make(db, tenant)
    suspended = await _make(db, tenant, licence_number="RA 3", status=PartnerStatus.suspended)
    inactive = await _make(db, tenant, model=Broker, licence_number="BR 2", status=PartnerStatus.inactive)
    async with db.acting(_staff(tenant, admin)) as session:
        await service.ensure_can_register(session, agent_id=licensed, broker_id=no_expiry)
        await service.ensure_can_register(session)
        for kwargs, error in (
            ({"agent_id": expired}, service.PartnerUnlicensed),
            ({"agent_id": unlicensed}, service.PartnerUnlicensed),
            ({"agent_id": suspended}, service.PartnerNotActive),
            ({"agent_id": licensed, "broker_id": inactive}, service.PartnerNotActive),
        ):
            with pytest.raises(error) as caught:
                await service.ensure_can_register(session, **kwargs)
            assert caught.value.status == 409


async def test_list_filters_and_pages(db: Db) -> None:
    tenant, other, admin, other_admin, *_ = await _world(db)
    day = today()
    mark = unique("zq").lower()
    soon = await _make(
        db,
        tenant,
        name=f"Soon {mark}",
        licence_number="1",
        licence_expiry=day + timedelta(days=10),
        country="FJ",
    )
    later = await _make(
        db,
        tenant,
        name=f"Later {mark}",
        licence_number="2",
        licence_expiry=day + timedelta(days=200),
        country="TO",
    )
    gone = await _make(
        db,
        tenant,
        name=f"Gone {mark}",
        licence_number="3",
        licence_expiry=day - timedelta(days=1),
        country="FJ",
    )
    none = await _make(db, tenant, name=f"None {mark}", status=PartnerStatus.suspended)
    await _make(db, other, name=f"Theirs {mark}", licence_number="4", licence_expiry=day)

    async def ids(**filters) -> set[uuid.UUID]:
        rows, _ = await service.list_partners(
            session, Agent, params=PartnerListParams(**{"q": mark, "limit": 100, **filters})
        )
        return {row.id for row in rows}

    async with db.acting(_staff(tenant, admin)) as session:
        assert await ids() == {soon, later, gone, none}
        assert await ids(q=mark.upper()) == {soon, later, gone, none}
        assert await ids(licence_expiring_within=30) == {soon}
        assert await ids(licence_expiring_within=365) == {soon, later}
        assert await ids(licence_expired=True) == {gone}
        assert await ids(licence_expired=False) == {soon, later, none}
        assert await ids(status=PartnerStatus.suspended) == {none}
        assert await ids(country="FJ") == {soon, gone}
        seen, cursor = [], None
        while True:
            rows, cursor = await service.list_partners(
                session, Agent, params=PartnerListParams(q=mark, limit=1, cursor=cursor, sort="-name")
            )
            seen += [row.name for row in rows]
            if cursor is None:
                break
        assert seen == sorted(seen, reverse=True) and len(seen) == 4
