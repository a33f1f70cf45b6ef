"""A logged-in user proves it is them again before changing their credentials (password, 2FA)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from mobility.auth.activity import record_activity
from mobility.auth.one_time_codes import use_recovery_code, use_totp
from mobility.auth.throttling import TooManyAttempts, account_key, hold_throttle
from mobility.core import security
from mobility.core.config import Settings
from mobility.core.errors import InvalidInput
from mobility.core.models import utcnow
from mobility.core.scope import require_scope
from mobility.users.models import User


class WrongReauthentication(InvalidInput):
    """A wrong password or code where an endpoint re-authenticates the user: counted like a failed login."""

    keeps_writes = True


async def reauthenticate(
    session: AsyncSession,
    user: User,
    *,
    settings: Settings,
    password: str,
    two_factor: bool = False,
    code: str | None = None,
    password_field: str = "password",
) -> None:
    """The logged-in user proves it is them again: the password and, with `two_factor` when 2FA is on,
    a current TOTP code or a recovery code.

    Wrong answers count against the account like failed logins, and a locked account is refused:
    otherwise a stolen session would be an unthrottled way to guess the password.
    """
    ip = require_scope(session).ip_address
    account = account_key(user.email)
    throttle = await hold_throttle(
        session, {account: settings.login_free_failures}, settings.login_max_lockout_seconds
    )
    now = utcnow()
    wait = throttle.wait(now)
    if wait is not None:
        record_activity(session, "reauthentication_throttled", user_id=user.id, ip=ip)
        raise TooManyAttempts(retry_after=wait)
    two_factor = two_factor and user.two_factor_enabled
    if two_factor and not code:
        raise InvalidInput("A current two-factor code or a recovery code is required.", field="code")
    if not security.verify_password(user.password_hash, password):
        throttle.count_failure(now)
        record_activity(session, "reauthentication_failed", user_id=user.id, ip=ip, reason="password")
        raise WrongReauthentication("The password is wrong.", field=password_field)
    if two_factor and not (use_totp(user, code, now) or use_recovery_code(user, code)):
        throttle.count_failure(now)
        record_activity(session, "reauthentication_failed", user_id=user.id, ip=ip, reason="two_factor")
        raise WrongReauthentication("The two-factor code is wrong or was already used.", field="code")
    await throttle.release(session, clear=account)
