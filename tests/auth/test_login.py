"""Logging in: the token, where it may travel (Bearer header, HttpOnly cookie), and who may not log in."""

import base64
import re
import uuid
from datetime import timedelta
from http.cookies import SimpleCookie

import pytest
from sqlalchemy.exc import IntegrityError

from mobility.auth.credentials import hash_token
from mobility.authz.permissions import SystemRole
from mobility.core.models import utcnow
from mobility.users.models import User
from tests.auth.support import LOGIN, activity, attempt, log_in, sessions_of, set_user
from tests.support.app import api_client, bearer, problem
from tests.support.factories import PASSWORD, make_tenant, make_user, unique
from tests.support.sessions import get_row, system_session


async def test_login_then_me(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        tenant = await make_tenant(session)
        admin = await make_user(session, tenant)
    async with api_client(migrated_database_url) as client:
        token = await log_in(client, admin.email)
        me = await client.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["email"] == admin.email
    assert body["role"] == "Admin"
    assert body["tenantId"] == str(tenant.id)
    assert body["twoFactorEnabled"] is False
    assert body["twoFactorEnrollmentRequired"] is False
    assert "users:read" in body["permissions"]
    assert [t["tenantCode"] for t in body["tenants"]] == [tenant.code]


def _token_bytes(token: str) -> bytes:
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token), "not an opaque url-safe string"
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


async def test_each_login_makes_a_new_strong_token_kept_only_as_a_hash(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), SystemRole.trainer)
    async with api_client(migrated_database_url) as client:
        first = await attempt(client, member.email.upper())  # e-mails are matched case-insensitively
        second = await attempt(client, member.email)
    assert first.status_code == second.status_code == 200
    tokens = [first.json()["token"], second.json()["token"]]
    assert tokens[0] != tokens[1]
    for token in tokens:
        raw = _token_bytes(token)
        assert len(raw) * 8 >= 128
        assert len(set(raw)) > len(raw) // 3, "token bytes look anything but random"
    assert first.json()["tokenType"] == "bearer"

    rows = await sessions_of(migrated_database_url, member.id)
    assert len(rows) == 2
    assert {row.token for row in rows} == {hash_token(token) for token in tokens}
    for row in rows:
        assert row.token not in tokens and all(token not in row.token for token in tokens)
        assert re.fullmatch(r"[0-9a-f]{64}", row.token)  # SHA-256, hex
        assert row.tenant_id == member.tenant.id
        assert row.revoked_at is None


async def test_token_works_as_bearer_and_as_a_strict_httponly_cookie(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), SystemRole.trainer)
    async with api_client(migrated_database_url) as client:
        response = await attempt(client, member.email)
        token = response.json()["token"]

        set_cookie = response.headers.get_list("set-cookie")
        assert len(set_cookie) == 1
        cookie = SimpleCookie(set_cookie[0])["mobility_session"]
        assert cookie.value == token
        assert cookie["httponly"] is True
        assert cookie["secure"] is True
        assert cookie["samesite"] == "strict"
        assert cookie["path"] == "/"
        assert int(cookie["max-age"]) == 12 * 3600

        by_bearer = await client.get("/api/v1/me", headers=bearer(token))
        by_cookie = await client.get("/api/v1/me", headers={"Cookie": f"mobility_session={token}"})
        assert by_bearer.status_code == by_cookie.status_code == 200
        assert by_cookie.json()["email"] == member.email

        # No token, a wrong one, another scheme, a wrong cookie: 401 problem+json with a challenge.
        for headers in (
            {},
            bearer(("y" if token.startswith("x") else "x") + token[1:]),  # one character off
            bearer(""),
            {"Authorization": f"Basic {token}"},
            {"Cookie": f"mobility_session={token[:-2]}"},
            {"Cookie": f"other_cookie={token}"},
        ):
            problem(await client.get("/api/v1/me", headers=headers), 401)
        # A bad Bearer token is not rescued by a good cookie: the header decides.
        problem(
            await client.get("/api/v1/me", headers={**bearer("nope"), "Cookie": f"mobility_session={token}"}),
            401,
        )


async def test_session_lifetimes_follow_the_settings(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), SystemRole.trainer)
    async with api_client(migrated_database_url, session_absolute_timeout_hours=2) as client:
        before = utcnow()
        response = await attempt(client, member.email)
    assert response.status_code == 200
    cookie = SimpleCookie(response.headers["set-cookie"])["mobility_session"]
    assert int(cookie["max-age"]) == 2 * 3600
    [row] = await sessions_of(migrated_database_url, member.id)
    assert before + timedelta(hours=2) - timedelta(seconds=1) <= row.expires_at
    assert row.expires_at <= utcnow() + timedelta(hours=2)


async def test_wrong_password_and_unknown_email_are_the_same_401(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session))
    async with api_client(migrated_database_url) as client:
        wrong = await attempt(client, member.email, "nope-nope-nope")
        unknown = await attempt(client, f"nobody-{uuid.uuid4().hex}@example.org", "nope-nope-nope")
        me = await client.get("/api/v1/me")
    for response in (wrong, unknown):
        problem(response, 401, "invalid_credentials")
        assert "set-cookie" not in response.headers
    assert wrong.json()["detail"] == unknown.json()["detail"]
    problem(me, 401)
    assert await sessions_of(migrated_database_url, member.id) == []


@pytest.mark.parametrize("status", ["suspended", "invited"])
async def test_inactive_users_cannot_log_in(migrated_database_url: str, status: str) -> None:
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), status=status)
    async with api_client(migrated_database_url) as client:
        refused = await attempt(client, member.email)
        # With a wrong password the answer does not reveal the account's state.
        wrong = await attempt(client, member.email, "nope-nope-nope")
    problem(refused, 403, "account_inactive")
    assert "set-cookie" not in refused.headers
    problem(wrong, 401, "invalid_credentials")
    assert await sessions_of(migrated_database_url, member.id) == []
    logged = [(row.action, row.user_id) for row in await activity(migrated_database_url, client.address)]
    assert sorted(logged) == [("login_failed", member.id), ("login_refused", member.id)]


async def test_suspending_a_user_ends_their_live_session(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), SystemRole.trainer)
    async with api_client(migrated_database_url) as client:
        token = await log_in(client, member.email)
        assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200
        await set_user(migrated_database_url, member.id, status="suspended")
        problem(await client.get("/api/v1/me", headers=bearer(token)), 401, "session_invalid")
        # Lifting the suspension does not bring the old session back: it was ended, not paused.
        await set_user(migrated_database_url, member.id, status="active")
        problem(await client.get("/api/v1/me", headers=bearer(token)), 401, "session_invalid")
    [row] = await sessions_of(migrated_database_url, member.id)
    assert row.revoked_at is not None


async def test_logins_are_recorded_with_user_and_address(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session))
    async with api_client(migrated_database_url) as client:
        await log_in(client, member.email)
    [row] = await activity(migrated_database_url, client.address)
    assert (row.action, row.user_id, row.ip_address) == ("login", member.id, client.address)
    user = await get_row(migrated_database_url, User, member.id)
    assert user.last_login_at is not None


async def test_login_refuses_unknown_fields(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session))
    async with api_client(migrated_database_url) as client:
        for extra in (
            {"role": "System Admin"},
            {"tenantId": str(uuid.uuid4())},
            {"isSystemAdmin": True},
            {"twoFactorEnabled": False},
        ):
            response = await client.post(LOGIN, json={"email": member.email, "password": PASSWORD, **extra})
            body = problem(response, 422, "validation_error")
            assert body["errors"][0]["type"] == "extra_forbidden"
    assert await sessions_of(migrated_database_url, member.id) == []


async def test_an_account_logs_in_with_its_e_mail_in_any_case_and_has_no_case_twin(
    migrated_database_url: str,
) -> None:
    """Legacy data could hold `Ana@x` and `ana@x` (its unique key is case-sensitive); since 0013 the
    database refuses the second one (tests/migrations/test_email_unique.py), and a login in any case
    finds the one account."""
    local = unique("twin-")
    async with system_session(migrated_database_url) as session:
        tenant = await make_tenant(session)
        member = await make_user(session, tenant, SystemRole.trainer, email=f"{local}@example.org")
    with pytest.raises(IntegrityError):
        async with system_session(migrated_database_url) as session:
            await make_user(session, tenant, SystemRole.trainer, email=f"{local.upper()}@example.org")
    async with api_client(migrated_database_url) as client:
        response = await attempt(client, f"{local.title()}@Example.org")
        me = await client.get("/api/v1/me", headers=bearer(response.json()["token"]))
    assert response.status_code == 200, response.text
    assert me.json()["id"] == str(member.id)
