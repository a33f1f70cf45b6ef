"""Login throttling per account and per client address: guessing is slow, lockouts are short.

Time is simulated by moving `login_throttles.lockedUntil` (and `lastFailureAt`): into the past to end a
lock, into the future to keep a lock running while the next tries arrive (a loaded machine may take
longer than a 1 s lock between two requests). Lock durations are read from the rows.
"""

import asyncio
import uuid
from datetime import timedelta

from mobility.auth.models import LoginThrottle
from mobility.auth.throttling import purge_stale_throttles
from mobility.authz.permissions import SystemRole
from mobility.core.config import Settings
from mobility.core.models import utcnow
from tests.auth.support import activity, attempt, log_in, set_throttle, throttle
from tests.support.app import api_client, bearer, problem
from tests.support.factories import PASSWORD, make_tenant, make_user
from tests.support.sessions import system_session

WRONG = "nope-nope-nope"
# Three free failures per account; the address limit out of the way unless a test is about it.
ACCOUNT_LIMITS = {"login_free_failures": 3, "login_free_failures_per_address": 1000}


async def _expire(database_url: str, key: str) -> None:
    await set_throttle(database_url, key, locked_until=utcnow() - timedelta(seconds=1))


async def _keep_locked(database_url: str, key: str, seconds: int = 30) -> None:
    await set_throttle(database_url, key, locked_until=utcnow() + timedelta(seconds=seconds))


async def _lock_of(database_url: str, key: str) -> timedelta:
    row = await throttle(database_url, key)
    return row.locked_until - row.last_failure_at


def _retry_after(response) -> int:
    problem(response, 429, "too_many_attempts")
    return int(response.headers["retry-after"])


async def test_account_lockout_is_short_grows_and_resets(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), SystemRole.trainer)
    key = f"account:{member.email}"
    async with api_client(migrated_database_url, **ACCOUNT_LIMITS) as client:
        # E-mails are one account whatever their case.
        for email in (member.email, member.email.upper(), member.email):
            problem(await attempt(client, email, WRONG), 401, "invalid_credentials")
        # The third failure locks the account for 1 s ...
        assert (await throttle(migrated_database_url, key)).failures == 3
        assert await _lock_of(migrated_database_url, key) == timedelta(seconds=1)
        # ... and while locked the fourth try is refused, even with the right password.
        await _keep_locked(migrated_database_url, key, 30)
        assert 28 <= _retry_after(await attempt(client, member.email, WRONG)) <= 30
        assert 28 <= _retry_after(await attempt(client, member.email)) <= 30
        assert (await throttle(migrated_database_url, key)).failures == 3  # refusals are not failures

        # Each further failure doubles the wait: 2 s, then 4 s.
        for wait in (2, 4):
            await _expire(migrated_database_url, key)
            problem(await attempt(client, member.email, WRONG), 401)
            assert await _lock_of(migrated_database_url, key) == timedelta(seconds=wait)
            await _keep_locked(migrated_database_url, key, wait)
            assert 0 < _retry_after(await attempt(client, member.email)) <= wait

        # Once the wait is over the right password works, and the count starts again.
        await _expire(migrated_database_url, key)
        await log_in(client, member.email)
        assert await throttle(migrated_database_url, key) is None
        for _ in range(3):
            problem(await attempt(client, member.email, WRONG), 401)
        assert await _lock_of(migrated_database_url, key) == timedelta(seconds=1)
        await _keep_locked(migrated_database_url, key)
        assert _retry_after(await attempt(client, member.email)) > 0

    logged = [(row.action, row.user_id) for row in await activity(migrated_database_url, client.address)]
    assert logged.count(("login_failed", member.id)) == 8
    assert logged.count(("login_throttled", member.id)) == 5
    assert logged.count(("login", member.id)) == 1
    assert len(logged) == 14


async def test_an_attacker_cannot_lock_a_user_out_for_long(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), SystemRole.trainer)
    key = f"account:{member.email}"
    limits = {**ACCOUNT_LIMITS, "login_max_lockout_seconds": 60}
    async with api_client(migrated_database_url, **limits) as attacker:
        for _ in range(3):
            await attempt(attacker, member.email, WRONG)
        # Pretend the attacker has kept at it for a long time.
        await set_throttle(
            migrated_database_url, key, failures=500, locked_until=utcnow() - timedelta(seconds=1)
        )
        problem(await attempt(attacker, member.email, WRONG), 401)
        row = await throttle(migrated_database_url, key)
        assert row.locked_until - row.last_failure_at == timedelta(seconds=60)
        assert _retry_after(await attempt(attacker, member.email, WRONG)) <= 60
    # The real user, elsewhere, waits at most the maximum, then gets in.
    async with api_client(migrated_database_url, **limits) as user:
        assert _retry_after(await attempt(user, member.email)) <= 60
        await _expire(migrated_database_url, key)
        await log_in(user, member.email)


async def test_failures_long_ago_are_forgotten(migrated_database_url: str) -> None:
    """A count that only ever grows would, over months of honest typos, lock an account (or an office
    behind one address) for the maximum at its first mistake."""
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), SystemRole.trainer)
    key = f"account:{member.email}"
    async with api_client(migrated_database_url, **ACCOUNT_LIMITS) as client:
        for _ in range(3):
            await attempt(client, member.email, WRONG)
        await set_throttle(
            migrated_database_url,
            key,
            failures=40,
            last_failure_at=utcnow() - timedelta(days=2),
            locked_until=utcnow() - timedelta(days=2),
        )
        problem(await attempt(client, member.email, WRONG), 401)
        row = await throttle(migrated_database_url, key)
        assert row.failures == 1 and row.locked_until is None
        await log_in(client, member.email)


async def test_an_address_is_limited_across_accounts(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        tenant = await make_tenant(session)
        members = [await make_user(session, tenant, SystemRole.trainer) for _ in range(3)]
    limits = {"login_free_failures": 100, "login_free_failures_per_address": 3}
    async with api_client(migrated_database_url, **limits) as sprayer:
        emails = [members[0].email, members[1].email, f"nobody-{uuid.uuid4().hex}@example.org"]
        for email in emails:
            problem(await attempt(sprayer, email, WRONG), 401, "invalid_credentials")
        address_key = f"address:{sprayer.address}"
        assert (await throttle(migrated_database_url, address_key)).failures == 3
        assert await _lock_of(migrated_database_url, address_key) == timedelta(seconds=1)
        # Any account, even with its right password, from that address: wait.
        await _keep_locked(migrated_database_url, address_key)
        assert _retry_after(await attempt(sprayer, members[2].email)) > 0
        # Each account saw one failure only: none of them is locked.
        assert (await throttle(migrated_database_url, f"account:{members[0].email}")).locked_until is None
    async with api_client(migrated_database_url, **limits) as elsewhere:
        await log_in(elsewhere, members[2].email)
        await log_in(elsewhere, members[0].email)
    logged = sorted(
        (row.action, str(row.user_id)) for row in await activity(migrated_database_url, sprayer.address)
    )
    assert logged == sorted(
        [
            ("login_failed", str(members[0].id)),
            ("login_failed", str(members[1].id)),
            ("login_failed", "None"),
            ("login_throttled", str(members[2].id)),
        ]
    )


async def test_concurrent_guesses_are_counted_one_by_one(migrated_database_url: str) -> None:
    """Guesses sent all at once must not slip past the lock: each is counted before the next is checked
    (and two first failures at once must not collide on creating the counter)."""
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), SystemRole.trainer)
    async with api_client(migrated_database_url, **ACCOUNT_LIMITS) as attacker:
        first = await asyncio.gather(*(attempt(attacker, member.email, WRONG) for _ in range(2)))
        assert [response.status_code for response in first] == [401, 401], [r.text for r in first]
        # Far enough into the count that the next failure locks for minutes, not for 1 s.
        await set_throttle(migrated_database_url, f"account:{member.email}", failures=10)
        burst = await asyncio.gather(*(attempt(attacker, member.email, WRONG) for _ in range(6)))
    statuses = sorted(response.status_code for response in burst)
    assert statuses == [401] + [429] * 5, [response.text for response in burst]
    row = await throttle(migrated_database_url, f"account:{member.email}")
    assert row.failures == 11


async def test_re_authentication_is_throttled_like_a_login(migrated_database_url: str) -> None:
    """A stolen session must not be a way to guess the password without limit."""
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), SystemRole.trainer)
    key = f"account:{member.email}"
    change = "/api/v1/me/password"
    new_password = f"a long new passphrase {uuid.uuid4().hex[:6]}"
    async with api_client(migrated_database_url, **ACCOUNT_LIMITS) as client:
        auth = bearer(await log_in(client, member.email))
        for _ in range(3):
            body = {"currentPassword": WRONG, "newPassword": new_password}
            problem(await client.post(change, json=body, headers=auth), 422)
        assert await _lock_of(migrated_database_url, key) == timedelta(seconds=1)
        await _keep_locked(migrated_database_url, key)
        body = {"currentPassword": PASSWORD, "newPassword": new_password}
        assert _retry_after(await client.post(change, json=body, headers=auth)) > 0
        assert _retry_after(await attempt(client, member.email)) > 0
        await _expire(migrated_database_url, key)
        response = await client.post(change, json=body, headers=auth)
        assert response.status_code == 200, response.text
        assert await throttle(migrated_database_url, key) is None
    actions = [row.action for row in await activity(migrated_database_url, client.address)]
    assert actions.count("reauthentication_failed") == 3
    assert actions.count("reauthentication_throttled") == 1


async def test_purging_deletes_only_counters_that_no_longer_count(migrated_database_url: str) -> None:
    """Defaults: an account counter is forgotten after 75 min quiet, an address counter after 2.5 h
    (`_forget_after`); one with no failure holds nothing at all."""
    settings = Settings(database_url=migrated_database_url)
    now = utcnow()
    tag = uuid.uuid4().hex
    rows = {
        f"account:old-{tag}": (7, now - timedelta(hours=2), False),
        f"account:recent-{tag}": (7, now - timedelta(minutes=10), True),
        f"account:zero-{tag}": (0, None, False),
        f"address:quiet-2h-{tag}": (30, now - timedelta(hours=2), True),
        f"address:quiet-3h-{tag}": (30, now - timedelta(hours=3), False),
    }
    async with system_session(migrated_database_url) as session:
        for key, (failures, last, _kept) in rows.items():
            locked = last + timedelta(minutes=5) if last else None
            session.add(LoginThrottle(key=key, failures=failures, last_failure_at=last, locked_until=locked))
    async with system_session(migrated_database_url) as session:
        assert await purge_stale_throttles(session, settings) >= 3
    for key, (_failures, _last, kept) in rows.items():
        assert (await throttle(migrated_database_url, key) is not None) == kept, key

    # A purged counter starts again exactly as a kept, forgotten one would: from one failure, unlocked.
    async with system_session(migrated_database_url) as session:
        tenant = await make_tenant(session)
        member = await make_user(session, tenant, SystemRole.trainer)
        session.add(
            LoginThrottle(key=f"account:{member.email}", failures=9, last_failure_at=now - timedelta(hours=2))
        )
    async with system_session(migrated_database_url) as session:
        await purge_stale_throttles(session, settings)
    async with api_client(migrated_database_url) as client:
        problem(await attempt(client, member.email, WRONG), 401)
    counter = await throttle(migrated_database_url, f"account:{member.email}")
    assert counter.failures == 1 and counter.locked_until is None
