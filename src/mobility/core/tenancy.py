"""Tenant scoping, enforced once, in the data layer.

Every database session carries a `Scope` (mobility.core.scope: who acts, in which tenant, with which
permissions). The `ScopedSession` below applies it to every ORM statement, whatever the calling code
forgets:

- SELECT, UPDATE and DELETE on a tenant-scoped model get the scope's row filter (the tenant, plus the
  row rules of `mobility.authz.rules` for the actor's role), through `with_loader_criteria`;
- new rows get the scope's tenant and `createdBy`/`updatedBy` stamped; a row of another tenant cannot be
  written; changed rows get `updatedBy`;
- a session with no scope refuses to touch a tenant-scoped model at all (fail closed). Code that must
  work across tenants (the CLI, seeding, looking up a session token) says so with `Scope.system()`.

On PostgreSQL, row-level security keyed on the same tenant (`mobility.tenant_id`, set per transaction
by `apply_to_database`) is the second wall.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.expression import TableClause

from mobility.core.scope import (
    _SETTINGS,
    _TENANT_VIEW,
    Scope,
    TenancyViolation,
    _settings_params,
    get_scope,
    tenant_scoped,
)


class RowRules(Protocol):
    """Which rows each scope sees (mobility.authz.rules): named by the application's session class."""

    def filtered(self, cls: type) -> bool:
        """Whether rows of `cls` are filtered at all (else every scope sees every row)."""

    def model_of(self, table: Any) -> type | None:
        """The model mapped to `table`, whatever was imported first."""

    def row_filter(self, entity: Any, scope: Scope) -> Any:
        """The WHERE clause `scope` puts on `entity` (a model or an alias of one)."""


class ScopedSession(Session):
    """The enforcement machinery every application session has (see module doc).

    Fails closed on its own: without `row_rules` it refuses every statement outside the system scope,
    and without `audited` every write. The application's one session class
    (`mobility.app_session.AppSession`) names the row rules and installs the audit trail on itself,
    and the API, CLI, seed, tests and workers all open sessions of it."""

    row_rules: ClassVar[RowRules | None] = None
    # Set by core.audit.install_trail: the audit logs' models (the tenants', the installation's),
    # written on every flush.
    audited: ClassVar[bool] = False
    audit_model: ClassVar[type | None] = None
    system_audit_model: ClassVar[type | None] = None


def rules_of(session: AsyncSession | Session) -> RowRules:
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    rules = type(sync).row_rules
    if rules is None:
        raise TenancyViolation(f"{type(sync).__name__} has no row rules: open sessions of AppSession.")
    return rules


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
    rules = rules_of(state.session)
    entities, by_table = row_filtered_entities(state.statement, state.all_mappers, rules)
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
    state.statement = state.statement.options(*row_filter_options(entities, scope, rules))


def row_filter_options(entities: list[Any], scope: Scope, rules: RowRules) -> list[Any]:
    """One `with_loader_criteria` per entity the statement names: each model, and each alias of one,
    gets the row filter built on its own columns.

    One option per model with `include_aliases=True` did not do that: the criteria of `Role` were
    pasted unchanged into the ON clause of a join to `aliased(Role)`, naming `roles` instead of the
    alias (an error, or a filter on the wrong table while the alias's rows went unfiltered).
    """
    return [
        with_loader_criteria(entity, rules.row_filter(entity, scope), include_aliases=False)
        for entity in entities
    ]


def row_filtered_entities(statement: Any, mappers: Any, rules: RowRules) -> tuple[list[Any], set[str]]:
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
    scoped = [entity for entity in _unique(entities) if rules.filtered(inspect(entity).mapper.class_)]
    scoped_tables = {inspect(entity).mapper.local_table for entity in scoped}
    by_table = set()
    for table in tables:
        cls = rules.model_of(table)
        if cls is not None and table not in scoped_tables and rules.filtered(cls):
            by_table.add(table.name)
    return scoped, by_table


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


def _unique(classes: list[type]) -> list[type]:
    return list(dict.fromkeys(classes))


@event.listens_for(ScopedSession, "before_flush")
def _stamp_writes(session: Session, _flush_context: Any, _instances: Any) -> None:
    if session.info.get(_TENANT_VIEW):
        raise TenancyViolation("A flush inside tenant_view: the trail would lose its actor. Flush after it.")
    if not type(session).audited and (session.new or session.dirty or session.deleted):
        raise TenancyViolation(
            f"{type(session).__name__} writes no audit trail: open sessions of AppSession."
        )
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
