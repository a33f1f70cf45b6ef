"""Authenticating a request: a session token turned into the caller's `Scope` (the hot path).

A session acts in one tenant at a time and ends after `session_idle_timeout_minutes` of inactivity or
`session_absolute_timeout_hours` after login, whichever comes first. Every authenticated request runs
`authenticate`: one statement (on PostgreSQL the function mobility_session_scope of migration 0011)
fetches the session's facts, `_scope_of` judges them. The compiled statements are built once, here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from mobility.agents.models import Agent, Broker
from mobility.auth.credentials import hash_token
from mobility.auth.models import Session
from mobility.authz.permissions import SystemRole, permissions_for_role
from mobility.candidates.models import Candidate
from mobility.core.config import Settings
from mobility.core.db import driver_connection
from mobility.core.errors import Unauthorized
from mobility.core.models import utcnow
from mobility.core.reads import Read
from mobility.core.scope import Scope, apply_to_database, bind_scope
from mobility.roles.models import Role
from mobility.settings import service as settings_service
from mobility.settings.models import Setting
from mobility.tenants.models import Tenant
from mobility.users.models import User, UserTenant

# Touch lastSeenAt at most this often: idle expiry needs no finer grain, and most reads stay reads.
TOUCH_EVERY = timedelta(seconds=60)


class SessionInvalid(Unauthorized):
    code, title = "session_invalid", "The session has ended; log in again"


class SessionEnded(SessionInvalid):
    """A live session refused for good (user no longer active, membership or tenant gone): the session
    is revoked as it is refused, so lifting a suspension does not bring it back."""

    keeps_writes = True


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


async def authenticate_session_id(
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
