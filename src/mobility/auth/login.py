"""Logging in and out, switching tenant, changing one's password.

A login checks the password (and the second factor when it is on) under the login throttle, then opens
a session: an opaque random token (auth.credentials) in one of the user's tenants. Every login, logout
and failure goes to the activity log.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.audit.models import ActivityLog
from mobility.auth.activity import record_activity
from mobility.auth.authentication import authenticate_session_id
from mobility.auth.credentials import hash_token, normalise_email
from mobility.auth.models import Session
from mobility.auth.one_time_codes import use_recovery_code, use_totp
from mobility.auth.reauthentication import reauthenticate
from mobility.auth.sessions import revoke_all_sessions, revoke_session
from mobility.auth.throttling import TooManyAttempts, account_key, address_key, hold_throttle
from mobility.authz.permissions import SystemRole
from mobility.core import security
from mobility.core.config import Settings
from mobility.core.errors import AppError, Forbidden, Unauthorized
from mobility.core.models import utcnow
from mobility.core.scope import Scope, apply_to_database, require_scope
from mobility.notifications import service as notifications
from mobility.roles.models import Role
from mobility.tenants.models import Tenant
from mobility.users.models import User, UserTenant, user_by_email

TOKEN_BYTES = 32


# The 401s of login are Unauthorized, so they carry the WWW-Authenticate challenge a 401 must have.
class InvalidCredentials(Unauthorized):
    code, title = "invalid_credentials", "E-mail or password is wrong"
    keeps_writes = True


class TwoFactorRequired(Unauthorized):
    code, title = "two_factor_required", "A two-factor code is required"


class InvalidTwoFactorCode(Unauthorized):
    code, title = "invalid_two_factor_code", "The two-factor code is wrong or was already used"
    keeps_writes = True


class AccountInactive(AppError):
    status, code, title = 403, "account_inactive", "This account cannot log in"
    keeps_writes = True


class NoTenant(Forbidden):
    code, title = "no_tenant", "Not a member of that tenant"
    keeps_writes = True


@dataclass
class LoginResult:
    token: str
    session: Session
    scope: Scope


async def _system_role_name(session: AsyncSession, user: User) -> str | None:
    if user.role_id is None:
        return None
    return (
        await session.execute(select(Role.name).where(Role.id == user.role_id, Role.system_role))
    ).scalar()


async def _login_tenant(
    session: AsyncSession, user: User, tenant_code: str | None, is_system_admin: bool
) -> Tenant:
    statement = (
        select(Tenant, UserTenant.is_primary)
        .join(UserTenant, UserTenant.tenant_id == Tenant.id)
        .where(UserTenant.user_id == user.id, UserTenant.status == "active", Tenant.is_active)
        .order_by(UserTenant.is_primary.desc(), Tenant.name)
    )
    if tenant_code:
        statement = statement.where(func.upper(Tenant.code) == tenant_code.strip().upper())
    tenant = (await session.execute(statement.limit(1))).scalar()
    if tenant is None and is_system_admin:
        fallback = select(Tenant).where(Tenant.is_active).order_by(Tenant.name).limit(1)
        if tenant_code:
            fallback = fallback.where(func.upper(Tenant.code) == tenant_code.strip().upper())
        tenant = (await session.execute(fallback)).scalar()
    if tenant is None:
        raise NoTenant(
            f"You are not a member of an active tenant {tenant_code}."
            if tenant_code
            else "You are not a member of any active tenant."
        )
    return tenant


async def login(
    session: AsyncSession,
    *,
    settings: Settings,
    email: str,
    password: str,
    tenant_code: str | None = None,
    otp: str | None = None,
    recovery_code: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    request_id: str | None = None,
) -> LoginResult:
    await apply_to_database(session, Scope.for_system(ip_address=ip, request_id=request_id))
    email = normalise_email(email)
    account = account_key(email)
    throttle = await hold_throttle(
        session,
        {
            account: settings.login_free_failures,
            address_key(ip): settings.login_free_failures_per_address,
        },
        settings.login_max_lockout_seconds,
    )
    now = utcnow()  # after waiting for the counters, which a concurrent attempt may have held
    user = (await session.execute(user_by_email(email))).scalars().first()
    user_id = user.id if user else None

    def log(action: str, **details: object) -> None:
        record_activity(session, action, user_id=user_id, ip=ip, user_agent=user_agent, **details)

    wait = throttle.wait(now)
    if wait is not None:
        # Refused before the password is checked: while locked, even the right one does not get in.
        log("login_throttled", email=email)
        raise TooManyAttempts(retry_after=wait)

    # Verify against a dummy hash for unknown e-mails (and accounts without a password), so timing
    # does not tell which accounts exist.
    stored_hash = user.password_hash if user is not None else None
    password_ok = security.verify_password(stored_hash or security.dummy_hash(), password) and bool(
        stored_hash
    )
    if user is None or not password_ok:
        throttle.count_failure(now)
        log("login_failed", email=email, reason="password")
        raise InvalidCredentials()
    if user.status != "active":
        await throttle.release(session)
        log("login_refused", reason=user.status)
        raise AccountInactive(f"This account is {user.status}.")
    if user.two_factor_enabled:
        if not otp and not recovery_code:
            raise TwoFactorRequired(
                "Send the code from your authenticator app as `otp`, or a `recoveryCode`."
            )
        if not (use_totp(user, otp, now) if otp else use_recovery_code(user, recovery_code or "")):
            throttle.count_failure(now)
            log("login_failed", email=email, reason="two_factor")
            raise InvalidTwoFactorCode()
        if recovery_code and not otp:
            log("recovery_code_used", remaining=len(user.recovery_codes or []))

    is_system_admin = await _system_role_name(session, user) == SystemRole.system_admin
    try:
        tenant = await _login_tenant(session, user, tenant_code, is_system_admin)
    except NoTenant:
        await throttle.release(session)
        log("login_refused", reason="no_tenant", tenant=tenant_code)
        raise
    if security.needs_rehash(user.password_hash):
        user.password_hash = security.hash_password(password)
    await throttle.release(session, clear=account)
    user.last_login_at = now
    token = secrets.token_urlsafe(TOKEN_BYTES)
    row = Session(
        user_id=user.id,
        tenant_id=tenant.id,
        token=hash_token(token),
        expires_at=now + timedelta(hours=settings.session_absolute_timeout_hours),
        last_seen_at=now,
        ip_address=ip,
        user_agent=(user_agent or "")[:500] or None,
        created_at=now,
    )
    session.add(row)
    if ip and await _new_address(session, user.id, ip):
        await notifications.notify(
            session,
            "security.new_login",
            {
                "tenant_name": tenant.name,
                "ip_address": ip,
                "user_agent": (user_agent or "")[:200] or None,
                "at": now,
            },
            recipient_id=user.id,
            tenant_id=tenant.id,
        )
    log("login", tenant=tenant.code)
    await session.flush()
    scope = await authenticate_session_id(session, row.id, settings=settings, ip=ip, request_id=request_id)
    return LoginResult(token=token, session=row, scope=scope)


async def _new_address(session: AsyncSession, user_id, ip: str) -> bool:
    """The account has logged in before, never from this address (the activity log remembers)."""
    logins = select(ActivityLog.id).where(ActivityLog.user_id == user_id, ActivityLog.action == "login")
    if (await session.execute(logins.limit(1))).first() is None:
        return False  # a first login: nothing to compare with
    return (await session.execute(logins.where(ActivityLog.ip_address == ip).limit(1))).first() is None


async def logout(session: AsyncSession) -> None:
    scope = require_scope(session)
    await revoke_session(session, scope.session_id, user_id=scope.actor_id)
    record_activity(session, "logout", user_id=scope.actor_id, ip=scope.ip_address)


async def switch_tenant(session: AsyncSession, *, settings: Settings, tenant_code: str) -> Scope:
    scope = require_scope(session)
    current = (await session.execute(select(Session).where(Session.id == scope.session_id))).scalar_one()
    await apply_to_database(session, Scope.for_system(actor_id=scope.actor_id, ip_address=scope.ip_address))
    user = await session.get(User, scope.actor_id)
    tenant = await _login_tenant(session, user, tenant_code, scope.is_system_admin)
    current.tenant_id = tenant.id
    record_activity(session, "switch_tenant", user_id=user.id, ip=scope.ip_address, tenant=tenant.code)
    await session.flush()
    return await authenticate_session_id(
        session, current.id, settings=settings, ip=scope.ip_address, request_id=scope.request_id
    )


async def change_password(
    session: AsyncSession, *, settings: Settings, current_password: str, new_password: str
) -> int:
    scope = require_scope(session)
    user = (await session.execute(select(User).where(User.id == scope.actor_id))).scalar_one()
    await reauthenticate(
        session, user, settings=settings, password=current_password, password_field="currentPassword"
    )
    security.check_password_strength(new_password, email=user.email)
    user.password_hash = security.hash_password(new_password)
    user.password_changed_at = utcnow()
    ended = await revoke_all_sessions(session, user.id, except_id=scope.session_id)
    record_activity(session, "password_changed", user_id=user.id, ip=scope.ip_address, sessions_ended=ended)
    await notifications.notify_account(
        session,
        user,
        "security.password_changed",
        {"ip_address": scope.ip_address, "at": utcnow()},
        tenant_id=scope.tenant_id,
    )
    return ended
