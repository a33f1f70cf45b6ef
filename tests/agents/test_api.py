"""Agents and brokers through the API, on both databases, from the attacker's side too.

Expected answers from issue 12 (part 1), "Bad input" and the permission table (tests/authz): staff
create and manage partners; a partner's own login reads and edits only its own record's contact
details (another partner's id: 404); a weaker role: 403; another tenant's id: 404; a duplicate code
or a partner still referred to: 409; invalid input: 422 problem+json naming the field.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from mobility.agents.models import Agent, Broker
from mobility.authz.permissions import SystemRole
from mobility.core.calendar import today
from mobility.users.models import UserTenant
from tests.support.admin_api import World, audit_of, call, make_world, one_audit_row, sign_in
from tests.support.app import api_client, problem
from tests.support.factories import make_candidate, make_user, unique
from tests.support.sessions import get_row, system_session


def code() -> str:
    return unique("ag-")  # typed in lower case, kept in upper case


@dataclass
class Partners:
    world: World
    agent_login: object
    recruiter: object
    headers: dict


async def _partners(url: str) -> Partners:
    world = await make_world(url)
    async with system_session(url) as session:
        agent_login = await make_user(session, world.tenant, SystemRole.agent)
        recruiter = await make_user(session, world.tenant, SystemRole.recruiter)
        for member in (agent_login, recruiter):
            world.tokens[member.id] = await sign_in(session, member, world.tenant)
    return Partners(world, agent_login, recruiter, world.auth(world.admin))


TERMS = {
    "type": "flat",
    "amount": "250.00",
    "currency": "FJD",
    "dueDays": 30,
    "overrides": {"AU": {"type": "percent", "percent": 5, "dueDays": 45}},
}


async def test_staff_create_a_partner_with_typed_terms(migrated_database_url: str) -> None:
    url = migrated_database_url
    p = await _partners(url)
    body = {
        "code": code(),
        "name": "Pacific Labour Hire",
        "country": "fj",
        "phone": "679 330 1234",
        "email": "Desk@Example.org",
        "licenceNumber": "RA/2023/045",
        "licenceExpiry": (today() + timedelta(days=20)).isoformat(),
        "paymentTerms": TERMS,
        "notes": "Met at the Suva fair",
        "userId": str(p.agent_login.id),
    }
    async with api_client(url) as client:
        response = await call(client, "POST", "/agents", p.headers, json=body)
        assert response.status_code == 201, response.text
        agent = response.json()
        assert agent["code"] == body["code"].upper()
        assert (agent["country"], agent["status"], agent["userId"]) == ("FJ", "active", str(p.agent_login.id))
        assert agent["phone"].startswith("+679")
        assert agent["paymentTerms"]["amount"] == "250.00"
        assert agent["paymentTerms"]["overrides"]["AU"] == {
            "type": "percent",
            "percent": "5.00",
            "dueDays": 45,
        }
        assert agent["licenceExpiresInDays"] == 20
        assert agent["notes"] == "Met at the Suva fair"
        row = (await audit_of(url, response))[0]
        await one_audit_row(
            url,
            response,
            action="agent.create",
            entity_type="agents",
            entity_id=agent["id"],
            actor=p.world.admin,
            tenant=p.world.tenant,
            before=None,
            after=row.after,
        )
        again = await call(client, "POST", "/agents", p.headers, json={**body, "userId": None})
        problem(again, 409, "conflict")
        assert again.json()["field"] == "code"
        for bad, field in (
            ({"paymentTerms": {**TERMS, "currency": "XXQ"}}, "paymentTerms"),
            ({"paymentTerms": {"type": "percent", "percent": 0, "dueDays": 1}}, "paymentTerms"),
            ({"country": "Fiji"}, "country"),
            ({"code": "no spaces"}, "code"),
            ({"licenceNumber": None, "licenceExpiry": "2030-01-01"}, None),
        ):
            response = await call(
                client, "POST", "/agents", p.headers, json={**body, "code": code(), "userId": None, **bad}
            )
            failure = problem(response, 422)
            if field:
                assert field in response.text, failure
        assert await get_row(url, Agent, agent["id"]) is not None


async def test_weaker_roles_and_other_tenants(migrated_database_url: str) -> None:
    url = migrated_database_url
    p = await _partners(url)
    async with api_client(url) as client:
        agent = (await call(client, "POST", "/agents", p.headers, json={"code": code(), "name": "A"})).json()
        trainer, recruiter = p.world.auth(p.world.trainer), p.world.auth(p.recruiter)
        problem(await call(client, "GET", "/agents", trainer), 403)
        problem(await call(client, "POST", "/agents", recruiter, json={"code": code(), "name": "B"}), 403)
        problem(
            await call(client, "POST", f"/agents/{agent['id']}/suspend", recruiter, json={"reason": "x"}), 403
        )
        read = await call(client, "GET", f"/agents/{agent['id']}", recruiter)
        assert read.status_code == 200 and read.json()["id"] == agent["id"]
        other = p.world.auth(p.world.other_admin)
        for method, path, body in (
            ("GET", f"/agents/{agent['id']}", None),
            ("PATCH", f"/agents/{agent['id']}", {"name": "Mine"}),
            ("POST", f"/agents/{agent['id']}/suspend", {"reason": "x"}),
            ("POST", f"/agents/{agent['id']}/deactivate", None),
            ("DELETE", f"/agents/{agent['id']}", None),
            ("GET", f"/brokers/{agent['id']}", None),
        ):
            problem(await call(client, method, path, other, json=body), 404)
        listed = await call(client, "GET", "/agents", other, params={"q": agent["code"]})
        assert listed.json()["items"] == []
    assert (await get_row(url, Agent, agent["id"])).name == "A"


async def test_a_partner_sees_and_edits_only_its_own_record(migrated_database_url: str) -> None:
    url = migrated_database_url
    p = await _partners(url)
    mine = {"code": code(), "name": "Mine", "userId": str(p.agent_login.id), "notes": "staff only"}
    async with api_client(url) as client:
        own = (await call(client, "POST", "/agents", p.headers, json=mine)).json()
        other = (
            await call(client, "POST", "/agents", p.headers, json={"code": code(), "name": "Other"})
        ).json()
        broker = (
            await call(client, "POST", "/brokers", p.headers, json={"code": code(), "name": "B"})
        ).json()
        me = p.world.auth(p.agent_login)
        read = await call(client, "GET", f"/agents/{own['id']}", me)
        assert read.status_code == 200 and read.json()["notes"] is None
        assert [item["id"] for item in (await call(client, "GET", "/agents", me)).json()["items"]] == [
            own["id"]
        ]
        problem(await call(client, "GET", f"/agents/{other['id']}", me), 404)
        problem(
            await call(client, "PATCH", f"/agents/{other['id']}", me, json={"email": "x@example.org"}), 404
        )
        problem(await call(client, "GET", f"/brokers/{broker['id']}", me), 403)
        changed = await call(client, "PATCH", f"/agents/{own['id']}", me, json={"email": "desk@example.org"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["email"] == "desk@example.org"
        rows = await audit_of(url, changed)
        assert [(row.action, row.actor_id, row.before["email"], row.after["email"]) for row in rows] == [
            ("agent.update", p.agent_login.id, None, "desk@example.org")
        ]
        for body in (
            {"licenceNumber": "RA 9"},
            {"name": "Better"},
            {"paymentTerms": TERMS},
            {"userId": None},
        ):
            refused = problem(await call(client, "PATCH", f"/agents/{own['id']}", me, json=body), 403)
            assert refused["code"] == "partner_fields_staff_only"
        for action in ("suspend", "deactivate", "reactivate"):
            problem(
                await call(
                    client,
                    "POST",
                    f"/agents/{own['id']}/{action}",
                    me,
                    json={"reason": "x"} if action == "suspend" else None,
                ),
                403,
            )
        problem(await call(client, "DELETE", f"/agents/{own['id']}", me), 403)
    stored = await get_row(url, Agent, own["id"])
    assert (stored.name, stored.licence_number, stored.status.value) == ("Mine", None, "active")


async def test_suspension_with_a_reason_and_the_status_actions(migrated_database_url: str) -> None:
    url = migrated_database_url
    p = await _partners(url)
    async with api_client(url) as client:
        broker = (
            await call(client, "POST", "/brokers", p.headers, json={"code": code(), "name": "B"})
        ).json()
        path = f"/brokers/{broker['id']}"
        problem(await call(client, "POST", f"{path}/suspend", p.headers, json={}), 422)
        problem(await call(client, "POST", f"{path}/suspend", p.headers, json={"reason": ""}), 422)
        suspended = await call(
            client, "POST", f"{path}/suspend", p.headers, json={"reason": "Licence under review"}
        )
        assert suspended.status_code == 200, suspended.text
        body = suspended.json()
        assert (body["status"], body["suspensionReason"], body["suspendedBy"]) == (
            "suspended",
            "Licence under review",
            str(p.world.admin.id),
        )
        rows = await audit_of(url, suspended)
        assert [(row.action, row.after["status"]) for row in rows] == [("broker.suspend", "suspended")]
        problem(
            await call(client, "POST", f"{path}/suspend", p.headers, json={"reason": "again"}),
            409,
            "partner_status",
        )
        listed = await call(
            client, "GET", "/brokers", p.headers, params={"status": "suspended", "q": broker["code"]}
        )
        assert [item["id"] for item in listed.json()["items"]] == [broker["id"]]
        back = await call(client, "POST", f"{path}/reactivate", p.headers)
        assert (back.json()["status"], back.json()["suspensionReason"]) == ("active", None)
        off = await call(client, "POST", f"{path}/deactivate", p.headers)
        assert off.json()["status"] == "inactive"
        problem(await call(client, "POST", f"{path}/deactivate", p.headers), 409, "partner_status")


async def test_delete_only_what_nothing_refers_to(migrated_database_url: str) -> None:
    url = migrated_database_url
    p = await _partners(url)
    async with api_client(url) as client:
        used = (
            await call(client, "POST", "/agents", p.headers, json={"code": code(), "name": "Used"})
        ).json()
        unused = (
            await call(client, "POST", "/agents", p.headers, json={"code": code(), "name": "Unused"})
        ).json()
        async with system_session(url) as session:
            await make_candidate(session, p.world.tenant, agent_id=uuid.UUID(used["id"]))
        refused = problem(
            await call(client, "DELETE", f"/agents/{used['id']}", p.headers), 409, "partner_in_use"
        )
        assert refused["references"] == {"candidates": 1} and "candidates" in refused["detail"]
        assert (
            await audit_of(
                url, refused_response := await call(client, "DELETE", f"/agents/{used['id']}", p.headers)
            )
            == []
        )
        assert refused_response.status_code == 409
        gone = await call(client, "DELETE", f"/agents/{unused['id']}", p.headers)
        assert gone.status_code == 204
        assert [row.action for row in await audit_of(url, gone)] == ["agent.delete"]
        problem(await call(client, "GET", f"/agents/{unused['id']}", p.headers), 404)
    assert await get_row(url, Agent, used["id"]) is not None


async def test_the_list_shows_licences_expiring_soon(migrated_database_url: str) -> None:
    url = migrated_database_url
    p = await _partners(url)
    mark = unique("zz")
    day = today()
    expiries = {"soon": 10, "later": 120, "gone": -3}
    ids = {}
    async with api_client(url) as client:
        for name, days in expiries.items():
            body = {
                "code": code(),
                "name": f"{name} {mark}",
                "licenceNumber": "RA 1",
                "licenceExpiry": (day + timedelta(days=days)).isoformat(),
            }
            ids[name] = (await call(client, "POST", "/brokers", p.headers, json=body)).json()["id"]
        soon = await call(
            client, "GET", "/brokers", p.headers, params={"q": mark, "licenceExpiringWithin": 30}
        )
        assert [(item["id"], item["licenceExpiresInDays"]) for item in soon.json()["items"]] == [
            (ids["soon"], 10)
        ]
        expired = await call(
            client, "GET", "/brokers", p.headers, params={"q": mark, "licenceExpired": "true"}
        )
        assert [(item["id"], item["licenceExpiresInDays"]) for item in expired.json()["items"]] == [
            (ids["gone"], -3)
        ]
        problem(await call(client, "GET", "/brokers", p.headers, params={"licenceExpiringWithin": -1}), 422)
        problem(await call(client, "GET", "/brokers", p.headers, params={"sort": "licence"}), 422)
        problem(await call(client, "GET", "/brokers", p.headers, params={"cursor": "garbage"}), 422)
    assert await get_row(url, Broker, ids["soon"]) is not None


async def test_a_deactivated_partners_login_loses_access_until_reactivated(
    migrated_database_url: str,
) -> None:
    """Deactivating a partner ends the relationship: its login's sessions in the tenant end and it can
    read none of the partner's candidates; a suspended partner still reads them (it only may not
    register); reactivating gives the login back its membership."""
    url = migrated_database_url
    p = await _partners(url)
    async with api_client(url) as client:
        agent = (
            await call(
                client,
                "POST",
                "/agents",
                p.headers,
                json={"code": code(), "name": "Own login", "userId": str(p.agent_login.id)},
            )
        ).json()
        async with system_session(url) as session:
            await make_candidate(session, p.world.tenant, agent_id=uuid.UUID(agent["id"]))
        own = p.world.auth(p.agent_login)
        assert len((await call(client, "GET", "/candidates", own)).json()["items"]) == 1
        path = f"/agents/{agent['id']}"
        await call(client, "POST", f"{path}/suspend", p.headers, json={"reason": "Licence under review"})
        assert len((await call(client, "GET", "/candidates", own)).json()["items"]) == 1
        await call(client, "POST", f"{path}/deactivate", p.headers)
        assert (await call(client, "GET", "/candidates", own)).status_code == 401
        assert await _membership_status(url, p) == "suspended"
        # Signing in again gives no access to the tenant either.
        async with system_session(url) as session:
            token = await sign_in(session, p.agent_login, p.world.tenant)
        assert (
            await call(client, "GET", "/candidates", {"Authorization": f"Bearer {token}"})
        ).status_code in (
            401,
            403,
        )
        await call(client, "POST", f"{path}/reactivate", p.headers)
        assert await _membership_status(url, p) == "active"
        async with system_session(url) as session:
            token = await sign_in(session, p.agent_login, p.world.tenant)
        again = await call(client, "GET", "/candidates", {"Authorization": f"Bearer {token}"})
        assert len(again.json()["items"]) == 1


async def _membership_status(url: str, p: Partners) -> str:
    async with system_session(url) as session:
        return await session.scalar(
            select(UserTenant.status).where(
                UserTenant.user_id == p.agent_login.user.id, UserTenant.tenant_id == p.world.tenant.id
            )
        )
