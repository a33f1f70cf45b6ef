"""Accepting an invitation: the token sets the password once; expired, used or unknown tokens do not."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

from sqlalchemy import select

from mobility.core.models import utcnow
from mobility.core.permissions import SystemRole
from mobility.users.models import User, UserInvitation
from tests.factories import system_role, system_session
from tests.support.admin_api import assert_row, audit_of, call, get_row, make_world, problem
from tests.support.app import api_client, login

ACCEPT = "/invitations/accept"


async def invite(client, world, email: str | None = None, headers=None) -> tuple[str, str]:
    """Invite someone as Trainer of the world's tenant; returns (user id, token)."""
    async with system_session(world.url) as session:
        trainer_role = (await system_role(session, SystemRole.trainer)).id
    response = await client.post(
        "/api/v1/users",
        headers=headers or world.auth(world.admin),
        json={
            "email": email or f"new-{secrets.token_hex(4)}@example.org",
            "name": "New Member",
            "roleId": str(trainer_role),
        },
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["user"]["id"]), response.json()["invitation"]["token"]


def new_password() -> str:
    return secrets.token_urlsafe(12)


async def test_accepting_sets_the_password_once(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    password = new_password()
    async with api_client(url) as client:
        user_id, token = await invite(client, world)
        accepted = await call(client, "POST", ACCEPT, {}, json={"token": token, "password": password})
        account = await get_row(url, User, user_id)
        headers = await login(client, account.email, password)
        me = await client.get("/api/v1/me", headers=headers)
        reused = await call(client, "POST", ACCEPT, {}, json={"token": token, "password": new_password()})
    assert accepted.status_code == 204, accepted.text
    assert account.status == "active" and account.password_changed_at is not None
    assert me.json()["tenantId"] == str(world.tenant.id) and me.json()["role"] == "Trainer"

    rows = await audit_of(url, accepted)
    assert sorted((row.entity_type, sorted(row.after)) for row in rows) == [
        ("user_invitations", ["acceptedAt", "updatedBy"]),
        ("users", ["passwordChangedAt", "passwordHash", "status", "updatedBy"]),
    ]
    for row in rows:
        # The invitee acts, in the tenant that invited them.
        assert_row(
            row,
            action="invitation.accept",
            entity_type=row.entity_type,
            entity_id=row.entity_id,
            actor=account,
            tenant=world.tenant,
        )
    users_row = next(row for row in rows if row.entity_type == "users")
    assert users_row.before["passwordHash"] is None and users_row.after["passwordHash"] == "[redacted]"
    assert (users_row.before["status"], users_row.after["status"]) == ("invited", "active")
    assert account.password_hash not in str([row.after for row in rows])

    problem(reused, 410, "invitation_unusable")
    assert await audit_of(url, reused) == []


async def test_a_weak_password_is_refused_and_nothing_changes(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with api_client(url) as client:
        user_id, token = await invite(client, world)
        account = await get_row(url, User, user_id)
        short = await call(client, "POST", ACCEPT, {}, json={"token": token, "password": "short"})
        own_name = await call(
            client,
            "POST",
            ACCEPT,
            {},
            json={"token": token, "password": account.email.split("@")[0] + "2024!"},
        )
        missing = await call(client, "POST", ACCEPT, {}, json={"token": token})
        extra = await call(
            client, "POST", ACCEPT, {}, json={"token": token, "password": new_password(), "status": "active"}
        )
    for response in (short, own_name):
        assert problem(response, 422, "invalid_input")["field"] == "password"
    for response in (missing, extra):
        problem(response, 422, "validation_error")
    for response in (short, own_name, missing, extra):
        assert await audit_of(url, response) == []
    account = await get_row(url, User, user_id)
    assert (account.status, account.password_hash) == ("invited", None)


async def test_expired_and_unknown_tokens_are_refused(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with api_client(url) as client:
        user_id, token = await invite(client, world)
        async with system_session(url) as session:
            invitation = (
                await session.execute(select(UserInvitation).where(UserInvitation.user_id == user_id))
            ).scalar_one()
            invitation.expires_at = utcnow() - timedelta(minutes=1)
        expired = await call(client, "POST", ACCEPT, {}, json={"token": token, "password": new_password()})
        unknown = await call(
            client, "POST", ACCEPT, {}, json={"token": secrets.token_urlsafe(32), "password": new_password()}
        )
    problem(expired, 410, "invitation_unusable")
    problem(unknown, 404, "invitation_not_found")
    assert (await get_row(url, User, user_id)).status == "invited"


async def test_suspended_or_removed_invitees_cannot_accept(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with api_client(url) as client:
        suspended_id, suspended_token = await invite(client, world)
        await client.post(f"/api/v1/users/{suspended_id}/suspend", headers=world.auth(world.admin))
        suspended = await call(
            client, "POST", ACCEPT, {}, json={"token": suspended_token, "password": new_password()}
        )
        removed_id, removed_token = await invite(client, world)
        removal = await call(client, "DELETE", f"/users/{removed_id}/membership", world.auth(world.admin))
        removed = await call(
            client, "POST", ACCEPT, {}, json={"token": removed_token, "password": new_password()}
        )
    problem(suspended, 410, "invitation_unusable")
    # Removing an invitee from the tenant withdraws their invitation to it.
    assert removal.status_code == 204
    assert sorted(row.entity_type for row in await audit_of(url, removal)) == [
        "user_invitations",
        "user_tenants",
        "users",
    ]
    problem(removed, 404, "invitation_not_found")


async def test_a_second_tenant_can_invite_a_pending_invitee_and_either_token_works_once(
    migrated_database_url: str,
) -> None:
    url = migrated_database_url
    world = await make_world(url)
    email = f"twice-{secrets.token_hex(4)}@example.org"
    async with api_client(url) as client:
        user_id, first = await invite(client, world, email)
        same_id, second = await invite(client, world, email, headers=world.auth(world.other_admin))
        accepted = await call(client, "POST", ACCEPT, {}, json={"token": second, "password": new_password()})
        first_after = await call(
            client, "POST", ACCEPT, {}, json={"token": first, "password": new_password()}
        )
    assert same_id == user_id and first != second
    assert accepted.status_code == 204
    for row in await audit_of(url, accepted):
        assert row.tenant_id == world.other.id
    problem(first_after, 410, "invitation_unusable")
