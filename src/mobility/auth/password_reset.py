"""Forgotten passwords: a single-use, short-lived link by e-mail, and setting the password with it.

Asking answers the same whatever the e-mail (no account enumeration): a link is queued only for an
active account, and every request counts against throttles of its own per address asked for and per
client address (`account:reset:<e-mail>`, `address:reset:<ip>`, purged like the login counters), so
the answer to a throttled request, a 429, does not depend on the account either. A new link replaces
the account's earlier unused ones. Completing it sets the password (the policy applies), ends every
session of the account, clears its login throttle, and is recorded in the activity log and the audit
trail; the account is told by a security notice.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.auth.activity import record_activity
from mobility.auth.credentials import hash_token, normalise_email
from mobility.auth.models import LoginThrottle, PasswordReset
from mobility.auth.sessions import revoke_all_sessions
from mobility.auth.throttling import TooManyAttempts, account_key, hold_throttle
from mobility.core import audit, security
from mobility.core.config import Settings
from mobility.core.errors import AppError, InvalidInput, NotFound
from mobility.core.models import utcnow
from mobility.core.scope import Scope, apply_to_database
from mobility.notifications import service as notifications
from mobility.users.models import User, user_by_email

RESET_TOKEN_BYTES = 32
# A request is not a failed login: it gets its own counters, and fewer free tries.
FREE_REQUESTS_PER_ADDRESS_ASKED = 3
FREE_REQUESTS_PER_CLIENT = 10


class ResetLinkUnusable(AppError):
    status, code, title = 410, "reset_link_unusable", "The reset link can no longer be used"


async def request_reset(
    session: AsyncSession,
    *,
    settings: Settings,
    email: str,
    ip: str | None = None,
    request_id: str | None = None,
) -> None:
    await apply_to_database(session, Scope.for_system(ip_address=ip, request_id=request_id))
    email = normalise_email(email)
    throttle = await hold_throttle(
        session,
        {
            f"account:reset:{email}": FREE_REQUESTS_PER_ADDRESS_ASKED,
            f"address:reset:{ip or 'unknown'}": FREE_REQUESTS_PER_CLIENT,
        },
        settings.login_max_lockout_seconds,
    )
    now = utcnow()
    wait = throttle.wait(now)
    if wait is not None:
        raise TooManyAttempts(retry_after=wait)
    throttle.count_failure(now)  # every request counts
    user = (await session.execute(user_by_email(email))).scalars().first()
    record_activity(
        session, "password_reset_requested", user_id=user.id if user else None, ip=ip, email=email
    )
    if user is None or user.status != "active":
        return
    # Earlier unused links stop working: only the newest e-mail's link sets the password.
    await session.execute(
        update(PasswordReset)
        .where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    token = secrets.token_urlsafe(RESET_TOKEN_BYTES)
    session.add(
        PasswordReset(
            user_id=user.id,
            token_hash=hash_token(token),
            expires_at=now + timedelta(minutes=settings.password_reset_minutes),
            ip_address=ip,
            created_at=now,
        )
    )
    await notifications.notify_account(
        session,
        user,
        "account.password_reset",
        {
            "link": f"{settings.public_url.rstrip('/')}/reset-password#token={token}",
            "expires_minutes": settings.password_reset_minutes,
        },
        channels=(notifications.EMAIL,),
    )


async def complete_reset(
    session: AsyncSession,
    *,
    token: str,
    password: str,
    ip: str | None = None,
    request_id: str | None = None,
) -> int:
    """Set the password with a reset link's token; returns how many sessions ended."""
    await apply_to_database(session, Scope.for_system(ip_address=ip, request_id=request_id))
    now = utcnow()
    # Locked: of two requests with one token, the second waits and then finds it used.
    reset = (
        await session.execute(
            select(PasswordReset).where(PasswordReset.token_hash == hash_token(token)).with_for_update()
        )
    ).scalar_one_or_none()
    if reset is None:
        raise NotFound("This reset link does not exist; check it, or ask for a new one.")
    if reset.used_at is not None:
        raise ResetLinkUnusable("This reset link was used or replaced by a newer one; ask for a new one.")
    if reset.expires_at <= now:
        raise ResetLinkUnusable("This reset link has expired; ask for a new one.")
    user = (await session.execute(select(User).where(User.id == reset.user_id))).scalar_one()
    if user.status != "active":
        raise ResetLinkUnusable(f"This account is {user.status}.")
    try:
        security.check_password_strength(password, email=user.email)
    except InvalidInput as exc:
        raise InvalidInput(exc.detail, field="password") from None
    await apply_to_database(session, Scope.for_system(actor_id=user.id, ip_address=ip, request_id=request_id))
    reset.used_at = now
    user.password_hash = security.hash_password(password)
    user.password_changed_at = now
    user.updated_by = user.id
    ended = await revoke_all_sessions(session, user.id)
    # The owner proved control of the address: the account's failed logins are forgiven.
    throttled = (
        await session.execute(select(LoginThrottle).where(LoginThrottle.key == account_key(user.email)))
    ).scalar_one_or_none()
    if throttled is not None:
        await session.delete(throttled)
    record_activity(session, "password_reset", user_id=user.id, ip=ip, sessions_ended=ended)
    await audit.flush_as(session, "user.reset_password", conflict="The account changed meanwhile.")
    await notifications.notify_account(
        session, user, "security.password_reset", {"ip_address": ip, "at": now}
    )
    return ended
