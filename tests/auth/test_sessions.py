"""Sessions: idle and absolute expiry, logout, listing and ending one's own sessions, password change."""

import uuid
from datetime import timedelta
from http.cookies import SimpleCookie

from sqlalchemy import update

from mobility.auth.credentials import hash_token
from mobility.auth.models import Session
from mobility.authz.permissions import SystemRole
from mobility.core import security
from mobility.core.models import utcnow
from mobility.users.models import User
from tests.auth.support import activity, age_session, attempt, log_in, session_row
from tests.support.app import api_client, bearer, problem
from tests.support.factories import PASSWORD, make_tenant, make_user
from tests.support.sessions import get_row, system_session


async def test_idle_session_ends_after_the_idle_timeout(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), SystemRole.trainer)
    async with api_client(migrated_database_url, session_idle_timeout_minutes=5) as client:
        idle, busy = await log_in(client, member.email), await log_in(client, member.email)
        await age_session(migrated_database_url, idle, last_seen_at=timedelta(minutes=5, seconds=1))
        await age_session(migrated_database_url, busy, last_seen_at=timedelta(minutes=4))
        problem(await client.get("/api/v1/me", headers=bearer(idle)), 401, "session_invalid")
        assert (await client.get("/api/v1/me", headers=bearer(busy))).status_code == 200
    # The default (30 minutes) applies without the override.
    async with api_client(migrated_database_url) as client:
        assert (await client.get("/api/v1/me", headers=bearer(busy))).status_code == 200
        await age_session(migrated_database_url, busy, last_seen_at=timedelta(minutes=31))
        problem(await client.get("/api/v1/me", headers=bearer(busy)), 401, "session_invalid")


async def test_session_ends_at_its_absolute_expiry_however_busy(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), SystemRole.trainer)
    async with api_client(migrated_database_url) as client:
        token = await log_in(client, member.email)
        await age_session(migrated_database_url, token, expires_at=timedelta(seconds=1))
        problem(await client.get("/api/v1/me", headers=bearer(token)), 401, "session_invalid")
        problem(await client.get("/api/v1/me/sessions", headers=bearer(token)), 401)


async def test_use_moves_last_seen_forward_at_most_once_a_minute(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), SystemRole.trainer)
    async with api_client(migrated_database_url) as client:
        token = await log_in(client, member.email)
        at_login = (await session_row(migrated_database_url, token)).last_seen_at
        assert at_login is not None
        assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200
        assert (await session_row(migrated_database_url, token)).last_seen_at == at_login

        await age_session(migrated_database_url, token, last_seen_at=timedelta(seconds=90))
        aged = (await session_row(migrated_database_url, token)).last_seen_at
        before = utcnow()
        assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200
        touched = (await session_row(migrated_database_url, token)).last_seen_at
        assert touched > aged and touched >= before - timedelta(seconds=1)

        assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200
        assert (await session_row(migrated_database_url, token)).last_seen_at == touched


async def test_logout_ends_the_session_and_clears_the_cookie(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), SystemRole.trainer)
    async with api_client(migrated_database_url) as client:
        by_header, by_cookie = await log_in(client, member.email), await log_in(client, member.email)

        response = await client.post("/api/v1/auth/logout", headers=bearer(by_header))
        assert response.status_code == 204, response.text
        cleared = SimpleCookie(response.headers["set-cookie"])["mobility_session"]
        assert cleared.value == ""
        assert int(cleared["max-age"]) <= 0
        # Same attributes as the cookie it replaces, or a browser may keep the old one.
        assert cleared["path"] == "/" and cleared["secure"] and cleared["httponly"]
        assert cleared["samesite"] == "strict"

        problem(await client.get("/api/v1/me", headers=bearer(by_header)), 401, "session_invalid")
        problem(await client.post("/api/v1/auth/logout", headers=bearer(by_header)), 401)
        assert (await session_row(migrated_database_url, by_header)).revoked_at is not None

        # Logging out one session leaves the others; a cookie-only client logs out too.
        cookie = {"Cookie": f"mobility_session={by_cookie}"}
        assert (await client.get("/api/v1/me", headers=cookie)).status_code == 200
        assert (await client.post("/api/v1/auth/logout", headers=cookie)).status_code == 204
        problem(await client.get("/api/v1/me", headers=cookie), 401)

    logged = [(row.action, row.user_id) for row in await activity(migrated_database_url, client.address)]
    assert sorted(logged) == [("login", member.id)] * 2 + [("logout", member.id)] * 2


async def test_my_sessions_lists_only_my_live_sessions(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        tenant = await make_tenant(session)
        admin = await make_user(session, tenant, SystemRole.admin)
        colleague = await make_user(session, tenant, SystemRole.trainer)
    async with api_client(migrated_database_url) as client:
        mine = await log_in(client, admin.email)
        other_mine = await log_in(client, admin.email)
        logged_out = await log_in(client, admin.email)
        expired = await log_in(client, admin.email)
        theirs = await log_in(client, colleague.email)
        assert (await client.post("/api/v1/auth/logout", headers=bearer(logged_out))).status_code == 204
        await age_session(migrated_database_url, expired, expires_at=timedelta(seconds=1))

        response = await client.get("/api/v1/me/sessions", headers=bearer(mine))
        assert response.status_code == 200, response.text
        listed = response.json()
        expected = {
            str((await session_row(migrated_database_url, token)).id): token == mine
            for token in (mine, other_mine)
        }
        assert {row["id"]: row["current"] for row in listed} == expected
        for row in listed:
            assert "token" not in row
            assert row["ipAddress"] == client.address
            assert row["tenantId"] == str(tenant.id)
        # The colleague sees only their own.
        theirs_listed = (await client.get("/api/v1/me/sessions", headers=bearer(theirs))).json()
        assert [row["id"] for row in theirs_listed] == [
            str((await session_row(migrated_database_url, theirs)).id)
        ]


async def test_my_sessions_leaves_out_sessions_idle_past_the_timeout(migrated_database_url: str) -> None:
    """A session unused for longer than the idle timeout cannot be used any more, so it is not listed.
    Unused means since its lastSeenAt, or since its createdAt when it was never seen (as when a request
    authenticates it, test_idle_session_ends_after_the_idle_timeout)."""
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), SystemRole.trainer)
    async with api_client(migrated_database_url, session_idle_timeout_minutes=5) as client:
        mine, busy, idle, never_seen, never_seen_idle = [await log_in(client, member.email) for _ in range(5)]
        await age_session(migrated_database_url, busy, last_seen_at=timedelta(minutes=4))
        await age_session(migrated_database_url, idle, last_seen_at=timedelta(minutes=5, seconds=1))
        await age_session(migrated_database_url, never_seen, created_at=timedelta(minutes=4))
        await age_session(migrated_database_url, never_seen_idle, created_at=timedelta(minutes=5, seconds=1))
        async with system_session(migrated_database_url) as session:
            await session.execute(
                update(Session)
                .where(Session.token.in_([hash_token(never_seen), hash_token(never_seen_idle)]))
                .values(last_seen_at=None)
            )

        response = await client.get("/api/v1/me/sessions", headers=bearer(mine))
        assert response.status_code == 200, response.text
        live = {
            str((await session_row(migrated_database_url, token)).id) for token in (mine, busy, never_seen)
        }
        assert {row["id"] for row in response.json()} == live
        # Not listed because not usable, not because they were ended.
        for token in (idle, never_seen_idle):
            assert (await session_row(migrated_database_url, token)).revoked_at is None
            problem(await client.get("/api/v1/me", headers=bearer(token)), 401, "session_invalid")


async def test_ending_one_session_and_not_someone_elses(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        tenant = await make_tenant(session)
        # An Admin may see the members' sessions in the data layer; /me/sessions still ends only its own.
        admin = await make_user(session, tenant, SystemRole.admin)
        colleague = await make_user(session, tenant, SystemRole.trainer)
    async with api_client(migrated_database_url) as client:
        mine, other_mine = await log_in(client, admin.email), await log_in(client, admin.email)
        theirs = await log_in(client, colleague.email)
        other_mine_id = (await session_row(migrated_database_url, other_mine)).id
        theirs_id = (await session_row(migrated_database_url, theirs)).id

        for session_id in (theirs_id, uuid.uuid4()):
            problem(
                await client.delete(f"/api/v1/me/sessions/{session_id}", headers=bearer(mine)),
                404,
                "not_found",
            )
        assert (await client.get("/api/v1/me", headers=bearer(theirs))).status_code == 200
        assert (await session_row(migrated_database_url, theirs)).revoked_at is None
        # ... and the other way round.
        problem(await client.delete(f"/api/v1/me/sessions/{other_mine_id}", headers=bearer(theirs)), 404)

        response = await client.delete(f"/api/v1/me/sessions/{other_mine_id}", headers=bearer(mine))
        assert response.status_code == 204, response.text
        problem(await client.get("/api/v1/me", headers=bearer(other_mine)), 401, "session_invalid")
        assert (await client.get("/api/v1/me", headers=bearer(mine))).status_code == 200
        # Already ended: nothing left to end.
        problem(await client.delete(f"/api/v1/me/sessions/{other_mine_id}", headers=bearer(mine)), 404)
        problem(await client.delete("/api/v1/me/sessions/not-a-uuid", headers=bearer(mine)), 422)

    ended = [
        row for row in await activity(migrated_database_url, client.address) if row.action == "session_ended"
    ]
    assert [(row.user_id, row.details["session_id"]) for row in ended] == [(admin.id, str(other_mine_id))]


async def test_password_change(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), SystemRole.trainer)
    new_password = f"  a new and long passphrase {uuid.uuid4().hex[:6]}  "
    async with api_client(migrated_database_url) as client:
        current, other = await log_in(client, member.email), await log_in(client, member.email)
        change = "/api/v1/me/password"

        for body, field in (
            ({"currentPassword": "not-my-password", "newPassword": new_password}, "currentPassword"),
            ({"currentPassword": PASSWORD, "newPassword": "short"}, "newPassword"),
            (
                {"currentPassword": PASSWORD, "newPassword": f"{member.email.split('@')[0]}-2024!"},
                "newPassword",
            ),
        ):
            refused = problem(await client.post(change, json=body, headers=bearer(current)), 422)
            assert refused["field"] == field
        # Unknown fields are refused, not ignored.
        problem(
            await client.post(
                change,
                json={"currentPassword": PASSWORD, "newPassword": new_password, "userId": str(member.id)},
                headers=bearer(current),
            ),
            422,
            "validation_error",
        )
        assert (await client.get("/api/v1/me", headers=bearer(other))).status_code == 200

        response = await client.post(
            change, json={"currentPassword": PASSWORD, "newPassword": new_password}, headers=bearer(current)
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"otherSessionsEnded": 1}
        assert (await client.get("/api/v1/me", headers=bearer(current))).status_code == 200
        problem(await client.get("/api/v1/me", headers=bearer(other)), 401, "session_invalid")

        problem(await attempt(client, member.email, PASSWORD), 401, "invalid_credentials")
        # The password is taken as typed: surrounding spaces are part of it.
        problem(await attempt(client, member.email, new_password.strip()), 401)
        await log_in(client, member.email, new_password)

    user = await get_row(migrated_database_url, User, member.id)
    assert user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert security.verify_password(user.password_hash, new_password)
    assert user.password_changed_at is not None
    changed = [
        row
        for row in await activity(migrated_database_url, client.address)
        if row.action == "password_changed"
    ]
    assert [(row.user_id, row.details["sessions_ended"]) for row in changed] == [(member.id, 1)]
