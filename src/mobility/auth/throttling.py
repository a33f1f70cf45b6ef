"""Login throttling: failed logins counted per account and per client address (`login_throttles`).

Past a few free failures a counter locks for 1 s, 2 s, 4 s, ... up to `login_max_lockout_seconds`, so
guessing is slow and a real user is never kept out for long. Logins (auth.login) and re-authentication
(auth.reauthentication: password change, 2FA changes) count against the same account counter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.auth.credentials import normalise_email
from mobility.auth.models import LoginThrottle
from mobility.core.config import Settings
from mobility.core.errors import TooManyRequests
from mobility.core.models import utcnow


class TooManyAttempts(TooManyRequests):
    code, title = "too_many_attempts", "Too many failed logins; wait and try again"
    keeps_writes = True


@dataclass
class Throttle:
    """The counters one attempt is throttled by ("account:<e-mail>", "address:<ip>"), each with its
    number of free failures, held (locked) by the attempt's transaction until it ends."""

    rows: dict[str, LoginThrottle]
    free: dict[str, int]
    max_lockout: int

    def wait(self, now: datetime) -> int | None:
        """Seconds until every counter allows another try; None when none is locked."""
        waits = [
            (row.locked_until - now).total_seconds()
            for row in self.rows.values()
            if row.locked_until is not None and row.locked_until > now
        ]
        return max(1, math.ceil(max(waits))) if waits else None

    def count_failure(self, now: datetime) -> None:
        """One more failure on each counter; past its free failures it locks for 1 s, 2 s, 4 s, ...
        up to `max_lockout`. A counter quiet for long enough starts again (see `_forget_after`)."""
        for key, row in self.rows.items():
            free = self.free[key]
            if row.last_failure_at is not None and now - row.last_failure_at > _forget_after(
                free, self.max_lockout
            ):
                row.failures, row.locked_until = 0, None
            row.failures += 1
            row.last_failure_at = now
            over = row.failures - free
            if over >= 0:
                row.locked_until = now + timedelta(seconds=min(2 ** min(over, 62), self.max_lockout))

    async def release(self, session: AsyncSession, *, clear: str | None = None) -> None:
        """Drop the counters that hold no failure (and `clear`'s, after a success): the table keeps
        only addresses and accounts that have failed."""
        for key, row in self.rows.items():
            if key == clear or row.failures == 0:
                await session.delete(row)


def _forget_after(free: int, max_lockout: int) -> timedelta:
    """How long a counter must stay quiet for its failures to be forgotten.

    Without forgetting, a count that only grows (honest typos over months, an office behind one
    address) would lock at the maximum on its first mistake. The period is long enough that waiting it
    out buys an attacker no more guesses than guessing at the maximum lockout all along: the free
    failures plus the doubling waits up to the maximum, each at most `max_lockout` apart.
    """
    return timedelta(seconds=(free + max_lockout.bit_length() + 1) * max_lockout)


_ACCOUNT_PREFIX, _ADDRESS_PREFIX = "account:", "address:"  # the two kinds of counter


async def purge_stale_throttles(
    session: AsyncSession, settings: Settings, *, now: datetime | None = None
) -> int:
    """Deletes the counters that no longer count, and returns how many.

    A counter with no failure, or one unlocked and quiet for longer than its forgetting period,
    starts again from zero at its next failure (`Throttle.count_failure`): deleting it changes no
    answer. Without this the table keeps a row for every address that ever failed to log in.
    (Run by `mobility db purge-throttles`, from cron or a timer.)"""
    now = now or utcnow()
    deleted = 0
    for prefix, free in (
        (_ACCOUNT_PREFIX, settings.login_free_failures),
        (_ADDRESS_PREFIX, settings.login_free_failures_per_address),
    ):
        quiet_since = now - _forget_after(free, settings.login_max_lockout_seconds)
        result = await session.execute(
            delete(LoginThrottle)
            .where(LoginThrottle.key.startswith(prefix, autoescape=True))
            .where(
                or_(
                    LoginThrottle.failures == 0,
                    and_(
                        LoginThrottle.last_failure_at < quiet_since,
                        or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until <= now),
                    ),
                )
            )
        )
        deleted += result.rowcount
    return deleted


def account_key(email: str) -> str:
    return _ACCOUNT_PREFIX + normalise_email(email)


def address_key(ip: str | None) -> str:
    return _ADDRESS_PREFIX + (ip or "unknown")


async def hold_throttle(session: AsyncSession, free: dict[str, int], max_lockout: int) -> Throttle:
    """The counters of `free`'s keys, made if missing and locked until the transaction ends.

    The lock makes concurrent attempts on one account or address take turns (PostgreSQL: the row lock
    of the upsert; SQLite: its single writer), so each sees the failures counted before it: guesses
    sent all at once cannot slip past the lockout. Keys are locked in sorted order: no deadlocks.
    """
    insert = postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert
    for key in sorted(free):
        statement = insert(LoginThrottle).values(key=key, failures=0)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[LoginThrottle.key], set_={"failures": LoginThrottle.failures}
            )
        )
    rows = await session.execute(
        select(LoginThrottle)
        .where(LoginThrottle.key.in_(list(free)))
        .execution_options(populate_existing=True)
    )
    return Throttle(rows={row.key: row for row in rows.scalars()}, free=free, max_lockout=max_lockout)
