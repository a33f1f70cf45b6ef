"""Writes that meet a concurrent twin (PostgreSQL, the API as the app role, real connections): 20 of the
same request at once each get a success or a documented 4xx, never a 500, and the data and the audit
trail say exactly what the successes did.

The requests run concurrently in one event loop on the app's own pools (15 ORM connections, 4 read
connections), so the database sees up to 19 transactions at once, as it would from 20 clients.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter

import pytest
from sqlalchemy import func, select

from mobility.audit.models import AuditLog
from mobility.auth.models import LoginThrottle
from mobility.authz.permissions import SystemRole
from mobility.roles.models import Role
from mobility.settings.models import Setting
from mobility.tenants.models import Tenant
from mobility.users import service as users_service
from mobility.users.models import User, UserInvitation, UserTenant
from tests.support.admin_api import make_world
from tests.support.app import api_client, login
from tests.support.factories import PASSWORD, make_user, system_role, unique
from tests.support.sessions import system_session

pytestmark = pytest.mark.postgres_only
TWINS = 20


async def _twenty(send) -> list:
    """`send(i)` for i in 0..19, all at once; the responses, in order."""
    return await asyncio.gather(*(send(i) for i in range(TWINS)))


def _statuses(responses) -> Counter:
    for response in responses:
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return Counter(response.status_code for response in responses)


async def _count(url: str, statement) -> int:
    async with system_session(url) as session:
        return (await session.execute(statement)).scalar_one()


async def test_a_setting_set_for_the_first_time_by_twenty_at_once(
    backend, migrated_database_url: str
) -> None:
    """The key is not set yet: every request succeeds, one after the other; one row; the trail has one
    entry per request, whose before/after chain from nothing to the value that stayed."""
    url = migrated_database_url
    world = await make_world(url)
    key = "placements.passportValidityMonths"
    async with api_client(url) as client:
        responses = await _twenty(
            lambda i: client.put(
                f"/api/v1/settings/{key}", headers=world.auth(world.admin), json={"value": i}
            )
        )
    assert _statuses(responses) == {200: TWINS}, [r.text for r in responses if r.status_code != 200]
    async with system_session(url) as session:
        rows = list(
            (
                await session.execute(
                    select(Setting).where(Setting.tenant_id == world.tenant.id, Setting.key == key)
                )
            ).scalars()
        )
        trail = list(
            (
                await session.execute(
                    select(AuditLog)
                    .where(AuditLog.tenant_id == world.tenant.id, AuditLog.entity_type == "settings")
                    .order_by(AuditLog.created_at, AuditLog.id)
                )
            ).scalars()
        )
    assert len(rows) == 1
    assert len(trail) == TWINS
    assert {row.action for row in trail} == {"setting.update"}
    assert trail[0].before is None and trail[0].after["key"] == key
    values = [trail[0].after["value"]] + [row.after["value"] for row in trail[1:]]
    assert [row.before["value"] for row in trail[1:]] == values[:-1]  # each change saw the one before
    assert sorted(values) == list(range(TWINS))
    assert rows[0].value == values[-1]


async def test_one_role_name_created_by_twenty_at_once(backend, migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    name = unique("Coordinator ")
    async with api_client(url) as client:
        responses = await _twenty(
            lambda _i: client.post("/api/v1/roles", headers=world.auth(world.admin), json={"name": name})
        )
    assert _statuses(responses) == {201: 1, 409: TWINS - 1}
    assert await _count(url, select(func.count()).select_from(Role).where(Role.name == name)) == 1
    assert (
        await _count(
            url,
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "role.create", AuditLog.tenant_id == world.tenant.id),
        )
        == 1
    )


async def test_one_tenant_code_created_by_twenty_at_once(backend, migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    code = "T" + secrets.token_hex(4).upper()
    async with api_client(url) as client:
        responses = await _twenty(
            lambda i: client.post(
                "/api/v1/tenants",
                headers=world.auth(world.system_admin),
                json={"name": f"Institute {code} {i}", "code": code},
            )
        )
    assert _statuses(responses) == {201: 1, 409: TWINS - 1}
    assert await _count(url, select(func.count()).select_from(Tenant).where(Tenant.code == code)) == 1


async def test_one_new_email_invited_by_twenty_at_once(backend, migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    email = f"{unique('twin-')}@example.org"
    async with system_session(url) as session:
        trainer = (await system_role(session, SystemRole.trainer)).id
    async with api_client(url) as client:
        responses = await _twenty(
            lambda _i: client.post(
                "/api/v1/users",
                headers=world.auth(world.admin),
                json={"email": email, "name": "Twin", "roleId": str(trainer)},
            )
        )
    assert _statuses(responses) == {201: 1, 409: TWINS - 1}
    assert await _count(url, select(func.count()).select_from(User).where(User.email == email)) == 1


async def test_one_existing_account_added_to_a_tenant_by_twenty_at_once(
    backend, migrated_database_url: str
) -> None:
    """The account belongs to another tenant: one pending invitation is made, the others meet it."""
    url = migrated_database_url
    world = await make_world(url)
    async with system_session(url) as session:
        elsewhere = await make_user(session, world.other, SystemRole.trainer)
        trainer = (await system_role(session, SystemRole.trainer)).id
    async with api_client(url) as client:
        responses = await _twenty(
            lambda _i: client.post(
                "/api/v1/users",
                headers=world.auth(world.admin),
                json={"email": elsewhere.email, "name": "Twin", "roleId": str(trainer)},
            )
        )
    assert _statuses(responses) == {201: 1, 409: TWINS - 1}
    invitations = (
        select(func.count()).select_from(UserInvitation).where(UserInvitation.user_id == elsewhere.id)
    )
    assert await _count(url, invitations) == 1
    memberships = select(func.count()).select_from(UserTenant).where(UserTenant.user_id == elsewhere.id)
    assert await _count(url, memberships) == 1  # until its owner accepts


async def test_one_pending_invitation_accepted_by_its_owner_twenty_times_at_once(
    backend, migrated_database_url: str
) -> None:
    """One membership is made; the other nineteen find the invitation answered (404)."""
    url = migrated_database_url
    world = await make_world(url)
    async with system_session(url) as session:
        elsewhere = await make_user(session, world.other, SystemRole.trainer)
        trainer = (await system_role(session, SystemRole.trainer)).id
    async with api_client(url) as client:
        invited = await client.post(
            "/api/v1/users",
            headers=world.auth(world.admin),
            json={"email": elsewhere.email, "name": "Twin", "roleId": str(trainer)},
        )
        headers = await login(client, elsewhere.email, elsewhere.password)
        responses = await _twenty(
            lambda _i: client.post(f"/api/v1/me/invitations/{invited.json()['id']}/accept", headers=headers)
        )
    assert _statuses(responses) == {204: 1, 404: TWINS - 1}
    memberships = select(func.count()).select_from(UserTenant).where(UserTenant.user_id == elsewhere.id)
    assert await _count(url, memberships) == 2


async def test_one_invitation_accepted_by_twenty_at_once(backend, migrated_database_url: str) -> None:
    """The token sets the password once: one 204, the others find it used (410)."""
    url = migrated_database_url
    world = await make_world(url)
    async with system_session(url) as session:
        trainer = (await system_role(session, SystemRole.trainer)).id
    async with api_client(url) as client:
        invited = await client.post(
            "/api/v1/users",
            headers=world.auth(world.admin),
            json={"email": f"{unique('accept-')}@example.org", "name": "Invitee", "roleId": str(trainer)},
        )
        async with system_session(url) as session:
            token = await users_service.issue_invitation_link(
                session, email=invited.json()["email"], tenant_code=world.tenant.code
            )
            account_id = (
                await session.execute(select(User.id).where(User.email == invited.json()["email"]))
            ).scalar_one()
        responses = await _twenty(
            lambda i: client.post(
                "/api/v1/invitations/accept", json={"token": token, "password": f"{PASSWORD}-{i}"}
            )
        )
    assert _statuses(responses) == {204: 1, 410: TWINS - 1}
    accepts = (
        select(func.count())
        .select_from(AuditLog)
        .where(
            AuditLog.action == "invitation.accept",
            AuditLog.entity_type == "users",
            AuditLog.entity_id == account_id,
        )
    )
    assert await _count(url, accepts) == 1


async def test_twenty_wrong_passwords_at_once_count_one_by_one(backend, migrated_database_url: str) -> None:
    """The login throttle's counter is an upsert held until the attempt ends: 20 wrong passwords sent at
    once are judged one by one, so every one answered 401 is counted (none lost to a concurrent
    update), and once the free ones are used up the others are refused unjudged (429). (How many get
    judged after the free 5 depends on when the 1 s lockout ends: at least 5.)"""
    url = migrated_database_url
    async with system_session(url) as session:
        world_tenant = (await make_world(url)).tenant
        member = await make_user(session, world_tenant, SystemRole.trainer)
    async with api_client(url, login_free_failures=5) as client:
        responses = await _twenty(
            lambda _i: client.post(
                "/api/v1/auth/login", json={"email": member.email, "password": "wrong-" + PASSWORD}
            )
        )
    statuses = _statuses(responses)
    assert set(statuses) == {401, 429} and statuses[401] >= 5, statuses
    async with system_session(url) as session:
        counter = (
            await session.execute(select(LoginThrottle).where(LoginThrottle.key == f"account:{member.email}"))
        ).scalar_one()
    assert counter.failures == statuses[401]


async def test_twenty_logins_of_one_account_at_once(backend, migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with api_client(url) as client:
        responses = await _twenty(
            lambda _i: client.post(
                "/api/v1/auth/login", json={"email": world.trainer.email, "password": PASSWORD}
            )
        )
    assert _statuses(responses) == {200: TWINS}
    assert len({response.json()["token"] for response in responses}) == TWINS


async def test_one_user_renamed_by_twenty_at_once(backend, migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with api_client(url) as client:
        responses = await _twenty(
            lambda i: client.patch(
                f"/api/v1/users/{world.trainer.id}",
                headers=world.auth(world.system_admin),
                json={"name": f"Name {i}"},
            )
        )
    assert _statuses(responses) == {200: TWINS}
    trail = (
        select(func.count())
        .select_from(AuditLog)
        .where(AuditLog.action == "user.update", AuditLog.entity_id == world.trainer.id)
    )
    assert await _count(url, trail) == TWINS


async def test_one_member_removed_by_twenty_at_once(backend, migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with api_client(url) as client:
        responses = await _twenty(
            lambda _i: client.delete(
                f"/api/v1/users/{world.trainer.id}/membership", headers=world.auth(world.admin)
            )
        )
    statuses = _statuses(responses)
    assert statuses[204] == 1 and set(statuses) <= {204, 404, 409}, statuses
    removals = (
        select(func.count())
        .select_from(AuditLog)
        .where(AuditLog.action == "membership.remove", AuditLog.entity_type == "user_tenants")
        .where(AuditLog.tenant_id == world.tenant.id)
    )
    assert await _count(url, removals) == 1


async def test_two_admins_removing_each_other_at_once_leave_one(backend, migrated_database_url: str) -> None:
    """A tenant keeps an active Admin: with two, each removing the other at once (20 times over), one
    removal wins and the other is refused, never both."""
    url = migrated_database_url
    world = await make_world(url)
    async with system_session(url) as session:
        second = await make_user(session, world.tenant, SystemRole.admin)
        from tests.support.admin_api import sign_in

        token = await sign_in(session, second, world.tenant)
    first_headers = world.auth(world.admin)
    second_headers = {"Authorization": f"Bearer {token}"}
    # Only the two of them are Admins of this tenant (make_world's System Admin holds the global role).
    async with api_client(url) as client:
        responses = await _twenty(
            lambda i: client.delete(
                f"/api/v1/users/{second.id if i % 2 else world.admin.id}/membership",
                headers=first_headers if i % 2 else second_headers,
            )
        )
    statuses = _statuses(responses)
    assert statuses[204] == 1 and set(statuses) <= {204, 401, 404, 409}, statuses
    admins = (
        select(func.count())
        .select_from(UserTenant)
        .join(Role, Role.id == UserTenant.role_id)
        .where(UserTenant.tenant_id == world.tenant.id, Role.name == SystemRole.admin.value)
    )
    assert await _count(url, admins) == 1
