"""Logging in and out, sessions, two-factor authentication and login throttling.

A session is an opaque random token (256 bits) handed to the client once; the database keeps only its
SHA-256, so a copy of the sessions table lets nobody in. A session acts in one tenant at a time and
ends after `session_idle_timeout_minutes` of inactivity or `session_absolute_timeout_hours` after login,
whichever comes first. Every login, logout and failure goes to activity_logs.

Failed logins are counted per account and per client address (`login_throttles`); past a few free
failures the counter locks for 1 s, 2 s, 4 s, ... up to `login_max_lockout_seconds`, so guessing is
slow and a real user is never kept out for long. Re-authentication (password change, 2FA changes)
counts against the same account counter.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import pyotp
from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from mobility.agents.models import Agent, Broker
from mobility.audit.models import ActivityLog
from mobility.auth.models import LoginThrottle, Session
from mobility.authz.permissions import SystemRole, permissions_for_role
from mobility.candidates.models import Candidate
from mobility.core import security
from mobility.core.config import Settings
from mobility.core.db import driver_connection
from mobility.core.errors import AppError, Forbidden, InvalidInput, NotFound, TooManyRequests, Unauthorized
from mobility.core.models import utcnow
from mobility.core.reads import Read
from mobility.core.scope import Scope, apply_to_database, bind_scope, require_scope
from mobility.roles.models import Role
from mobility.settings import service as settings_service
from mobility.settings.models import Setting
from mobility.tenants.models import Tenant
from mobility.users.models import User, UserTenant, user_by_email

TOKEN_BYTES = 32
RECOVERY_CODE_COUNT = 10
# Touch lastSeenAt at most this often: idle expiry needs no finer grain, and most reads stay reads.
TOUCH_EVERY = timedelta(seconds=60)
TOTP_ISSUER = "WTI Labour Mobility"


# The 401s of login are Unauthorized, so they carry the WWW-Authenticate challenge a 401 must have.
class InvalidCredentials(Unauthorized):
    code, title = "invalid_credentials", "E-mail or password is wrong"
    keeps_writes = True


class TwoFactorRequired(Unauthorized):
    code, title = "two_factor_required", "A two-factor code is required"


class InvalidTwoFactorCode(Unauthorized):
    code, title = "invalid_two_factor_code", "The two-factor code is wrong or was already used"
    keeps_writes = True


class WrongReauthentication(InvalidInput):
    """A wrong password or code where an endpoint re-authenticates the user: counted like a failed login."""

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


class SessionEnded(SessionInvalid):
    """A live session refused for good (user no longer active, membership or tenant gone): the session
    is revoked as it is refused, so lifting a suspension does not bring it back."""

    keeps_writes = True


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_email(email: str) -> str:
    return email.strip().lower()


def record_activity(
    session: AsyncSession,
    action: str,
    /,
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


def _account_key(email: str) -> str:
    return _ACCOUNT_PREFIX + normalise_email(email)


def _address_key(ip: str | None) -> str:
    return _ADDRESS_PREFIX + (ip or "unknown")


async def _hold_throttle(session: AsyncSession, free: dict[str, int], max_lockout: int) -> Throttle:
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
    account_key = _account_key(email)
    throttle = await _hold_throttle(
        session,
        {
            account_key: settings.login_free_failures,
            _address_key(ip): settings.login_free_failures_per_address,
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
    await throttle.release(session, clear=account_key)
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
    log("login", tenant=tenant.code)
    await session.flush()
    scope = await _authenticate_where(session, row.id, settings=settings, ip=ip, request_id=request_id)
    return LoginResult(token=token, session=row, scope=scope)


# --- authenticating a request -------------------------------------------------------------------


GlobalRole = aliased(Role, name="global_role")
MemberRole = aliased(Role, name="member_role")
_LINKED_CANDIDATE = aliased(Candidate, name="linked_candidate")
_LINKED_AGENT = aliased(Agent, name="linked_agent")
_LINKED_BROKER = aliased(Broker, name="linked_broker")


class SessionFacts(NamedTuple):
    """What the database knows about a session, in the column order of mobility_session_scope (0011):
    the rules that judge it are in `_scope_of`. A tuple: built once per request, from the row as is."""

    session_id: uuid.UUID
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    expires_at: datetime  # legacy column: naive UTC on PostgreSQL, see _utc
    created_at: datetime  # legacy column, as expires_at
    last_seen_at: datetime | None
    revoked_at: datetime | None
    user_status: str
    two_factor_enabled: bool
    global_role_name: str | None
    tenant_is_active: bool
    role_name: str | None
    role_permissions: list[str] | None
    require_two_factor: object
    candidate_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    broker_id: uuid.UUID | None


def _utc(moment: datetime) -> datetime:
    # The legacy columns are `timestamp without time zone`, holding UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _facts_statement(which):
    """The session with everything that decides its scope, in one statement (as system: the tenant is
    not known yet). On PostgreSQL the token lookup runs the same SELECT inside the function
    mobility_session_scope (migration 0011), which also sets the transaction's tenant."""

    def linked(model):
        return (
            select(model.id)
            .where(model.user_id == User.id, model.tenant_id == Session.tenant_id)
            .correlate(User, Session)
            .scalar_subquery()
        )

    return (
        select(
            Session.id.label("session_id"),
            Session.user_id.label("user_id"),
            Session.tenant_id.label("tenant_id"),
            Session.expires_at.label("expires_at"),
            Session.created_at.label("created_at"),
            Session.last_seen_at.label("last_seen_at"),
            Session.revoked_at.label("revoked_at"),
            User.status.label("user_status"),
            User.two_factor_enabled.label("two_factor_enabled"),
            GlobalRole.name.label("global_role_name"),
            select(Tenant.is_active)
            .where(Tenant.id == Session.tenant_id)
            .correlate(Session)
            .scalar_subquery()
            .label("tenant_is_active"),
            MemberRole.name.label("role_name"),
            MemberRole.permissions.label("role_permissions"),
            Setting.value.label("require_two_factor"),
            linked(_LINKED_CANDIDATE).label("candidate_id"),
            linked(_LINKED_AGENT).label("agent_id"),
            linked(_LINKED_BROKER).label("broker_id"),
        )
        .join(User, User.id == Session.user_id)
        .outerjoin(
            UserTenant,
            and_(
                UserTenant.user_id == User.id,
                UserTenant.tenant_id == Session.tenant_id,
                # A membership the tenant suspended gives no access (0014).
                UserTenant.status == "active",
            ),
        )
        .outerjoin(MemberRole, MemberRole.id == UserTenant.role_id)
        .outerjoin(GlobalRole, and_(GlobalRole.id == User.role_id, GlobalRole.system_role))
        .outerjoin(
            Setting,
            and_(Setting.tenant_id == Session.tenant_id, Setting.key == bindparam("two_factor_key")),
        )
        .where(which)
    )


FACTS_BY_TOKEN = Read(lambda: _facts_statement(Session.token == bindparam("token_hash")))
_FACTS_BY_ID = Read(lambda: _facts_statement(Session.id == bindparam("session_id")))
_SESSION_SCOPE_FUNCTION = "SELECT * FROM mobility_session_scope($1, $2)"
# The record a login of each role stands for in its tenant (the row rules need it).
_LINKED_RECORD = {
    SystemRole.candidate.value: "candidate_id",
    SystemRole.agent.value: "agent_id",
    SystemRole.broker.value: "broker_id",
}


async def authenticate(
    session: AsyncSession,
    token: str,
    *,
    settings: Settings,
    ip: str | None = None,
    request_id: str | None = None,
    touch: bool = True,
) -> Scope:
    """The scope of a live session token, bound to `session` (and to PostgreSQL's RLS); 401 otherwise.

    Every authenticated request starts here. On PostgreSQL one round trip: the function of migration
    0011 finds the session and sets the transaction's tenant; elsewhere the same SELECT as system."""
    token_hash = hash_token(token)
    two_factor_key = settings_service.REQUIRE_TWO_FACTOR.key
    if session.bind.dialect.name == "postgresql":
        connection = await driver_connection(session)
        record = await connection.fetchrow(_SESSION_SCOPE_FUNCTION, token_hash, two_factor_key)
        facts = None if record is None else SessionFacts._make(record.values())
        applied = True
    else:
        await apply_to_database(session, Scope.for_system(ip_address=ip, request_id=request_id))
        row = await FACTS_BY_TOKEN.one(session, token_hash=token_hash, two_factor_key=two_factor_key)
        facts = None if row is None else SessionFacts(**row)
        applied = False
    return await _scope_of(
        session, facts, settings=settings, ip=ip, request_id=request_id, touch=touch, applied=applied
    )


async def _authenticate_where(
    session: AsyncSession,
    session_id: uuid.UUID,
    *,
    settings: Settings,
    ip: str | None,
    request_id: str | None,
) -> Scope:
    """The scope of the session `session_id` (just created or switched), as `authenticate` makes it."""
    await apply_to_database(session, Scope.for_system(ip_address=ip, request_id=request_id))
    row = await _FACTS_BY_ID.one(
        session, session_id=session_id, two_factor_key=settings_service.REQUIRE_TWO_FACTOR.key
    )
    facts = None if row is None else SessionFacts(**row)
    return await _scope_of(
        session, facts, settings=settings, ip=ip, request_id=request_id, touch=False, applied=False
    )


async def _scope_of(
    session: AsyncSession,
    facts: SessionFacts | None,
    *,
    settings: Settings,
    ip: str | None,
    request_id: str | None,
    touch: bool,
    applied: bool,
) -> Scope:
    """The rules: a session counts while not revoked, expired or idle too long, for an active user who
    still belongs to an active tenant. `applied`: the database settings are already the session's."""
    if facts is None:
        raise SessionInvalid()
    now = utcnow()
    is_system_admin = facts.global_role_name == SystemRole.system_admin
    idle_limit = timedelta(minutes=settings.session_idle_timeout_minutes)
    if (
        facts.revoked_at is not None
        or _utc(facts.expires_at) <= now
        or (facts.last_seen_at or _utc(facts.created_at)) + idle_limit <= now
    ):
        raise SessionInvalid()
    if (
        facts.user_status != "active"
        or (not facts.tenant_is_active and not is_system_admin)
        or (facts.role_name is None and not is_system_admin)
    ):
        # Ended for good, not paused: reactivating the user or the tenant does not revive it.
        await apply_to_database(session, Scope.for_system(ip_address=ip, request_id=request_id))
        await session.execute(update(Session).where(Session.id == facts.session_id).values(revoked_at=now))
        raise SessionEnded()

    role_name = SystemRole.system_admin.value if is_system_admin else facts.role_name
    linked_field = _LINKED_RECORD.get(role_name)
    linked = {linked_field: getattr(facts, linked_field)} if linked_field else {}
    scope = Scope(
        tenant_id=facts.tenant_id,
        actor_id=facts.user_id,
        role=role_name,
        permissions=permissions_for_role(role_name, facts.role_permissions if facts.role_name else None),
        is_system_admin=is_system_admin,
        session_id=facts.session_id,
        request_id=request_id,
        ip_address=ip,
        two_factor_enrollment_required=(
            not facts.two_factor_enabled
            and settings_service.REQUIRE_TWO_FACTOR.value_of(facts.require_two_factor)
        ),
        **linked,
    )
    if applied:
        bind_scope(session, scope)
    else:
        await apply_to_database(session, scope)
    if touch and (facts.last_seen_at is None or now - facts.last_seen_at >= TOUCH_EVERY):
        # One's own session: the row rules and row-level security let the user's scope write it.
        await session.execute(update(Session).where(Session.id == facts.session_id).values(last_seen_at=now))
    return scope


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
        session, current.id, settings=settings, ip=scope.ip_address, request_id=scope.request_id
    )


async def change_password(
    session: AsyncSession, *, settings: Settings, current_password: str, new_password: str
) -> int:
    scope = require_scope(session)
    user = (await session.execute(select(User).where(User.id == scope.actor_id))).scalar_one()
    await _reauthenticate(
        session, user, settings=settings, password=current_password, password_field="currentPassword"
    )
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


async def begin_totp(session: AsyncSession, *, settings: Settings, password: str) -> tuple[str, str]:
    """A new secret (not active until confirmed with a first code) and its otpauth:// URI. Asks for the
    password again: a stolen session alone must not be able to enrol another authenticator."""
    user = await _me(session)
    if user.two_factor_enabled:
        raise InvalidInput("Two-factor authentication is already on; disable it first.")
    await _reauthenticate(session, user, settings=settings, password=password)
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


async def _reauthenticate(
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
    account_key = _account_key(user.email)
    throttle = await _hold_throttle(
        session, {account_key: settings.login_free_failures}, settings.login_max_lockout_seconds
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
    await throttle.release(session, clear=account_key)


async def disable_totp(session: AsyncSession, *, settings: Settings, password: str, code: str | None) -> None:
    user = await _me(session)
    if not user.two_factor_enabled:
        raise InvalidInput("Two-factor authentication is not on.")
    await _reauthenticate(session, user, settings=settings, password=password, two_factor=True, code=code)
    clear_two_factor(user)
    record_activity(session, "two_factor_disabled", user_id=user.id, ip=require_scope(session).ip_address)


async def regenerate_recovery_codes(
    session: AsyncSession, *, settings: Settings, password: str, code: str | None
) -> list[str]:
    user = await _me(session)
    if not user.two_factor_enabled:
        raise InvalidInput("Two-factor authentication is not on.")
    await _reauthenticate(session, user, settings=settings, password=password, two_factor=True, code=code)
    codes = new_recovery_codes(user)
    record_activity(
        session, "recovery_codes_regenerated", user_id=user.id, ip=require_scope(session).ip_address
    )
    return codes


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
