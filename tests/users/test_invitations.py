"""Invitations by consent, tried from the attacker's side.

A new address: the invitation creates the account and carries the token that sets its first password;
the token reaches only the address's owner (here: the operator's `users invitation-link`, later the
e-mail), never the inviting Admin. An address with an account, in any status: a pending invitation
that its owner accepts or declines logged in; no token, the account untouched. Either way nobody is a
member until they accept.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

from sqlalchemy import select

from mobility.authz.permissions import SystemRole
from mobility.core.models import utcnow
from mobility.core.security import hash_password
from mobility.users import service as users_service
from mobility.users.models import User, UserInvitation, UserTenant
from tests.support.admin_api import assert_row, audit_of, call, make_world
from tests.support.app import api_client, login, problem
from tests.support.factories import make_invitation, make_user, system_role
from tests.support.sessions import get_row, system_session

ACCEPT = "/invitations/accept"


def new_password() -> str:
    return secrets.token_urlsafe(12)


def new_address() -> str:
    return f"new-{secrets.token_hex(4)}@example.org"


async def invite(client, world, email: str, *, headers=None, role: SystemRole = SystemRole.trainer) -> dict:
    """Invite `email` to the tenant of `headers` (default: the world's tenant, as its Admin)."""
    async with system_session(world.url) as session:
        role_id = (await system_role(session, role)).id
    response = await client.post(
        "/api/v1/users",
        headers=headers or world.auth(world.admin),
        json={"email": email, "name": "New Member", "roleId": str(role_id)},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def operator_link(url: str, email: str, tenant) -> str:
    """The token of the invitation that created `email`'s account, as the operator's CLI issues it."""
    async with system_session(url) as session:
        return await users_service.issue_invitation_link(session, email=email, tenant_code=tenant.code)


async def account_of(url: str, email: str) -> User:
    async with system_session(url) as session:
        return (await session.execute(select(User).where(User.email == email))).scalar_one()


async def memberships(url: str, user_id) -> dict:
    async with system_session(url) as session:
        rows = (await session.execute(select(UserTenant).where(UserTenant.user_id == user_id))).scalars()
        return {row.tenant_id: row for row in rows}


# --- a new account: its token ---------------------------------------------------------------------


async def test_the_token_sets_the_first_password_once_and_makes_the_membership(
    migrated_database_url: str,
) -> None:
    url = migrated_database_url
    world = await make_world(url)
    password = new_password()
    email = new_address()
    async with api_client(url) as client:
        await invite(client, world, email)
        token = await operator_link(url, email, world.tenant)
        accepted = await call(client, "POST", ACCEPT, {}, json={"token": token, "password": password})
        headers = await login(client, email, password)
        me = await client.get("/api/v1/me", headers=headers)
        reused = await call(client, "POST", ACCEPT, {}, json={"token": token, "password": new_password()})
    assert accepted.status_code == 204, accepted.text
    account = await account_of(url, email)
    assert account.status == "active" and account.password_changed_at is not None
    assert me.json()["tenantId"] == str(world.tenant.id) and me.json()["role"] == "Trainer"
    joined = await memberships(url, account.id)
    assert set(joined) == {world.tenant.id} and joined[world.tenant.id].is_primary

    rows = await audit_of(url, accepted)
    assert sorted(row.entity_type for row in rows) == ["user_invitations", "user_tenants", "users"]
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

    problem(reused, 410, "invitation_unusable")
    assert await audit_of(url, reused) == []


async def test_a_weak_password_is_refused_and_nothing_changes(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    email = new_address()
    async with api_client(url) as client:
        await invite(client, world, email)
        token = await operator_link(url, email, world.tenant)
        short = await call(client, "POST", ACCEPT, {}, json={"token": token, "password": "short"})
        own_name = await call(
            client, "POST", ACCEPT, {}, json={"token": token, "password": email.split("@")[0] + "2024!"}
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
    account = await account_of(url, email)
    assert (account.status, account.password_hash) == ("invited", None)
    assert await memberships(url, account.id) == {}


async def test_expired_revoked_and_unknown_tokens_are_refused(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    expiring, revoked = new_address(), new_address()
    async with api_client(url) as client:
        await invite(client, world, expiring)
        expired_token = await operator_link(url, expiring, world.tenant)
        async with system_session(url) as session:
            account = (await session.execute(select(User).where(User.email == expiring))).scalar_one()
            invitation = (
                await session.execute(select(UserInvitation).where(UserInvitation.user_id == account.id))
            ).scalar_one()
            invitation.expires_at = utcnow() - timedelta(minutes=1)
        expired = await call(
            client, "POST", ACCEPT, {}, json={"token": expired_token, "password": new_password()}
        )
        to_revoke = await invite(client, world, revoked)
        revoked_token = await operator_link(url, revoked, world.tenant)
        revocation = await call(client, "DELETE", f"/invitations/{to_revoke['id']}", world.auth(world.admin))
        after_revocation = await call(
            client, "POST", ACCEPT, {}, json={"token": revoked_token, "password": new_password()}
        )
        unknown = await call(
            client, "POST", ACCEPT, {}, json={"token": secrets.token_urlsafe(32), "password": new_password()}
        )
    problem(expired, 410, "invitation_unusable")
    assert revocation.status_code == 204
    assert [row.action for row in await audit_of(url, revocation)] == ["invitation.revoke"]
    problem(after_revocation, 404, "not_found")
    problem(unknown, 404, "not_found")
    for address in (expiring, revoked):
        assert (await account_of(url, address)).status == "invited"


async def test_a_token_for_an_account_that_became_active_meanwhile_is_refused(
    migrated_database_url: str,
) -> None:
    """Set up some other way meanwhile (say, the operator's `users set-password`): the token no longer
    sets a password, and the password stays the owner's."""
    url = migrated_database_url
    world = await make_world(url)
    email, password = new_address(), new_password()
    async with api_client(url) as client:
        await invite(client, world, email)
        token = await operator_link(url, email, world.tenant)
        async with system_session(url) as session:
            account = (await session.execute(select(User).where(User.email == email))).scalar_one()
            account.password_hash, account.status = hash_password(password), "active"
        refused = await call(client, "POST", ACCEPT, {}, json={"token": token, "password": new_password()})
    problem(refused, 410, "invitation_unusable")
    after = await account_of(url, email)
    assert after.password_hash == account.password_hash and await memberships(url, after.id) == {}
    assert await audit_of(url, refused) == []


# --- an existing account: consent, logged in --------------------------------------------------------


async def test_cross_tenant_takeover_of_a_pending_account_is_impossible(migrated_database_url: str) -> None:
    """A invites alice (new); before she sets up, B invites the same address: B gets a pending
    invitation and no token, and nothing B can send sets alice's password or joins anyone to A."""
    url = migrated_database_url
    world = await make_world(url)
    alice, password = new_address(), new_password()
    async with api_client(url) as client:
        from_a = await invite(client, world, alice, role=SystemRole.admin)
        from_b = await invite(client, world, alice, headers=world.auth(world.other_admin))
        async with system_session(url) as session:
            b_row = await session.get(UserInvitation, uuid.UUID(from_b["id"]))
        # B holds no token; any guess is refused and changes nothing.
        guessed = await call(client, "POST", ACCEPT, {}, json={"token": from_b["id"], "password": password})
        account = await account_of(url, alice)
        # The owner, with the link that reached only her, sets up and joins A alone.
        token = await operator_link(url, alice, world.tenant)
        await call(client, "POST", ACCEPT, {}, json={"token": token, "password": password})
        headers = await login(client, alice, password, tenant_code=world.tenant.code)
        mine = await client.get("/api/v1/me/invitations", headers=headers)
        accepted = await call(client, "POST", f"/me/invitations/{from_b['id']}/accept", headers)
        into_b = await client.post(
            "/api/v1/auth/switch-tenant", json={"tenantCode": world.other.code}, headers=headers
        )
    assert set(from_a) == set(from_b) and from_a["status"] == from_b["status"] == "pending"
    assert b_row.token_hash is None and b_row.user_id == account.id
    problem(guessed, 404, "not_found")
    assert [item["id"] for item in mine.json()] == [from_b["id"]]
    assert mine.json()[0]["tenantCode"] == world.other.code and mine.json()[0]["roleName"] == "Trainer"
    assert accepted.status_code == 204, accepted.text
    rows = await audit_of(url, accepted)
    assert sorted(row.entity_type for row in rows) == ["user_invitations", "user_tenants"]
    for row in rows:
        # Filed in B's trail (the tenant joined), as the invitee's own act.
        assert row.tenant_id == world.other.id and row.actor_id == account.id
    joined = await memberships(url, account.id)
    assert set(joined) == {world.tenant.id, world.other.id}
    assert joined[world.tenant.id].is_primary and not joined[world.other.id].is_primary
    assert into_b.status_code == 200 and into_b.json()["role"] == "Trainer"


async def test_inviting_a_pending_system_admin_grants_nothing(migrated_database_url: str) -> None:
    """Every install has a pending account or two (the seed's): B's Admin inviting one gets no token,
    and the account keeps its global role, its status and its primary tenant."""
    url = migrated_database_url
    world = await make_world(url)
    async with system_session(url) as session:
        pending = await make_user(session, world.tenant, SystemRole.system_admin, status="invited")
        pending.user.password_hash = None
    before = await get_row(url, User, pending.id)
    async with api_client(url) as client:
        invited = await invite(client, world, pending.email, headers=world.auth(world.other_admin))
        as_system_admin = await call(
            client,
            "POST",
            "/users",
            world.auth(world.other_admin),
            json={
                "email": new_address(),
                "name": "N",
                "roleId": str(before.role_id),
            },
        )
    after = await get_row(url, User, pending.id)
    for column in ("password_hash", "status", "role_id", "tenant_id", "name"):
        assert getattr(after, column) == getattr(before, column), column
    async with system_session(url) as session:
        row = await session.get(UserInvitation, uuid.UUID(invited["id"]))
    assert row.token_hash is None and row.role_id != before.role_id
    problem(as_system_admin, 403, "insufficient_rights")
    # And the operator's link is only for the tenant whose invitation created the account.
    async with system_session(url) as session:
        try:
            await users_service.issue_invitation_link(
                session, email=pending.email, tenant_code=world.other.code
            )
        except users_service.InvitationNotFound:
            pass
        else:
            raise AssertionError("a token for an invitation that did not create the account")


async def test_the_invitee_declines_and_the_tenant_may_invite_again(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with system_session(url) as session:
        bob = await make_user(session, world.other, SystemRole.trainer)
        eve = await make_user(session, world.other, SystemRole.trainer)
    async with api_client(url) as client:
        offered = await invite(client, world, bob.email)
        bob_headers = await login(client, bob.email, bob.password)
        eve_headers = await login(client, eve.email, eve.password)
        by_eve = [
            await call(client, "POST", f"/me/invitations/{offered['id']}/accept", eve_headers),
            await call(client, "POST", f"/me/invitations/{offered['id']}/decline", eve_headers),
        ]
        eve_sees = await client.get("/api/v1/me/invitations", headers=eve_headers)
        declined = await call(client, "POST", f"/me/invitations/{offered['id']}/decline", bob_headers)
        after_decline = await call(client, "POST", f"/me/invitations/{offered['id']}/accept", bob_headers)
        listed = await client.get(
            "/api/v1/invitations", headers=world.auth(world.admin), params={"status": "declined"}
        )
        renewed = await invite(client, world, bob.email)
        bob_sees = await client.get("/api/v1/me/invitations", headers=bob_headers)
        accepted = await call(client, "POST", f"/me/invitations/{renewed['id']}/accept", bob_headers)
        twice = await call(client, "POST", f"/me/invitations/{renewed['id']}/accept", bob_headers)
        again = await call(
            client,
            "POST",
            "/users",
            world.auth(world.admin),
            json={"email": bob.email, "name": "N", "roleId": renewed["roleId"]},
        )
    for response in by_eve:
        problem(response, 404, "not_found")
    assert eve_sees.json() == []
    assert declined.status_code == 204
    assert [row.action for row in await audit_of(url, declined)] == ["invitation.decline"]
    problem(after_decline, 404, "not_found")
    assert [item["id"] for item in listed.json()["items"]] == [offered["id"]]
    assert renewed["id"] == offered["id"] and renewed["status"] == "pending"
    assert [item["id"] for item in bob_sees.json()] == [offered["id"]]
    assert accepted.status_code == 204
    problem(twice, 404, "not_found")
    problem(again, 409, "already_member")
    assert world.tenant.id in await memberships(url, bob.id)


async def test_another_tenants_invitations_do_not_exist(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with api_client(url) as client:
        offered = await invite(client, world, new_address())
        revoke = await call(client, "DELETE", f"/invitations/{offered['id']}", world.auth(world.other_admin))
        listed = await client.get("/api/v1/invitations", headers=world.auth(world.other_admin))
        trainer = await call(client, "DELETE", f"/invitations/{offered['id']}", world.auth(world.trainer))
    problem(revoke, 404, "not_found")
    assert offered["id"] not in {item["id"] for item in listed.json()["items"]}
    problem(trainer, 403, "forbidden")
    async with system_session(url) as session:
        assert await session.get(UserInvitation, uuid.UUID(offered["id"])) is not None


async def test_an_invitation_from_before_consent_still_sets_the_password(migrated_database_url: str) -> None:
    """Before 0014 an invitation came with its membership: accepting it sets the password, and makes
    no second membership."""
    url = migrated_database_url
    world = await make_world(url)
    async with system_session(url) as session:
        invitee = await make_user(session, world.tenant, SystemRole.trainer, status="invited")
        account = await session.get(User, invitee.id)
        account.password_hash = None
        invitation = await make_invitation(session, world.tenant, invitee, SystemRole.trainer, name="Legacy")
        token = users_service.new_invitation_token(invitation)
    async with api_client(url) as client:
        accepted = await call(client, "POST", ACCEPT, {}, json={"token": token, "password": new_password()})
    assert accepted.status_code == 204, accepted.text
    assert list(await memberships(url, invitee.id)) == [world.tenant.id]
    assert (await get_row(url, User, invitee.id)).status == "active"
