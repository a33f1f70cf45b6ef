"""Logging in and out, sessions, two-factor authentication and login throttling.

A session is an opaque random token (256 bits) handed to the client once; the database keeps only its
SHA-256, so a copy of the sessions table lets nobody in. A session acts in one tenant at a time and
ends after `session_idle_timeout_minutes` of inactivity or `session_absolute_timeout_hours` after login,
whichever comes first. Every login, logout and failure goes to activity_logs.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from mobility.agents.models import Agent, Broker
from mobility.audit.models import ActivityLog
from mobility.auth.models import LoginThrottle, Session
from mobility.candidates.models import Candidate
from mobility.core import security
from mobility.core.config import Settings
from mobility.core.errors import AppError, Forbidden, InvalidInput, NotFound, TooManyRequests, Unauthorized
from mobility.core.models import utcnow
from mobility.core.permissions import SystemRole, permissions_for_role
from mobility.core.tenancy import Scope, apply_to_database, bind_scope, require_scope
from mobility.roles.models import Role
from mobility.settings import service as settings_service
from mobility.tenants.models import Tenant
from mobility.users.models import User, UserTenant

TOKEN_BYTES = 32
RECOVERY_CODE_COUNT = 10
# Touch lastSeenAt at most this often: idle expiry needs no finer grain, and most reads stay reads.
TOUCH_EVERY = timedelta(seconds=60)
TOTP_ISSUER = "WTI Labour Mobility"


class InvalidCredentials(AppError):
    status, code, title = 401, "invalid_credentials", "E-mail or password is wrong"
    keeps_writes = True


class TwoFactorRequired(AppError):
    status, code, title = 401, "two_factor_required", "A two-factor code is required"


class InvalidTwoFactorCode(AppError):
    status, code, title = 401, "invalid_two_factor_code", "The two-factor code is wrong or was already used"
    keeps_writes = True


class AccountInactive(AppError):
    status, code, title = 403, "account_inactive", "This account cannot log in"
    keeps_writes = True


class TooManyAttempts(TooManyRequests):
    code, title = "too_many_attempts", "Too many failed logins; wait and try again"
    keeps_writes = True


class NoTenant(Forbidden):
    code, title = "no_tenant", "Not a member of that tenant"
    keeps_writes = True


class SessionInvalid(Unauthorized):
    code, title = "session_invalid", "The session has ended; log in again"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_email(email: str) -> str:
    return email.strip().lower()


def record_activity(
    session: AsyncSession,
    action: str,
    *,
    user_id: uuid.UUID | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    **details: object,
) -> None:
    session.add(
        ActivityLog(
            user_id=user_id, action=action, details=details or None, ip_address=ip, user_agent=user_agent
        )
    )


# --- throttling ---------------------------------------------------------------------------------


async def _check_throttle(session: AsyncSession, keys: list[str], now: datetime) -> None:
    rows = (await session.execute(select(LoginThrottle).where(LoginThrottle.key.in_(keys)))).scalars().all()
    waits = [
        (row.locked_until - now).total_seconds()
        for row in rows
        if row.locked_until and row.locked_until > now
    ]
    if waits:
        raise TooManyAttempts(retry_after=math.ceil(max(waits)))


async def _record_failure(
    session: AsyncSession, free_failures: dict[str, int], max_lockout: int, now: datetime
) -> None:
    """One more failure for each key; past its free failures a key waits 1 s, 2 s, 4 s, ... up to max."""
    for key, free in free_failures.items():
        row = await session.get(LoginThrottle, key)
        if row is None:
            row = LoginThrottle(key=key, failures=0)
            session.add(row)
        row.failures += 1
        row.last_failure_at = now
        over = row.failures - free
        if over >= 0:
            row.locked_until = now + timedelta(seconds=min(2**over, max_lockout))


async def _clear_failures(session: AsyncSession, key: str) -> None:
    row = await session.get(LoginThrottle, key)
    if row is not None:
        await session.delete(row)


# --- two-factor -----------------------------------------------------------------------------------


def _totp_step(user: User, code: str, now: datetime) -> int | None:
    """The time step `code` is valid for (this one or one either side), or None."""
    if not user.totp_secret or not code.isdigit():
        return None
    totp = pyotp.TOTP(user.totp_secret)
    for offset in (0, -1, 1):
        at = now + timedelta(seconds=offset * totp.interval)
        if secrets.compare_digest(totp.at(at), code):
            return totp.timecode(at)
    return None


def use_totp(user: User, code: str, now: datetime) -> bool:
    """Check a TOTP code and burn its time step: the same code cannot be replayed."""
    step = _totp_step(user, code.strip(), now)
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        return False
    user.totp_last_step = step
    return True


def _recovery_hash(code: str) -> str:
    # Recovery codes carry 80 random bits: a fast hash is enough, and verifying 10 stays cheap.
    return hashlib.sha256(code.replace("-", "").strip().upper().encode()).hexdigest()


def new_recovery_codes(user: User) -> list[str]:
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(16))
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    user.recovery_codes = [_recovery_hash(code) for code in codes]
    return codes


def use_recovery_code(user: User, code: str) -> bool:
    digest = _recovery_hash(code)
    remaining = list(user.recovery_codes or [])
    for stored in remaining:
        if secrets.compare_digest(stored, digest):
            remaining.remove(stored)
            user.recovery_codes = remaining
            return True
    return False


# --- login --------------------------------------------------------------------------------------


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
        .where(UserTenant.user_id == user.id, Tenant.is_active)
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
        raise Forbidden(
            f"You are not a member of tenant {tenant_code}."
            if tenant_code
            else "You are not a member of any tenant.",
            code_detail="no_tenant",
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
    now = utcnow()
    email = normalise_email(email)
    account_key, address_key = f"account:{email}", f"address:{ip or 'unknown'}"
    free_failures = {
        account_key: settings.login_free_failures,
        address_key: settings.login_free_failures_per_address,
    }
    try:
        await _check_throttle(session, list(free_failures), now)
    except TooManyAttempts:
        record_activity(session, "login_throttled", ip=ip, user_agent=user_agent, email=email)
        raise

    user = (await session.execute(select(User).where(func.lower(User.email) == email))).scalar_one_or_none()
    # Verify against a dummy hash for unknown e-mails, so timing does not tell which accounts exist.
    password_ok = security.verify_password(user.password_hash if user else security.dummy_hash(), password)
    if user is None or not password_ok:
        await _record_failure(session, free_failures, settings.login_max_lockout_seconds, now)
        record_activity(
            session,
            "login_failed",
            user_id=user.id if user else None,
            ip=ip,
            user_agent=user_agent,
            email=email,
            reason="password",
        )
        raise InvalidCredentials()
    if user.status != "active":
        record_activity(
            session, "login_refused", user_id=user.id, ip=ip, user_agent=user_agent, reason=user.status
        )
        raise AccountInactive(f"This account is {user.status}.")
    if user.two_factor_enabled:
        if not otp and not recovery_code:
            raise TwoFactorRequired(
                "Send the code from your authenticator app as `otp`, or a `recoveryCode`."
            )
        if not (use_totp(user, otp, now) if otp else use_recovery_code(user, recovery_code or "")):
            await _record_failure(session, free_failures, settings.login_max_lockout_seconds, now)
            record_activity(
                session,
                "login_failed",
                user_id=user.id,
                ip=ip,
                user_agent=user_agent,
                email=email,
                reason="two_factor",
            )
            raise InvalidTwoFactorCode()
        if recovery_code and not otp:
            record_activity(
                session,
                "recovery_code_used",
                user_id=user.id,
                ip=ip,
                user_agent=user_agent,
                remaining=len(user.recovery_codes or []),
            )

    is_system_admin = await _system_role_name(session, user) == SystemRole.system_admin
    tenant = await _login_tenant(session, user, tenant_code, is_system_admin)
    if security.needs_rehash(user.password_hash):
        user.password_hash = security.hash_password(password)
    await _clear_failures(session, account_key)
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
    record_activity(session, "login", user_id=user.id, ip=ip, user_agent=user_agent, tenant=tenant.code)
    await session.flush()
    scope = await _authenticate_where(
        session, Session.id == row.id, settings=settings, ip=ip, request_id=request_id, touch=False
    )
    return LoginResult(token=token, session=row, scope=scope)


# --- authenticating a request -------------------------------------------------------------------


GlobalRole = aliased(Role, name="global_role")
MemberRole = aliased(Role, name="member_role")


async def authenticate(
    session: AsyncSession,
    token: str,
    *,
    settings: Settings,
    ip: str | None = None,
    request_id: str | None = None,
    touch: bool = True,
) -> Scope:
    """The scope of a live session token, bound to `session` (and to PostgreSQL's RLS); 401 otherwise."""
    return await _authenticate_where(
        session,
        Session.token == hash_token(token),
        settings=settings,
        ip=ip,
        request_id=request_id,
        touch=touch,
    )


async def _authenticate_where(
    session: AsyncSession, which, *, settings: Settings, ip: str | None, request_id: str | None, touch: bool
) -> Scope:
    await apply_to_database(session, Scope.for_system(ip_address=ip, request_id=request_id))
    now = utcnow()
    row = (
        await session.execute(
            select(Session, User, Tenant, MemberRole, GlobalRole.name)
            .join(User, User.id == Session.user_id)
            .join(Tenant, Tenant.id == Session.tenant_id)
            .outerjoin(
                UserTenant, and_(UserTenant.user_id == User.id, UserTenant.tenant_id == Session.tenant_id)
            )
            .outerjoin(MemberRole, MemberRole.id == UserTenant.role_id)
            .outerjoin(GlobalRole, and_(GlobalRole.id == User.role_id, GlobalRole.system_role))
            .where(which)
        )
    ).one_or_none()
    if row is None:
        raise SessionInvalid()
    db_session, user, tenant, member_role, global_role_name = row
    is_system_admin = global_role_name == SystemRole.system_admin
    idle_limit = timedelta(minutes=settings.session_idle_timeout_minutes)
    if (
        db_session.revoked_at is not None
        or db_session.expires_at <= now
        or (db_session.last_seen_at or db_session.created_at) + idle_limit <= now
        or user.status != "active"
        or (not tenant.is_active and not is_system_admin)
        or (member_role is None and not is_system_admin)
    ):
        raise SessionInvalid()
    if touch and (db_session.last_seen_at is None or now - db_session.last_seen_at >= TOUCH_EVERY):
        await session.execute(update(Session).where(Session.id == db_session.id).values(last_seen_at=now))

    role_name = SystemRole.system_admin.value if is_system_admin else member_role.name
    permissions = permissions_for_role(role_name, member_role.permissions if member_role else None)
    linked = await _linked_records(session, role_name, user.id, tenant.id)
    scope = Scope(
        tenant_id=tenant.id,
        actor_id=user.id,
        role=role_name,
        permissions=permissions,
        is_system_admin=is_system_admin,
        session_id=db_session.id,
        request_id=request_id,
        ip_address=ip,
        **linked,
    )
    await apply_to_database(session, scope)
    if not user.two_factor_enabled and await settings_service.get_value(
        session, settings_service.REQUIRE_TWO_FACTOR
    ):
        scope = scope.but(two_factor_enrollment_required=True)
        bind_scope(session, scope)
    return scope


async def _linked_records(session: AsyncSession, role: str, user_id: uuid.UUID, tenant_id: uuid.UUID) -> dict:
    """The Candidate, Agent or Broker record this login stands for in the tenant (row rules need it)."""
    model, key = {
        SystemRole.candidate.value: (Candidate, "candidate_id"),
        SystemRole.agent.value: (Agent, "agent_id"),
        SystemRole.broker.value: (Broker, "broker_id"),
    }.get(role, (None, None))
    if model is None:
        return {}
    found = (
        await session.execute(
            select(model.id).where(model.user_id == user_id, model.tenant_id == tenant_id).limit(1)
        )
    ).scalar()
    return {key: found}


# --- what a logged-in user does with their sessions ------------------------------------------------


async def logout(session: AsyncSession) -> None:
    scope = require_scope(session)
    await revoke_session(session, scope.session_id, user_id=scope.actor_id)
    record_activity(session, "logout", user_id=scope.actor_id, ip=scope.ip_address)


async def list_sessions(session: AsyncSession, settings: Settings) -> list[Session]:
    scope = require_scope(session)
    now = utcnow()
    idle_cutoff = now - timedelta(minutes=settings.session_idle_timeout_minutes)
    rows = await session.execute(
        select(Session)
        .where(
            Session.user_id == scope.actor_id,
            Session.revoked_at.is_(None),
            Session.expires_at > now,
            Session.last_seen_at > idle_cutoff,
        )
        .order_by(Session.created_at.desc())
    )
    return list(rows.scalars())


async def revoke_own_session(session: AsyncSession, session_id: uuid.UUID) -> None:
    """End one of the caller's own sessions; another user's session does not exist for this call."""
    scope = require_scope(session)
    await revoke_session(session, session_id, user_id=scope.actor_id)
    record_activity(
        session, "session_ended", user_id=scope.actor_id, ip=scope.ip_address, session=str(session_id)
    )


async def revoke_session(session: AsyncSession, session_id: uuid.UUID | None, *, user_id: uuid.UUID) -> None:
    target = (
        await session.execute(select(Session).where(Session.id == session_id, Session.user_id == user_id))
    ).scalar_one_or_none()
    if target is None or target.revoked_at is not None:
        raise NotFound("No such session.")
    target.revoked_at = utcnow()


async def revoke_all_sessions(
    session: AsyncSession, user_id: uuid.UUID, *, except_id: uuid.UUID | None = None
) -> int:
    """End every live session of a user (password change, suspension, 2FA reset)."""
    statement = update(Session).where(Session.user_id == user_id, Session.revoked_at.is_(None))
    if except_id is not None:
        statement = statement.where(Session.id != except_id)
    result = await session.execute(
        statement.values(revoked_at=utcnow()), execution_options={"synchronize_session": False}
    )
    return result.rowcount or 0


async def switch_tenant(session: AsyncSession, *, settings: Settings, tenant_code: str) -> Scope:
    scope = require_scope(session)
    current = (await session.execute(select(Session).where(Session.id == scope.session_id))).scalar_one()
    await apply_to_database(session, Scope.for_system(actor_id=scope.actor_id, ip_address=scope.ip_address))
    user = await session.get(User, scope.actor_id)
    tenant = await _login_tenant(session, user, tenant_code, scope.is_system_admin)
    current.tenant_id = tenant.id
    record_activity(session, "switch_tenant", user_id=user.id, ip=scope.ip_address, tenant=tenant.code)
    await session.flush()
    return await _authenticate_where(
        session,
        Session.id == current.id,
        settings=settings,
        ip=scope.ip_address,
        request_id=scope.request_id,
        touch=False,
    )


async def change_password(session: AsyncSession, *, current_password: str, new_password: str) -> int:
    scope = require_scope(session)
    user = (await session.execute(select(User).where(User.id == scope.actor_id))).scalar_one()
    if not security.verify_password(user.password_hash, current_password):
        raise InvalidInput("The current password is wrong.", field="currentPassword")
    security.check_password_strength(new_password, email=user.email)
    user.password_hash = security.hash_password(new_password)
    user.password_changed_at = utcnow()
    ended = await revoke_all_sessions(session, user.id, except_id=scope.session_id)
    record_activity(session, "password_changed", user_id=user.id, ip=scope.ip_address, sessions_ended=ended)
    return ended


# --- two-factor set-up ------------------------------------------------------------------------------


async def _me(session: AsyncSession) -> User:
    scope = require_scope(session)
    return (await session.execute(select(User).where(User.id == scope.actor_id))).scalar_one()


async def begin_totp(session: AsyncSession) -> tuple[str, str]:
    """A new secret (not active until confirmed with a first code) and its otpauth:// URI."""
    user = await _me(session)
    if user.two_factor_enabled:
        raise InvalidInput("Two-factor authentication is already on; disable it first.")
    user.totp_secret = pyotp.random_base32()
    user.totp_last_step = None
    return user.totp_secret, pyotp.TOTP(user.totp_secret).provisioning_uri(
        name=user.email, issuer_name=TOTP_ISSUER
    )


async def confirm_totp(session: AsyncSession, code: str) -> list[str]:
    user = await _me(session)
    if user.two_factor_enabled or not user.totp_secret:
        raise InvalidInput("Start two-factor set-up first.")
    if not use_totp(user, code, utcnow()):
        raise InvalidInput("The code is wrong; check the clock of your device.", field="code")
    user.two_factor_enabled = True
    codes = new_recovery_codes(user)
    record_activity(session, "two_factor_enabled", user_id=user.id, ip=require_scope(session).ip_address)
    return codes


def _reauthenticate(user: User, password: str, code: str | None, now: datetime) -> None:
    if not security.verify_password(user.password_hash, password):
        raise InvalidInput("The password is wrong.", field="password")
    if user.two_factor_enabled and not (
        code and (use_totp(user, code, now) or use_recovery_code(user, code))
    ):
        raise InvalidInput("A current two-factor code or a recovery code is required.", field="code")


async def disable_totp(session: AsyncSession, *, password: str, code: str | None) -> None:
    user = await _me(session)
    if not user.two_factor_enabled:
        raise InvalidInput("Two-factor authentication is not on.")
    _reauthenticate(user, password, code, utcnow())
    clear_two_factor(user)
    record_activity(session, "two_factor_disabled", user_id=user.id, ip=require_scope(session).ip_address)


async def regenerate_recovery_codes(session: AsyncSession, *, password: str, code: str | None) -> list[str]:
    user = await _me(session)
    if not user.two_factor_enabled:
        raise InvalidInput("Two-factor authentication is not on.")
    _reauthenticate(user, password, code, utcnow())
    return new_recovery_codes(user)


def clear_two_factor(user: User) -> None:
    user.two_factor_enabled = False
    user.totp_secret = None
    user.totp_last_step = None
    user.recovery_codes = None


async def memberships(session: AsyncSession) -> list[tuple[UserTenant, Tenant, Role]]:
    """The caller's tenants, with the role held in each (primary first)."""
    scope = require_scope(session)
    rows = await session.execute(
        select(UserTenant, Tenant, Role)
        .join(Tenant, Tenant.id == UserTenant.tenant_id)
        .join(Role, Role.id == UserTenant.role_id)
        .where(UserTenant.user_id == scope.actor_id)
        .order_by(UserTenant.is_primary.desc(), Tenant.name)
    )
    return [tuple(row) for row in rows]


async def current_user(session: AsyncSession) -> User:
    return await _me(session)
