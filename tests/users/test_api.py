"""Users API: an Admin manages the members of the current tenant; the trail records every change."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from datetime import datetime

from sqlalchemy import select

from mobility.auth.credentials import hash_token
from mobility.auth.models import Session
from mobility.authz.permissions import SystemRole
from mobility.roles.models import Role
from mobility.tenants.models import Tenant
from mobility.users import service as users_service
from mobility.users.models import User, UserInvitation, UserTenant
from tests.support.admin_api import (
    all_pages,
    assert_row,
    audit_of,
    call,
    make_world,
    one_audit_row,
    sign_in,
    walk,
)
from tests.support.app import api_client, problem
from tests.support.factories import add_membership, make_user, system_role
from tests.support.sessions import get_row, system_session

INVITATION_FIELDS = {
    "id",
    "email",
    "name",
    "roleId",
    "roleName",
    "status",
    "expiresAt",
    "createdAt",
    "declinedAt",
}
SECRET_FIELDS = ("passwordHash", "tokenHash", "totpSecret", "recoveryCodes", "password_hash", "token_hash")


def new_email() -> str:
    return f"invitee-{secrets.token_hex(4)}@example.org"


async def role_id(url: str, role: SystemRole) -> str:
    async with system_session(url) as session:
        return str((await system_role(session, role)).id)


async def custom_role(url: str, tenant, permissions: list[str], name: str | None = None) -> Role:
    async with system_session(url) as session:
        role = Role(
            name=name or f"Custom {secrets.token_hex(3)}", tenant_id=tenant.id, permissions=permissions
        )
        session.add(role)
        await session.flush()
        return role


async def accept_by_token(client, url: str, invitation: dict) -> str:
    """The invitee of a new account sets a password with the token that reaches only them (here: the
    operator's `users invitation-link`); returns the account's id."""
    async with system_session(url) as session:
        row = await session.get(UserInvitation, uuid.UUID(invitation["id"]))
        tenant = await session.get(Tenant, row.tenant_id)
        token = await users_service.issue_invitation_link(
            session, email=invitation["email"], tenant_code=tenant.code
        )
        user_id = str(row.user_id)
    accepted = await client.post(
        "/api/v1/invitations/accept", json={"token": token, "password": secrets.token_urlsafe(12)}
    )
    assert accepted.status_code == 204, accepted.text
    return user_id


async def sessions_live(url: str, user_id) -> int:
    async with system_session(url) as session:
        rows = await session.execute(select(Session).where(Session.user_id == user_id))
        return sum(1 for row in rows.scalars() if row.revoked_at is None)


# --- inviting --------------------------------------------------------------------------------------


async def test_invite_creates_an_invited_account_and_a_pending_invitation(
    migrated_database_url: str,
) -> None:
    url = migrated_database_url
    world = await make_world(url)
    trainer_role = await role_id(url, SystemRole.trainer)
    email = new_email()
    async with api_client(url) as client:
        response = await call(
            client,
            "POST",
            "/users",
            world.auth(world.admin),
            json={"email": email.upper(), "name": "Sera Tuilagi", "roleId": trainer_role},
        )
        assert response.status_code == 201, response.text
        listed = await client.get("/api/v1/invitations", headers=world.auth(world.admin))
        members = await client.get("/api/v1/users", headers=world.auth(world.admin), params={"q": email})
    body = response.json()
    assert set(body) == INVITATION_FIELDS
    assert (body["email"], body["name"], body["roleName"], body["status"]) == (
        email,
        "Sera Tuilagi",
        "Trainer",
        "pending",
    )
    # The token reaches only the address's owner: never the API's answer.
    assert not any(field in response.text for field in (*SECRET_FIELDS, "token"))
    assert [item["id"] for item in listed.json()["items"]] == [body["id"]]
    # Not a member until they accept.
    assert members.json()["items"] == []

    async with system_session(url) as session:
        account = (await session.execute(select(User).where(User.email == email))).scalar_one()
        invitation = await session.get(UserInvitation, uuid.UUID(body["id"]))
        memberships = (
            await session.execute(select(UserTenant).where(UserTenant.user_id == account.id))
        ).all()
    assert (account.status, account.password_hash, account.tenant_id) == ("invited", None, world.tenant.id)
    assert invitation.token_hash is not None and invitation.tenant_id == world.tenant.id
    assert memberships == []

    rows = await audit_of(url, response)
    assert sorted(row.entity_type for row in rows) == ["user_invitations", "users"]
    for row in rows:
        entity = {"users": account.id, "user_invitations": invitation.id}
        assert_row(
            row,
            action="user.invite",
            entity_type=row.entity_type,
            entity_id=entity[row.entity_type],
            actor=world.admin,
            tenant=world.tenant,
        )
        assert row.before is None
    assert invitation.token_hash not in json.dumps([row.after for row in rows])
    assert (
        next(row for row in rows if row.entity_type == "user_invitations").after["tokenHash"] == "[redacted]"
    )


async def test_invite_validates_its_input(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    trainer_role = await role_id(url, SystemRole.trainer)
    foreign_role = await custom_role(url, world.other, ["users:read"])
    headers = world.auth(world.admin)
    valid = {"email": new_email(), "name": "N", "roleId": trainer_role}
    async with api_client(url) as client:
        schema_errors = [
            {**valid, "email": "not-an-address"},
            {**valid, "name": ""},
            {k: v for k, v in valid.items() if k != "roleId"},
            {**valid, "roleId": "role-name"},
            # Fields the caller may not set.
            {**valid, "tenantId": str(world.other.id)},
            {**valid, "status": "active"},
            {**valid, "systemRole": True},
            {**valid, "createdBy": str(world.trainer.id)},
            {**valid, "password": "chosen-by-the-admin"},
        ]
        for body in schema_errors:
            response = await call(client, "POST", "/users", headers, json=body)
            problem(response, 422, "validation_error")
            assert await audit_of(url, response) == []
        for role in (str(world.admin.id), str(foreign_role.id)):
            response = await call(client, "POST", "/users", headers, json={**valid, "roleId": role})
            assert problem(response, 422, "invalid_input")["field"] == "roleId"
            assert await audit_of(url, response) == []
    async with system_session(url) as session:
        assert (await session.execute(select(User).where(User.email == valid["email"]))).first() is None


async def test_inviting_an_existing_account_touches_nothing_and_tells_nothing(
    migrated_database_url: str,
) -> None:
    url = migrated_database_url
    world = await make_world(url)
    recruiter_role = await role_id(url, SystemRole.recruiter)
    async with system_session(url) as session:
        elsewhere = await make_user(session, world.other, SystemRole.trainer)
    before = await get_row(url, User, elsewhere.id)
    async with api_client(url) as client:
        existing = await call(
            client,
            "POST",
            "/users",
            world.auth(world.admin),
            json={"email": elsewhere.email.upper(), "name": "Typed Name", "roleId": recruiter_role},
        )
        fresh = await call(
            client,
            "POST",
            "/users",
            world.auth(world.admin),
            json={"email": new_email(), "name": "Typed Name", "roleId": recruiter_role},
        )
        again = await call(
            client,
            "POST",
            "/users",
            world.auth(world.admin),
            json={"email": elsewhere.email, "name": "Again", "roleId": recruiter_role},
        )
        members = await client.get(
            "/api/v1/users", headers=world.auth(world.admin), params={"q": elsewhere.email}
        )
    assert existing.status_code == fresh.status_code == 201, existing.text
    # The same answer, field for field, as for an address without an account; only what the Admin typed.
    shown, unseen = existing.json(), fresh.json()
    assert set(shown) == set(unseen) == INVITATION_FIELDS
    for key in ("name", "roleId", "roleName", "status", "declinedAt"):
        assert shown[key] == unseen[key], key
    assert shown["name"] == "Typed Name" != elsewhere.user.name
    assert str(elsewhere.id) not in existing.text
    # The account is not touched, gets no token and is no member until its owner accepts.
    after = await get_row(url, User, elsewhere.id)
    for column in ("password_hash", "status", "role_id", "tenant_id", "name", "updated_at", "updated_by"):
        assert getattr(after, column) == getattr(before, column), column
    async with system_session(url) as session:
        invitation = await session.get(UserInvitation, uuid.UUID(shown["id"]))
    assert invitation.user_id == elsewhere.id and invitation.token_hash is None
    assert members.json()["items"] == []
    rows = await audit_of(url, existing)
    assert [row.entity_type for row in rows] == ["user_invitations"]
    problem(again, 409, "already_invited")
    assert await audit_of(url, again) == []


async def test_only_a_system_admin_grants_system_admin(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    system_admin_role = await role_id(url, SystemRole.system_admin)
    async with api_client(url) as client:
        by_admin = await call(
            client,
            "POST",
            "/users",
            world.auth(world.admin),
            json={"email": new_email(), "name": "N", "roleId": system_admin_role},
        )
        by_system_admin = await call(
            client,
            "POST",
            "/users",
            world.auth(world.system_admin),
            json={"email": new_email(), "name": "N", "roleId": system_admin_role},
        )
        # ... and once the invitee accepts, an Admin cannot act on the System Admin so made.
        new_id = await accept_by_token(client, url, by_system_admin.json())
        suspend = await call(client, "POST", f"/users/{new_id}/suspend", world.auth(world.admin))
        demote = await call(
            client,
            "PUT",
            f"/users/{new_id}/membership",
            world.auth(world.admin),
            json={"roleId": await role_id(url, SystemRole.trainer)},
        )
    problem(by_admin, 403, "insufficient_rights")
    assert await audit_of(url, by_admin) == []
    assert by_system_admin.status_code == 201, by_system_admin.text
    assert by_system_admin.json()["roleName"] == SystemRole.system_admin
    assert (await get_row(url, User, new_id)).role_id is not None
    problem(suspend, 403, "insufficient_rights")
    problem(demote, 403, "insufficient_rights")


async def test_a_custom_role_cannot_grant_more_than_it_holds(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    hr = await custom_role(url, world.tenant, ["users:read", "users:create", "users:update", "roles:read"])
    async with system_session(url) as session:
        clerk = await make_user(session, world.tenant, hr)
        token = await sign_in(session, clerk, world.tenant)
    headers = {"Authorization": f"Bearer {token}"}
    async with api_client(url) as client:
        as_admin = await call(
            client,
            "POST",
            "/users",
            headers,
            json={"email": new_email(), "name": "N", "roleId": await role_id(url, SystemRole.admin)},
        )
        as_peer = await call(
            client, "POST", "/users", headers, json={"email": new_email(), "name": "N", "roleId": str(hr.id)}
        )
        suspend_admin = await call(client, "POST", f"/users/{world.admin.id}/suspend", headers)
    assert problem(as_admin, 403, "insufficient_rights")["missing"]
    assert as_peer.status_code == 201, as_peer.text
    problem(suspend_admin, 403, "insufficient_rights")


# --- reading -----------------------------------------------------------------------------------------


async def test_list_filters_sorts_and_pages(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with system_session(url) as session:
        extra = [await make_user(session, world.tenant, SystemRole.recruiter) for _ in range(4)]
        candidate = await make_user(session, world.tenant, SystemRole.candidate, status="suspended")
        # A member of both tenants is listed in each; B's own members never in A.
        await add_membership(session, world.other_admin, world.tenant, SystemRole.agent)
    headers = world.auth(world.admin)
    members = {world.admin.email, world.trainer.email, world.other_admin.email, candidate.email}
    members |= {m.email for m in extra}
    async with api_client(url) as client:
        pages = await all_pages(client, "/users", headers, limit=3)
        newest_first = await client.get("/api/v1/users", headers=headers, params={"sort": "-createdAt"})
        recruiters = await client.get(
            "/api/v1/users", headers=headers, params={"roleId": await role_id(url, SystemRole.recruiter)}
        )
        suspended = await client.get("/api/v1/users", headers=headers, params={"status": "suspended"})
        by_text = await client.get(
            "/api/v1/users", headers=headers, params={"q": extra[0].email.split("@")[0].upper()}
        )
        literal = await client.get("/api/v1/users", headers=headers, params={"q": "%"})
        errors = [
            await client.get("/api/v1/users", headers=headers, params={"limit": 101}),
            await client.get("/api/v1/users", headers=headers, params={"limit": 0}),
            await client.get("/api/v1/users", headers=headers, params={"status": "deleted"}),
            await client.get("/api/v1/users", headers=headers, params={"tenantId": str(world.other.id)}),
        ]
        bad_cursors = [
            await client.get("/api/v1/users", headers=headers, params={"cursor": cursor})
            for cursor in (
                "not-a-cursor",
                base64.urlsafe_b64encode(b'["a@b.c", "not-a-uuid"]').decode(),
                base64.urlsafe_b64encode(b'[42, "01a2140a-0000-7000-8000-000000000000"]').decode(),
                base64.urlsafe_b64encode(b'{"email": "x"}').decode(),
            )
        ]
    items = [item for page in pages for item in page["items"]]
    assert len(walk(pages)) == len(set(walk(pages))) == len(items) == 8
    emails = [item["email"] for item in items]
    assert set(emails) == members and emails == sorted(emails)
    assert all(len(page["items"]) == 3 for page in pages[:-1])
    # As instants: ISO strings do not sort as times ("...:05Z" after "...:05.1Z").
    newest = [datetime.fromisoformat(item["createdAt"]) for item in newest_first.json()["items"]]
    assert len(newest) == 8
    assert newest == sorted(newest, reverse=True)
    assert {item["email"] for item in recruiters.json()["items"]} == {m.email for m in extra}
    assert [item["status"] for item in suspended.json()["items"]] == ["suspended"]
    assert [item["email"] for item in by_text.json()["items"]] == [extra[0].email]
    assert literal.json()["items"] == []
    for response in errors:
        problem(response, 422, "validation_error")
    for response in bad_cursors:
        assert problem(response, 422, "invalid_input")["field"] == "cursor"


async def test_read_one_member(migrated_database_url: str) -> None:
    world = await make_world(migrated_database_url)
    async with api_client(migrated_database_url) as client:
        response = await client.get(f"/api/v1/users/{world.trainer.id}", headers=world.auth(world.admin))
        # The System Admin acting here is no member of the tenant: not one of its users.
        outsider = await client.get(f"/api/v1/users/{world.system_admin.id}", headers=world.auth(world.admin))
    assert response.status_code == 200
    body = response.json()
    assert (body["email"], body["roleName"], body["status"], body["isSystemAdmin"]) == (
        world.trainer.email,
        "Trainer",
        "active",
        False,
    )
    assert not any(field in response.text for field in SECRET_FIELDS)
    problem(outsider, 404, "not_found")


# --- changing ----------------------------------------------------------------------------------------


async def test_rename_records_the_change_and_refuses_other_fields(migrated_database_url: str) -> None:
    """The name is account-wide: a System Admin's to change (and the owner's, at /me)."""
    url = migrated_database_url
    world = await make_world(url)
    headers = world.auth(world.system_admin)
    path = f"/users/{world.trainer.id}"
    async with api_client(url) as client:
        refused = [
            await call(client, "PATCH", path, headers, json=body)
            for body in (
                {"status": "suspended"},
                {"email": "new@example.org"},
                {"tenantId": str(world.other.id)},
                {"roleId": await role_id(url, SystemRole.admin)},
                {"passwordHash": "x"},
                {"name": None},
                {"name": ""},
            )
        ]
        by_admin = await call(client, "PATCH", path, world.auth(world.admin), json={"name": "Not Mine"})
        response = await call(client, "PATCH", path, headers, json={"name": "Sera T."})
        same = await call(client, "PATCH", path, headers, json={"name": "Sera T."})
    for bad in refused:
        problem(bad, 422, "validation_error")
        assert await audit_of(url, bad) == []
    assert problem(by_admin, 403, "forbidden")["permission"] == "accounts:update"
    assert await audit_of(url, by_admin) == []
    assert response.json()["name"] == "Sera T."
    await one_audit_row(
        url,
        response,
        action="user.update",
        entity_type="users",
        entity_id=world.trainer.id,
        actor=world.system_admin,
        tenant=world.tenant,
        before={"name": world.trainer.user.name, "updatedBy": None},
        after={"name": "Sera T.", "updatedBy": str(world.system_admin.id)},
    )
    assert same.status_code == 200 and await audit_of(url, same) == []
    account = await get_row(url, User, world.trainer.id)
    assert (account.email, account.status) == (world.trainer.email, "active")


async def test_suspend_locks_the_member_out_of_the_tenant_and_reactivate_lets_them_in(
    migrated_database_url: str,
) -> None:
    url = migrated_database_url
    world = await make_world(url)
    headers = world.auth(world.admin)
    async with system_session(url) as session:
        await sign_in(session, world.trainer, world.tenant)
    assert await sessions_live(url, world.trainer.id) == 2
    async with api_client(url) as client:
        suspended = await call(client, "POST", f"/users/{world.trainer.id}/suspend", headers)
        trainer_me = await client.get("/api/v1/me", headers=world.auth(world.trainer))
        listed = await client.get("/api/v1/users", headers=headers, params={"status": "suspended"})
        again = await call(client, "POST", f"/users/{world.trainer.id}/suspend", headers)
        reactivated = await call(client, "POST", f"/users/{world.trainer.id}/reactivate", headers)
        old_session = await client.get("/api/v1/me", headers=world.auth(world.trainer))
    assert suspended.json()["status"] == "suspended"
    assert [item["id"] for item in listed.json()["items"]] == [str(world.trainer.id)]
    assert trainer_me.status_code == 401
    assert await sessions_live(url, world.trainer.id) == 0
    # The tenant's lock, on the membership: the account itself stays active.
    assert (await get_row(url, User, world.trainer.id)).status == "active"
    membership_id = (await audit_of(url, suspended))[0].entity_id
    await one_audit_row(
        url,
        suspended,
        action="membership.suspend",
        entity_type="user_tenants",
        entity_id=membership_id,
        actor=world.admin,
        tenant=world.tenant,
        before={"status": "active"},
        after={"status": "suspended"},
    )
    assert again.status_code == 200 and await audit_of(url, again) == []
    assert reactivated.json()["status"] == "active"
    await one_audit_row(
        url,
        reactivated,
        action="membership.reactivate",
        entity_type="user_tenants",
        entity_id=membership_id,
        actor=world.admin,
        tenant=world.tenant,
        before={"status": "suspended"},
        after={"status": "active"},
    )
    assert old_session.status_code == 401  # ended sessions stay ended


async def test_a_system_admin_suspends_and_reactivates_the_account(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    headers = world.auth(world.system_admin)
    async with api_client(url) as client:
        by_admin = await call(
            client, "POST", f"/users/{world.trainer.id}/suspend-account", world.auth(world.admin)
        )
        suspended = await call(client, "POST", f"/users/{world.trainer.id}/suspend-account", headers)
        trainer_me = await client.get("/api/v1/me", headers=world.auth(world.trainer))
        reactivated = await call(client, "POST", f"/users/{world.trainer.id}/reactivate-account", headers)
    assert problem(by_admin, 403, "forbidden")["permission"] == "accounts:update"
    assert suspended.json()["status"] == "suspended" and trainer_me.status_code == 401
    await one_audit_row(
        url,
        suspended,
        action="user.suspend",
        entity_type="users",
        entity_id=world.trainer.id,
        actor=world.system_admin,
        tenant=world.tenant,
        before={"status": "active", "updatedBy": None},
        after={"status": "suspended", "updatedBy": str(world.system_admin.id)},
    )
    assert reactivated.json()["status"] == "active"
    assert (await get_row(url, User, world.trainer.id)).status == "active"


async def test_suspend_refuses_oneself_and_the_last_admin(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with api_client(url) as client:
        own = await call(client, "POST", f"/users/{world.admin.id}/suspend", world.auth(world.admin))
        last = await call(client, "POST", f"/users/{world.admin.id}/suspend", world.auth(world.system_admin))
    problem(own, 409, "own_account")
    problem(last, 409, "last_admin")
    for response in (own, last):
        assert await audit_of(url, response) == []
    assert (await get_row(url, User, world.admin.id)).status == "active"


async def test_reset_two_factor_clears_secrets_and_ends_sessions(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    secret = "JBSWY3DPEHPK3PXP"
    codes = [hash_token(f"code-{n}") for n in range(3)]
    async with system_session(url) as session:
        trainer = await session.get(User, world.trainer.id)
        trainer.two_factor_enabled, trainer.totp_secret, trainer.recovery_codes = True, secret, codes
    async with api_client(url) as client:
        response = await call(client, "POST", f"/users/{world.trainer.id}/reset-2fa", world.auth(world.admin))
        own = await call(client, "POST", f"/users/{world.admin.id}/reset-2fa", world.auth(world.admin))
        trainer_me = await client.get("/api/v1/me", headers=world.auth(world.trainer))
    assert response.status_code == 200, response.text
    assert response.json()["twoFactorEnabled"] is False
    row = await one_audit_row(
        url,
        response,
        action="user.reset_2fa",
        entity_type="users",
        entity_id=world.trainer.id,
        actor=world.admin,
        tenant=world.tenant,
        before={
            "twoFactorEnabled": True,
            "totpSecret": "[redacted]",
            "recoveryCodes": "[redacted]",
            "updatedBy": None,
        },
        after={
            "twoFactorEnabled": False,
            "totpSecret": None,
            "recoveryCodes": None,
            "updatedBy": str(world.admin.id),
        },
    )
    assert secret not in json.dumps([row.before, row.after]) and codes[0] not in json.dumps(row.before)
    account = await get_row(url, User, world.trainer.id)
    assert (account.totp_secret, account.recovery_codes, account.two_factor_enabled) == (None, None, False)
    assert trainer_me.status_code == 401
    problem(own, 409, "own_account")


async def test_assign_a_role_in_the_tenant(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    headers = world.auth(world.admin)
    recruiter_role = await role_id(url, SystemRole.recruiter)
    own_role = await custom_role(url, world.tenant, ["candidates:read"])
    foreign_role = await custom_role(url, world.other, ["candidates:read"])
    path = f"/users/{world.trainer.id}/membership"
    async with api_client(url) as client:
        response = await call(
            client, "PUT", path, headers, json={"roleId": recruiter_role, "isPrimary": True}
        )
        custom = await call(client, "PUT", path, headers, json={"roleId": str(own_role.id)})
        foreign = await call(client, "PUT", path, headers, json={"roleId": str(foreign_role.id)})
        not_primary = await call(
            client, "PUT", path, headers, json={"roleId": recruiter_role, "isPrimary": False}
        )
        protected = await call(
            client, "PUT", path, headers, json={"roleId": recruiter_role, "tenantId": str(world.other.id)}
        )
        demote_last_admin = await call(
            client, "PUT", f"/users/{world.admin.id}/membership", headers, json={"roleId": recruiter_role}
        )
    assert (response.json()["roleName"], response.json()["isPrimary"]) == ("Recruiter", True)
    membership_id = (await audit_of(url, response))[0].entity_id
    trainer_role = await role_id(url, SystemRole.trainer)
    await one_audit_row(
        url,
        response,
        action="membership.update",
        entity_type="user_tenants",
        entity_id=membership_id,
        actor=world.admin,
        tenant=world.tenant,
        before={"roleId": trainer_role},
        after={"roleId": recruiter_role},
    )
    assert custom.json()["roleName"] == own_role.name
    assert problem(foreign, 422, "invalid_input")["field"] == "roleId"
    assert problem(not_primary, 422, "invalid_input")["field"] == "isPrimary"
    problem(protected, 422, "validation_error")
    problem(demote_last_admin, 409, "last_admin")
    for refused in (foreign, not_primary, protected, demote_last_admin):
        assert await audit_of(url, refused) == []
    async with system_session(url) as session:
        membership = await session.get(UserTenant, membership_id)
    assert membership.role_id == own_role.id


async def test_remove_from_the_tenant(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    headers = world.auth(world.admin)
    async with system_session(url) as session:
        second = await make_user(session, world.tenant, SystemRole.recruiter, primary=False)
    async with api_client(url) as client:
        response = await call(client, "DELETE", f"/users/{second.id}/membership", headers)
        gone = await client.get(f"/api/v1/users/{second.id}", headers=headers)
        primary = await call(client, "DELETE", f"/users/{world.trainer.id}/membership", headers)
        trainer_me = await client.get("/api/v1/me", headers=world.auth(world.trainer))
        own = await call(client, "DELETE", f"/users/{world.admin.id}/membership", headers)
        last = await call(
            client, "DELETE", f"/users/{world.admin.id}/membership", world.auth(world.system_admin)
        )
    assert response.status_code == 204
    membership = (await audit_of(url, response))[0]
    await one_audit_row(
        url,
        response,
        action="membership.remove",
        entity_type="user_tenants",
        entity_id=membership.entity_id,
        actor=world.admin,
        tenant=world.tenant,
        before=membership.before,
        after=None,
    )
    assert membership.before["userId"] == str(second.id)
    problem(gone, 404, "not_found")
    assert await get_row(url, User, second.id) is not None  # the account stays
    # Removing someone from their primary tenant also clears it on the account.
    assert primary.status_code == 204
    rows = await audit_of(url, primary)
    assert [(row.entity_type, row.after) for row in rows] == [
        ("users", {"tenantId": None, "updatedBy": str(world.admin.id)}),
        ("user_tenants", None),
    ]
    for row in rows:
        assert_row(
            row,
            action="membership.remove",
            entity_type=row.entity_type,
            entity_id=row.entity_id,
            actor=world.admin,
            tenant=world.tenant,
        )
    assert trainer_me.status_code == 401
    problem(own, 409, "own_account")
    problem(last, 409, "last_admin")


async def test_a_tenant_controls_access_to_itself_whatever_other_tenants_do(
    migrated_database_url: str,
) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with system_session(url) as session:
        # Primary tenant B, also a member of A, signed in to each.
        shared = await make_user(session, world.other, SystemRole.trainer)
        await add_membership(session, shared, world.tenant, SystemRole.trainer)
        in_a = await sign_in(session, shared, world.tenant)
        in_b = await sign_in(session, shared, world.other)
    headers = world.auth(world.admin)
    base = f"/users/{shared.id}"
    async with api_client(url) as client:
        # A locks its own door, whatever B does.
        suspended = await call(client, "POST", f"{base}/suspend", headers)
        me_in_a = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {in_a}"})
        me_in_b = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {in_b}"})
        # Account-wide changes are not A's.
        reset = await call(client, "POST", f"{base}/reset-2fa", headers)
        # What concerns this tenant only stays the Admin's to change.
        role_here = await call(
            client,
            "PUT",
            f"{base}/membership",
            headers,
            json={"roleId": await role_id(url, SystemRole.recruiter)},
        )
        reactivated = await call(client, "POST", f"{base}/reactivate", headers)
        removed = await call(client, "DELETE", f"{base}/membership", headers)
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    assert me_in_a.status_code == 401 and me_in_b.status_code == 200
    assert (await get_row(url, User, shared.id)).status == "active"
    problem(reset, 403, "account_in_other_tenants")
    assert await audit_of(url, reset) == []
    assert role_here.status_code == 200, role_here.text
    assert reactivated.status_code == 200 and reactivated.json()["status"] == "active"
    assert removed.status_code == 204


async def test_a_suspended_membership_refuses_login_there_only(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with system_session(url) as session:
        shared = await make_user(session, world.other, SystemRole.trainer)
        await add_membership(session, shared, world.tenant, SystemRole.trainer)
    async with api_client(url) as client:
        await call(client, "POST", f"/users/{shared.id}/suspend", world.auth(world.admin))
        body = {"email": shared.email, "password": shared.password}
        into_a = await client.post("/api/v1/auth/login", json={**body, "tenantCode": world.tenant.code})
        into_b = await client.post("/api/v1/auth/login", json={**body, "tenantCode": world.other.code})
        token_b = into_b.json()["token"]
        switch = await client.post(
            "/api/v1/auth/switch-tenant",
            json={"tenantCode": world.tenant.code},
            headers={"Authorization": f"Bearer {token_b}"},
        )
    assert into_a.status_code == 403, into_a.text
    assert into_b.status_code == 200
    assert switch.status_code == 403, switch.text


async def test_another_tenants_users_do_not_exist(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    headers = world.auth(world.other_admin)
    target = f"/users/{world.trainer.id}"
    other_role = await role_id(url, SystemRole.recruiter)
    async with api_client(url) as client:
        responses = [
            await call(client, "GET", target, headers),
            await call(client, "POST", f"{target}/suspend", headers),
            await call(client, "POST", f"{target}/reactivate", headers),
            await call(client, "POST", f"{target}/reset-2fa", headers),
            await call(client, "PUT", f"{target}/membership", headers, json={"roleId": other_role}),
            await call(client, "DELETE", f"{target}/membership", headers),
        ]
        listed = await client.get("/api/v1/users", headers=headers, params={"q": world.trainer.email})
    for response in responses:
        problem(response, 404, "not_found")
        assert await audit_of(url, response) == []
    assert listed.json()["items"] == []
    account = await get_row(url, User, world.trainer.id)
    assert (account.name, account.status) == (world.trainer.user.name, "active")


async def test_a_trainer_may_not_administer_users(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    headers = world.auth(world.trainer)
    target = f"/users/{world.admin.id}"
    trainer_role = await role_id(url, SystemRole.trainer)
    async with api_client(url) as client:
        responses = [
            await call(client, "GET", "/users", headers),
            await call(client, "GET", target, headers),
            await call(
                client,
                "POST",
                "/users",
                headers,
                json={"email": new_email(), "name": "N", "roleId": trainer_role},
            ),
            await call(client, "PATCH", target, headers, json={"name": "x"}),
            await call(client, "POST", f"{target}/suspend", headers),
            await call(client, "POST", f"{target}/reset-2fa", headers),
            await call(client, "PUT", f"{target}/membership", headers, json={"roleId": trainer_role}),
            await call(client, "DELETE", f"{target}/membership", headers),
        ]
    for response in responses:
        assert problem(response, 403, "forbidden")["permission"].startswith(("users:", "accounts:"))
        assert await audit_of(url, response) == []


async def test_a_system_admin_moves_a_shared_accounts_primary_tenant(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with system_session(url) as session:
        shared = await make_user(session, world.other, SystemRole.trainer)  # primary: B
        await add_membership(session, shared, world.tenant, SystemRole.trainer)
    trainer_role = await role_id(url, SystemRole.trainer)
    body = {"roleId": trainer_role, "isPrimary": True}
    async with api_client(url) as client:
        by_admin = await call(
            client, "PUT", f"/users/{shared.id}/membership", world.auth(world.admin), json=body
        )
        response = await call(
            client, "PUT", f"/users/{shared.id}/membership", world.auth(world.system_admin), json=body
        )
    problem(by_admin, 403, "account_in_other_tenants")
    assert await audit_of(url, by_admin) == []
    assert response.status_code == 200, response.text
    assert response.json()["isPrimary"] is True
    async with system_session(url) as session:
        memberships = {
            m.tenant_id: m.is_primary
            for m in (
                await session.execute(select(UserTenant).where(UserTenant.user_id == shared.id))
            ).scalars()
        }
    assert memberships == {world.tenant.id: True, world.other.id: False}
    assert (await get_row(url, User, shared.id)).tenant_id == world.tenant.id
    rows = await audit_of(url, response)
    changes = sorted(((row.entity_type, row.before, row.after) for row in rows), key=repr)
    assert changes == sorted(
        [
            ("user_tenants", {"isPrimary": False}, {"isPrimary": True}),
            ("user_tenants", {"isPrimary": True}, {"isPrimary": False}),
            (
                "users",
                {"tenantId": str(world.other.id), "updatedBy": None},
                {"tenantId": str(world.tenant.id), "updatedBy": str(world.system_admin.id)},
            ),
        ],
        key=repr,
    )
    for row in rows:
        # A membership is filed in its own tenant's trail; the account in the trail of the tenant acted in.
        tenant = (
            world.other if row.entity_type == "user_tenants" and not row.after["isPrimary"] else world.tenant
        )
        assert_row(
            row,
            action="membership.update",
            entity_type=row.entity_type,
            entity_id=row.entity_id,
            actor=world.system_admin,
            tenant=tenant,
        )


async def test_system_admin_is_granted_and_taken_away_with_the_membership(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    headers = world.auth(world.system_admin)
    async with api_client(url) as client:
        granted = await call(
            client,
            "PUT",
            f"/users/{world.trainer.id}/membership",
            headers,
            json={"roleId": await role_id(url, SystemRole.system_admin)},
        )
        granted_row = await get_row(url, User, world.trainer.id)
        taken = await call(
            client,
            "PUT",
            f"/users/{world.trainer.id}/membership",
            headers,
            json={"roleId": await role_id(url, SystemRole.trainer)},
        )
    assert granted.json()["isSystemAdmin"] is True and granted_row.role_id is not None
    assert taken.json()["isSystemAdmin"] is False
    assert (await get_row(url, User, world.trainer.id)).role_id is None
    assert sorted(row.entity_type for row in await audit_of(url, taken)) == ["user_tenants", "users"]


async def test_a_suspended_membership_counts_for_no_session_however_it_was_suspended(
    migrated_database_url: str,
) -> None:
    """The session lookup itself (0014's function on PostgreSQL, its statement on SQLite) counts an
    active membership only: a membership suspended without ending the sessions gives no access."""
    url = migrated_database_url
    world = await make_world(url)
    async with system_session(url) as session:
        membership = (
            await session.execute(
                select(UserTenant).where(
                    UserTenant.user_id == world.trainer.id, UserTenant.tenant_id == world.tenant.id
                )
            )
        ).scalar_one()
        membership.status = "suspended"
    async with api_client(url) as client:
        me = await client.get("/api/v1/me", headers=world.auth(world.trainer))
        admin_me = await client.get("/api/v1/me", headers=world.auth(world.admin))
    assert me.status_code == 401
    assert admin_me.status_code == 200
