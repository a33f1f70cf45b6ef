"""The tenants service, called directly: a System Admin creates, changes, deactivates and activates
tenants, never deletes them; an Admin sees only the tenant they act in; codes and names are unique;
each change is recorded once, in the trail of the tenant it is about (issue 3 item 5, issue 8 item 7)."""

from __future__ import annotations

import secrets
import uuid

import pytest
from sqlalchemy import select

from mobility.audit.models import AuditLog
from mobility.core.errors import Conflict, NotFound
from mobility.core.pagination import PageParams
from mobility.core.scope import across_tenants
from mobility.tenants import service
from tests.support.admin_api import make_world
from tests.support.sessions import Db


def new_code() -> str:
    return f"S-{secrets.token_hex(3).upper()}"


async def trail_of(session, tenant_id: uuid.UUID) -> list[tuple[str, uuid.UUID, uuid.UUID, dict | None]]:
    """(action, tenant, actor, after) of every audit row about the tenant, oldest first."""
    async with across_tenants(session):
        rows = await session.execute(
            select(AuditLog).where(AuditLog.entity_id == tenant_id).order_by(AuditLog.id)
        )
        return [(row.action, row.tenant_id, row.actor_id, row.after) for row in rows.scalars()]


async def test_a_new_tenant_is_active_and_recorded_once_in_its_own_trail(db: Db) -> None:
    world = await make_world(db.url)
    code = new_code()
    async with db.acting(world.system_admin.scope()) as session:
        tenant = await service.create_tenant(
            session, name=f"Harbour {code}", code=code, branding={"colour": "teal"}, contact_info={}
        )
        trail = await trail_of(session, tenant.id)
        active = tenant.is_active
    assert active is True
    # Not in the trail of the tenant the System Admin acts in (world.tenant): in the new tenant's own.
    assert [(action, tenant_id, actor) for action, tenant_id, actor, _ in trail] == [
        ("tenant.create", tenant.id, world.system_admin.id)
    ]
    assert trail[0][3]["code"] == code


async def test_codes_and_names_are_unique(db: Db) -> None:
    world = await make_world(db.url)
    async with db.acting(world.system_admin.scope()) as session:
        with pytest.raises(Conflict) as same_code:
            await service.create_tenant(
                session, name=f"Another {new_code()}", code=world.other.code, branding={}, contact_info={}
            )
        with pytest.raises(Conflict) as same_name:
            await service.create_tenant(
                session, name=world.other.name.upper(), code=new_code(), branding={}, contact_info={}
            )
        with pytest.raises(Conflict) as renamed_to_taken:
            await service.update_tenant(session, world.tenant.id, {"name": world.other.name.lower()})
        # Its own name, in another case, is not someone else's.
        renamed = await service.update_tenant(session, world.tenant.id, {"name": world.tenant.name.upper()})
        assert renamed.name == world.tenant.name.upper()
    assert same_code.value.extra["field"] == "code"
    assert same_name.value.extra["field"] == "name"
    assert renamed_to_taken.value.extra["field"] == "name"


async def test_an_update_records_only_what_changed(db: Db) -> None:
    world = await make_world(db.url)
    async with db.acting(world.system_admin.scope()) as session:
        tenant = await service.create_tenant(
            session, name=f"Bay {new_code()}", code=new_code(), branding={"colour": "teal"}, contact_info={}
        )
        await service.update_tenant(
            session, tenant.id, {"name": f"Bay {new_code()}", "branding": {"colour": "teal"}}
        )
        trail = await trail_of(session, tenant.id)
        name = tenant.name
    assert [action for action, *_ in trail] == ["tenant.create", "tenant.update"]
    assert trail[1][3] == {"name": name}


async def test_deactivating_twice_changes_and_records_nothing_the_second_time(db: Db) -> None:
    world = await make_world(db.url)
    async with db.acting(world.system_admin.scope()) as session:
        first = (await service.set_active(session, world.other.id, False)).is_active
        second = (await service.set_active(session, world.other.id, False)).is_active
        back = (await service.set_active(session, world.other.id, True)).is_active
        actions = [(action, tenant_id) for action, tenant_id, *_ in await trail_of(session, world.other.id)]
    assert (first, second, back) == (False, False, True)
    # make_world's creation, then one deactivation and one activation, each in the tenant's own trail.
    assert actions[-2:] == [("tenant.deactivate", world.other.id), ("tenant.activate", world.other.id)]
    assert [action for action, _ in actions].count("tenant.deactivate") == 1


async def test_an_admin_sees_only_the_tenant_they_act_in(db: Db) -> None:
    world = await make_world(db.url)
    everything = PageParams(limit=100)
    async with db.acting(world.admin.scope()) as session:
        listed, _ = await service.list_tenants(session, params=everything)
        searched, _ = await service.list_tenants(session, params=everything, q=world.other.code)
        own = await service.get_tenant(session, world.tenant.id)
        assert own.id == world.tenant.id
        with pytest.raises(NotFound):
            await service.get_tenant(session, world.other.id)
        listed_ids = [tenant.id for tenant in listed]
    assert listed_ids == [world.tenant.id]
    assert searched == []


async def test_a_system_admin_sees_every_tenant(db: Db) -> None:
    world = await make_world(db.url)
    async with db.acting(world.system_admin.scope()) as session:
        other = await service.get_tenant(session, world.other.id)
        searched, _ = await service.list_tenants(session, params=PageParams(limit=100), q=world.other.code)
        found = (other.id, [tenant.id for tenant in searched])
    assert found == (world.other.id, [world.other.id])
