"""The scope a database session acts in, and the small API the services call.

Every database session carries a `Scope` (who acts, in which tenant, with which permissions), bound
once and told to PostgreSQL's row-level security (`apply_to_database`). Services read it with
`require_scope`, fetch one visible object with `get_visible`, narrow a read to the tenant's own rows
with `tenant_view`, and look beyond the tenant, narrowly, with `across_tenants`. The enforcement
itself (every statement filtered, every write stamped and checked) is `mobility.core.tenancy`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import PendingRollbackError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from mobility.core.db import driver_connection, read_connection
from mobility.core.errors import AppError, InvalidInput, NotFound


class TenancyViolation(AppError):
    """A bug, not bad input: code tried to act outside its scope. Logged and answered as 403."""

    status, code, title = 403, "tenancy_violation", "Not allowed in this tenant"


@dataclass(frozen=True, slots=True)
class Scope:
    """Who acts, where, with what rights: bound to a session for its whole life."""

    tenant_id: uuid.UUID | None = None
    actor_id: uuid.UUID | None = None
    role: str | None = None
    permissions: frozenset[str] = frozenset()
    is_system_admin: bool = False
    # Bypasses the tenant filters; only for the CLI, seeding and authentication lookups.
    system: bool = False
    # The actor's own records in this tenant, for the row rules (a Candidate's record, an Agent's).
    candidate_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    broker_id: uuid.UUID | None = None
    # Set when the tenant requires 2FA and the actor has not set it up: only /me stays open.
    two_factor_enrollment_required: bool = False
    session_id: uuid.UUID | None = None
    request_id: str | None = None
    ip_address: str | None = field(default=None)

    @classmethod
    def for_system(cls, actor_id: uuid.UUID | None = None, **kwargs: Any) -> Scope:
        return cls(actor_id=actor_id, system=True, **kwargs)

    def can(self, permission: str) -> bool:
        return self.system or permission in self.permissions

    def but(self, **changes: Any) -> Scope:
        return replace(self, **changes)


def tenant_scoped(cls: type) -> bool:
    return getattr(cls, "__tenant_scoped__", False)


def bind_scope(session: AsyncSession | Session, scope: Scope) -> None:
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    sync.info["scope"] = scope


def get_scope(session: AsyncSession | Session) -> Scope | None:
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    return sync.info.get("scope")


def require_scope(session: AsyncSession | Session) -> Scope:
    scope = get_scope(session)
    if scope is None:
        raise TenancyViolation("No scope is bound to this database session.")
    return scope


# On the ORM's connection (any driver); the read connection gets `_settings_statement`.
_SETTINGS = text(
    "SELECT set_config('mobility.tenant_id', :tenant, true),"
    " set_config('mobility.system', :system, true),"
    " set_config('mobility.actor_id', :actor, true)"
)


def _settings_params(scope: Scope | None) -> dict[str, str]:
    return dict(zip(("tenant", "system", "actor"), _settings_of(scope), strict=True))


def _settings_of(scope: Scope | None) -> tuple[str, str, str]:
    if scope is None:
        return "", "off", ""
    return (
        str(scope.tenant_id) if scope.tenant_id else "",
        "on" if scope.system else "off",
        str(scope.actor_id) if scope.actor_id else "",
    )


async def apply_to_database(session: AsyncSession, scope: Scope) -> None:
    """Bind the scope and tell PostgreSQL's row-level security about it, for this transaction only:
    on the ORM's transaction if it has begun (later ones get it from `_settings_for_new_transaction`)
    and on the request's read connection if it is open (core/db.py)."""
    bind_scope(session, scope)
    if session.bind.dialect.name != "postgresql":
        return
    if session.in_transaction():
        await session.execute(_SETTINGS, _settings_params(scope))
    reads = read_connection(session)
    if reads is not None:
        await reads.execute(_settings_statement(scope))


async def scoped_driver_connection(session: AsyncSession) -> Any:
    """The driver connection for a hot-path statement of the session's scope (core/reads.py): if the
    request's read connection opens now, its transaction starts with the scope's settings (a simple
    query: no parameters, hence the literals)."""
    return await driver_connection(session, lambda: _settings_statement(get_scope(session)))


def _settings_statement(scope: Scope | None) -> str:
    tenant, system, actor = (_literal(value) for value in _settings_of(scope))
    return (
        f"SELECT set_config('mobility.tenant_id', {tenant}, true),"
        f" set_config('mobility.system', {system}, true),"
        f" set_config('mobility.actor_id', {actor}, true)"
    )


def _literal(value: str) -> str:
    # Only uuids, '' and on/off reach here (see _settings_of); checked anyway, as it is spliced into SQL.
    if value not in ("", "on", "off"):
        value = str(uuid.UUID(value))
    return f"'{value}'"


_TENANT_VIEW = "mobility.tenant_view"  # session.info: a tenant_view is open (no flush inside)


async def get_visible(session: AsyncSession, model: type, object_id: Any, *, field_name: str | None = None):
    """The row with this id if the session's scope may see it; NotFound otherwise.

    With `field_name`, the id came in a request body as a reference (e.g. a candidate's `agentId`):
    a row of another tenant is then refused as invalid input, exactly as a row that does not exist.
    """
    row = (await session.execute(select(model).where(model.id == object_id))).scalar_one_or_none()
    if row is None:
        if field_name is not None:
            raise InvalidInput(f"{field_name} does not refer to an existing record.", field=field_name)
        raise NotFound(f"No such {model.__tablename__.removesuffix('s').replace('_', ' ')}.")
    return row


@contextmanager
def tenant_view(session: AsyncSession) -> Iterator[None]:
    """Statements run inside see the current tenant's rows only.

    The row rules deliberately also show the caller what is theirs in other tenants (their own
    memberships, roles they hold there, tenants they belong to: /me and switching need them). An
    administration list or lookup of "this tenant's" users, memberships or roles must leave those out.
    The rules need the actor only for those extras, so the same scope without an actor narrows to the
    tenant, whatever the tables; on PostgreSQL, row-level security keeps the (wider) actor's settings,
    so nothing widens. Read only: a flush inside is refused (the trail would lose its actor).
    """
    scope = require_scope(session)
    if scope.system:
        yield
        return
    info = session.sync_session.info
    bind_scope(session, scope.but(actor_id=None))
    info[_TENANT_VIEW] = True
    try:
        yield
    finally:
        info.pop(_TENANT_VIEW, None)
        bind_scope(session, scope)


@contextmanager
def in_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> Iterator[None]:
    """Statements run inside see `tenant_id`'s rows only, also under the system scope: an operator task
    (system scope, every tenant visible) that reads one tenant's facts, e.g. its settings, must not
    read every tenant's. Outside the system scope only the caller's own tenant may be named. Read only,
    like `tenant_view`: a flush inside is refused."""
    scope = require_scope(session)
    if not scope.system:
        if tenant_id != scope.tenant_id:
            raise TenancyViolation("Only the caller's own tenant can be read.")
        yield
        return
    info = session.sync_session.info
    bind_scope(session, Scope(tenant_id=tenant_id, request_id=scope.request_id))
    info[_TENANT_VIEW] = True
    try:
        yield
    finally:
        info.pop(_TENANT_VIEW, None)
        bind_scope(session, scope)


@asynccontextmanager
async def across_tenants(session: AsyncSession) -> AsyncIterator[Scope]:
    """A narrow look beyond the tenant (as authentication does), under the system scope and its
    row-level-security setting, still recorded as the caller's (actor, tenant, address, request id).

    For the few facts an administrator needs that live in other tenants: whether an e-mail already has
    an account, whether a user belongs to other tenants. Yields the caller's own scope, restored after.
    """
    scope = require_scope(session)
    if scope.system:
        yield scope
        return
    await apply_to_database(
        session,
        Scope.for_system(
            actor_id=scope.actor_id,
            tenant_id=scope.tenant_id,
            ip_address=scope.ip_address,
            request_id=scope.request_id,
        ),
    )
    try:
        yield scope
    except BaseException:
        # A failed flush inside leaves a transaction that can only roll back: the caller's scope is
        # bound again without a statement (the database's settings end with the transaction), and the
        # original error is the one that reaches the caller.
        try:
            await apply_to_database(session, scope)
        except PendingRollbackError:
            bind_scope(session, scope)
        raise
    await apply_to_database(session, scope)
