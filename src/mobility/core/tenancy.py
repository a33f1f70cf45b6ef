"""Tenant scoping, enforced once, in the data layer.

Every database session carries a `Scope` (who acts, in which tenant, with which permissions). The
`ScopedSession` below applies it to every ORM statement, whatever the calling code forgets:

- SELECT, UPDATE and DELETE on a tenant-scoped model get the scope's row filter (the tenant, plus the
  row rules of `mobility.core.policies` for the actor's role), through `with_loader_criteria`;
- new rows get the scope's tenant and `createdBy`/`updatedBy` stamped; a row of another tenant cannot be
  written; changed rows get `updatedBy`;
- a session with no scope refuses to touch a tenant-scoped model at all (fail closed). Code that must
  work across tenants (the CLI, seeding, looking up a session token) says so with `Scope.system()`.

On PostgreSQL, row-level security keyed on the same tenant (`mobility.tenant_id`, set per transaction
by `apply_to_database`) is the second wall.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from sqlalchemy import event, inspect, select, text
from sqlalchemy.exc import PendingRollbackError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.expression import TableClause

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


class ScopedSession(Session):
    """The ORM session class of the whole application (see module doc)."""


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


@event.listens_for(ScopedSession, "after_begin")
def _settings_for_new_transaction(session: Session, _transaction: Any, connection: Any) -> None:
    """Each ORM transaction on PostgreSQL starts with the bound scope's row-level-security settings."""
    scope = session.info.get("scope")
    if scope is not None and connection.dialect.name == "postgresql":
        connection.execute(_SETTINGS, _settings_params(scope))


@event.listens_for(ScopedSession, "do_orm_execute")
def _filter_statements(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete or state.is_insert):
        return
    scope = get_scope(state.session)
    if scope is not None and scope.system:
        return
    entities, by_table = row_filtered_entities(state.statement, state.all_mappers)
    if not entities and not by_table:
        return
    scoped = _unique([inspect(entity).mapper.class_ for entity in entities])
    if scope is None:
        if state.is_insert and not any(tenant_scoped(cls) for cls in scoped):
            return
        names = ", ".join(sorted({cls.__tablename__ for cls in scoped} | set(by_table)))
        raise TenancyViolation(f"Query on {names} without a scope.")
    if by_table:
        # a Core statement on a Table (`select(Candidate.__table__)`) carries no
        # ORM entity, so no row filter could be attached and it read every tenant. Refuse it instead.
        raise TenancyViolation(
            f"Statement on {', '.join(sorted(by_table))} by table: use the ORM model, so rows are filtered."
        )
    if state.is_insert or state.is_update:
        _check_written_tenant(state, scoped, scope)
    if state.is_update and isinstance(state.parameters, list | tuple):
        # an ORM bulk UPDATE by primary key (`execute(update(M), [{"id": ...}])`)
        # runs as UPDATE ... WHERE id = ? without the loader criteria, so it changed other tenants' rows.
        raise TenancyViolation("Bulk UPDATE by primary key bypasses the row filters: use update().where().")
    if state.is_insert:
        return
    state.statement = state.statement.options(*row_filter_options(entities, scope))


def row_filter_options(entities: list[Any], scope: Scope) -> list[Any]:
    """One `with_loader_criteria` per entity the statement names: each model, and each alias of one,
    gets the row filter built on its own columns.

    One option per model with `include_aliases=True` did not do that: the criteria of `Role` were
    pasted unchanged into the ON clause of a join to `aliased(Role)`, naming `roles` instead of the
    alias (an error, or a filter on the wrong table while the alias's rows went unfiltered).
    """
    from mobility.core import policies

    return [
        with_loader_criteria(entity, policies.row_filter(entity, scope), include_aliases=False)
        for entity in entities
    ]


def row_filtered_entities(statement: Any, mappers: Any) -> tuple[list[Any], set[str]]:
    """The row-filtered entities a statement touches (models and aliases of models), and row-filtered
    tables it names without a model.

    `state.all_mappers` lists only the statement's top-level entities, so a
    model that appeared only in a FROM, a JOIN or a subquery got no row filter, e.g.
    `select(func.count()).select_from(Candidate)` counted every tenant's candidates, and an
    `exists()` over another tenant's rows answered. Every ORM-annotated element is looked at instead.
    """
    entities: list[Any] = [mapper.class_ for mapper in mappers]
    tables: list[TableClause] = []
    for element in visitors.iterate(statement):
        annotations = getattr(element, "_annotations", None)
        entity = annotations.get("parententity") if annotations else None
        if entity is not None:
            entities.append(entity.entity if entity.is_aliased_class else entity.class_)
        elif isinstance(element, TableClause):
            tables.append(element)
    scoped = [entity for entity in _unique(entities) if _has_row_filter(inspect(entity).mapper.class_)]
    scoped_tables = {inspect(entity).mapper.local_table for entity in scoped}
    by_table = set()
    for table in tables:
        cls = _model_of_table().get(table)
        if cls is not None and table not in scoped_tables and _has_row_filter(cls):
            by_table.add(table.name)
    return scoped, by_table


@lru_cache(maxsize=1)
def _model_of_table() -> dict[Any, type]:
    from mobility.core.db import Base

    return {mapper.local_table: mapper.class_ for mapper in Base.registry.mappers}


def _tenant_column(cls: type):
    return cls.__table__.c.get("tenantId")


def _check_written_tenant(state: ORMExecuteState, scoped: list[type], scope: Scope) -> None:
    """an INSERT or UPDATE statement writes no tenant but the scope's.

    Statements bypass the flush, so `_stamp_writes` never saw them: `insert(Setting).values(tenantId=B)`
    wrote into another tenant and `update(Candidate).values(tenantId=B)` moved rows out of it.
    """
    statement = state.statement
    for cls in scoped:
        column = _tenant_column(cls)
        if column is None:
            continue
        if state.is_insert and statement.select is not None:
            raise TenancyViolation(f"INSERT ... SELECT into {cls.__tablename__} outside the system scope.")
        allowed = {scope.tenant_id} | ({None} if column.nullable and not tenant_scoped(cls) else set())
        names = {column.key, column.name, inspect(cls).get_property_by_column(column).key}
        written = _written_values(statement, state.parameters, names)
        if state.is_insert and tenant_scoped(cls) and not written:
            raise TenancyViolation(f"INSERT into {cls.__tablename__} without a tenant: add the row instead.")
        for value in written:
            if value not in allowed:
                raise TenancyViolation(f"A statement writes {cls.__tablename__} rows of another tenant.")


def _written_values(statement: Any, parameters: Any, names: set[str]) -> list[Any]:
    rows: list[Any] = []
    if getattr(statement, "_values", None):
        rows.append(statement._values)
    for values in getattr(statement, "_multi_values", ()) or ():
        rows.extend(values)
    if isinstance(parameters, dict):
        rows.append(parameters)
    elif isinstance(parameters, list | tuple):
        rows.extend(parameters)
    found = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        for key, value in row.items():
            name = key if isinstance(key, str) else getattr(key, "key", None)
            if name in names:
                found.append(value.value if isinstance(value, BindParameter) else value)
    return found


def _has_row_filter(cls: type) -> bool:
    from mobility.core import policies

    return policies.has_row_filter(cls)


def _unique(classes: list[type]) -> list[type]:
    return list(dict.fromkeys(classes))


@event.listens_for(ScopedSession, "before_flush")
def _stamp_writes(session: Session, _flush_context: Any, _instances: Any) -> None:
    scope = session.info.get("scope")
    for obj in session.new:
        if not tenant_scoped(type(obj)):
            _check_shared_row_tenant(obj, scope)
            continue
        if scope is None:
            raise TenancyViolation(f"Insert into {obj.__tablename__} without a scope.")
        if obj.tenant_id is None:
            if scope.tenant_id is None:
                raise TenancyViolation(f"Insert into {obj.__tablename__} without a tenant.")
            obj.tenant_id = scope.tenant_id
        elif not scope.system and obj.tenant_id != scope.tenant_id:
            raise TenancyViolation(f"Insert into {obj.__tablename__} for another tenant.")
        if obj.created_by is None:
            obj.created_by = scope.actor_id
        if obj.updated_by is None:
            obj.updated_by = scope.actor_id
    for obj in session.dirty:
        if not session.is_modified(obj, include_collections=False):
            continue
        _check_read_here(obj, scope, "Update of")
        if not tenant_scoped(type(obj)):
            state = inspect(obj)
            if "tenant_id" in state.mapper.attrs and state.attrs.tenant_id.history.has_changes():
                _check_shared_row_tenant(obj, scope)
            continue
        if scope is None:
            raise TenancyViolation(f"Update of {obj.__tablename__} without a scope.")
        if inspect(obj).attrs.tenant_id.history.has_changes():
            raise TenancyViolation(f"A {obj.__tablename__} row cannot move to another tenant.")
        obj.updated_by = scope.actor_id
    for obj in session.deleted:
        if tenant_scoped(type(obj)) and scope is None:
            raise TenancyViolation(f"Delete from {obj.__tablename__} without a scope.")
        _check_read_here(obj, scope, "Delete from")


# Where an ORM object's row came from: the tenant of the scope that read (or inserted) it, or _SYSTEM.
# An UPDATE or DELETE at flush names its row by primary key only, outside the statement filters: an
# object that no scoped session read (built by hand with another tenant's id and added, say) would
# write whatever row has that id. Row-level security stops that on PostgreSQL; this stops it on both.
_READ_FOR = "mobility.read_for"
_SYSTEM = "system"


def _mark_read(session: Session, instance: Any) -> None:
    scope = session.info.get("scope")
    if scope is not None:
        inspect(instance).info[_READ_FOR] = _SYSTEM if scope.system else scope.tenant_id


event.listen(ScopedSession, "loaded_as_persistent", _mark_read)
event.listen(ScopedSession, "pending_to_persistent", _mark_read)


def _check_read_here(obj: Any, scope: Scope | None, what: str) -> None:
    if scope is None or scope.system:
        return
    read_for = inspect(obj).info.get(_READ_FOR)
    if read_for is None:
        raise TenancyViolation(f"{what} {obj.__tablename__}: a row no scoped session read.")
    if read_for not in (_SYSTEM, scope.tenant_id):
        raise TenancyViolation(f"{what} {obj.__tablename__}: a row read for another tenant.")


def _check_shared_row_tenant(obj: Any, scope: Scope | None) -> None:
    """rows of the shared tables that name a tenant (a membership, a tenant's
    custom role, a user's primary tenant, a session, an audit row) cannot be written for another tenant
    either. Before, an Admin of B could add `UserTenant(tenantId=A, role=Admin)` for themselves: the
    stamping above only looked at tenant-scoped models. A null tenant (a global role) stays allowed.
    """
    if scope is None or scope.system:
        return
    tenant_id = getattr(obj, "tenant_id", None)
    if tenant_id is not None and tenant_id != scope.tenant_id:
        raise TenancyViolation(f"A {obj.__tablename__} row for another tenant.")


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
    so nothing widens. Read only: never flush inside (the trail would lose its actor).
    """
    scope = require_scope(session)
    if scope.system:
        yield
        return
    bind_scope(session, scope.but(actor_id=None))
    try:
        yield
    finally:
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
