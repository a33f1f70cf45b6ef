"""Two-factor authentication on one's own account: set-up, confirmation, disabling, new recovery codes.

Turning it on or changing it asks for the password again (and, once on, a code): a stolen session alone
must not be able to enrol another authenticator or switch the second factor off.
"""

from __future__ import annotations

import pyotp
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.auth.activity import record_activity
from mobility.auth.caller import current_user
from mobility.auth.one_time_codes import new_recovery_codes, use_totp
from mobility.auth.reauthentication import reauthenticate
from mobility.core.config import Settings
from mobility.core.errors import InvalidInput
from mobility.core.models import utcnow
from mobility.core.scope import require_scope
from mobility.users.models import User

TOTP_ISSUER = "WTI Labour Mobility"


async def begin_totp(session: AsyncSession, *, settings: Settings, password: str) -> tuple[str, str]:
    """A new secret (not active until confirmed with a first code) and its otpauth:// URI. Asks for the
    password again: a stolen session alone must not be able to enrol another authenticator."""
    user = await current_user(session)
    if user.two_factor_enabled:
        raise InvalidInput("Two-factor authentication is already on; disable it first.")
    await reauthenticate(session, user, settings=settings, password=password)
    user.totp_secret = pyotp.random_base32()
    user.totp_last_step = None
    return user.totp_secret, pyotp.TOTP(user.totp_secret).provisioning_uri(
        name=user.email, issuer_name=TOTP_ISSUER
    )


async def confirm_totp(session: AsyncSession, code: str) -> list[str]:
    user = await current_user(session)
    if user.two_factor_enabled or not user.totp_secret:
        raise InvalidInput("Start two-factor set-up first.")
    if not use_totp(user, code, utcnow()):
        raise InvalidInput("The code is wrong; check the clock of your device.", field="code")
    user.two_factor_enabled = True
    codes = new_recovery_codes(user)
    record_activity(session, "two_factor_enabled", user_id=user.id, ip=require_scope(session).ip_address)
    return codes


async def disable_totp(session: AsyncSession, *, settings: Settings, password: str, code: str | None) -> None:
    user = await current_user(session)
    if not user.two_factor_enabled:
        raise InvalidInput("Two-factor authentication is not on.")
    await reauthenticate(session, user, settings=settings, password=password, two_factor=True, code=code)
    clear_two_factor(user)
    scope = require_scope(session)
    record_activity(session, "two_factor_disabled", user_id=user.id, ip=scope.ip_address)
    await notify_two_factor_off(session, user, scope.ip_address)


async def regenerate_recovery_codes(
    session: AsyncSession, *, settings: Settings, password: str, code: str | None
) -> list[str]:
    user = await current_user(session)
    if not user.two_factor_enabled:
        raise InvalidInput("Two-factor authentication is not on.")
    await reauthenticate(session, user, settings=settings, password=password, two_factor=True, code=code)
    codes = new_recovery_codes(user)
    record_activity(
        session, "recovery_codes_regenerated", user_id=user.id, ip=require_scope(session).ip_address
    )
    return codes


def clear_two_factor(user: User) -> None:
    """Two-factor off, its secret and recovery codes gone (disabled by the user, or reset for them)."""
    user.two_factor_enabled = False
    user.totp_secret = None
    user.totp_last_step = None
    user.recovery_codes = None


async def notify_two_factor_off(session: AsyncSession, user: User, ip: str | None) -> None:
    """The security notice that two-factor authentication was turned off (by the user or reset by an Admin)."""
    from mobility.notifications import service as notifications

    await notifications.notify_account(
        session,
        user,
        "security.two_factor_disabled",
        {"ip_address": ip, "at": utcnow()},
        tenant_id=require_scope(session).tenant_id,
    )
