"""A user's login sessions: listing the live ones, ending one, ending all (password change, suspension)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.auth.activity import record_activity
from mobility.auth.models import Session
from mobility.core.config import Settings
from mobility.core.errors import NotFound
from mobility.core.models import utcnow
from mobility.core.scope import require_scope


async def list_sessions(session: AsyncSession, settings: Settings) -> list[Session]:
    """The caller's live sessions, newest first: those a request can still use, by the rules of
    `authentication._scope_of` (not revoked, not expired, not idle past the idle timeout)."""
    scope = require_scope(session)
    now = utcnow()
    idle_cutoff = now - timedelta(minutes=settings.session_idle_timeout_minutes)
    rows = await session.execute(
        select(Session)
        .where(
            Session.user_id == scope.actor_id,
            Session.revoked_at.is_(None),
            Session.expires_at > now,
            # Idle since last seen, or since made when never seen.
            or_(
                Session.last_seen_at > idle_cutoff,
                and_(Session.last_seen_at.is_(None), Session.created_at > idle_cutoff),
            ),
        )
        .order_by(Session.created_at.desc())
    )
    return list(rows.scalars())


async def revoke_own_session(session: AsyncSession, session_id: uuid.UUID) -> None:
    """End one of the caller's own sessions; another user's session does not exist for this call."""
    scope = require_scope(session)
    await revoke_session(session, session_id, user_id=scope.actor_id)
    record_activity(
        session, "session_ended", user_id=scope.actor_id, ip=scope.ip_address, session_id=str(session_id)
    )


async def revoke_session(session: AsyncSession, session_id: uuid.UUID | None, *, user_id: uuid.UUID) -> None:
    target = (
        await session.execute(select(Session).where(Session.id == session_id, Session.user_id == user_id))
    ).scalar_one_or_none()
    if target is None or target.revoked_at is not None:
        raise NotFound("No such session.")
    target.revoked_at = utcnow()


async def revoke_all_sessions(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    except_id: uuid.UUID | None = None,
    tenant_id: uuid.UUID | None = None,
) -> int:
    """End every live session of a user (password change, suspension, 2FA reset), or those acting in
    `tenant_id` (a suspended membership)."""
    statement = update(Session).where(Session.user_id == user_id, Session.revoked_at.is_(None))
    if except_id is not None:
        statement = statement.where(Session.id != except_id)
    if tenant_id is not None:
        statement = statement.where(Session.tenant_id == tenant_id)
    result = await session.execute(
        statement.values(revoked_at=utcnow()), execution_options={"synchronize_session": False}
    )
    return result.rowcount or 0
