"""The auth domain's periodic jobs: forgetting what no longer counts (sessions, throttles, reset links)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, or_
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.auth.models import PasswordReset, Session
from mobility.auth.throttling import purge_stale_throttles
from mobility.core.jobs import Job, JobContext

# Ended sessions are kept this long (a user's "where am I logged in" and an Admin's look at a suspended
# account's last sessions); the logins themselves stay in activity_logs.
ENDED_SESSIONS_KEPT = timedelta(days=1)


async def delete_ended_sessions(session: AsyncSession, context: JobContext) -> dict[str, Any]:
    """Sessions that expired or were ended more than a day ago: no request can use them again."""
    cutoff = context.now - ENDED_SESSIONS_KEPT
    result = await session.execute(
        delete(Session)
        .where(or_(Session.expires_at < cutoff, Session.revoked_at < cutoff))
        .execution_options(synchronize_session=False)
    )
    return {"deleted": result.rowcount or 0}


async def purge_login_throttles(session: AsyncSession, context: JobContext) -> dict[str, Any]:
    """Login-throttle counters that no longer change any answer (as `mobility db purge-throttles`)."""
    return {"deleted": await purge_stale_throttles(session, context.settings, now=context.now)}


async def delete_spent_reset_links(session: AsyncSession, context: JobContext) -> dict[str, Any]:
    """Password-reset links used or expired more than a day ago."""
    cutoff = context.now - timedelta(days=1)
    result = await session.execute(
        delete(PasswordReset)
        .where(or_(PasswordReset.expires_at < cutoff, PasswordReset.used_at < cutoff))
        .execution_options(synchronize_session=False)
    )
    return {"deleted": result.rowcount or 0}


JOBS = [
    Job(
        "sessions.cleanup",
        "Delete sessions that ended (expired or revoked) over a day ago.",
        timedelta(hours=1),
        delete_ended_sessions,
    ),
    Job(
        "login-throttles.purge",
        "Delete login-throttle counters that no longer count.",
        timedelta(days=1),
        purge_login_throttles,
    ),
    Job(
        "password-resets.purge",
        "Delete password-reset links used or expired over a day ago.",
        timedelta(days=1),
        delete_spent_reset_links,
    ),
]
