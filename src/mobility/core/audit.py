"""The audit trail: every write through the ORM records an `audit_logs` row in the same transaction.

Hooked into the session's flush, so no endpoint can forget it: for each inserted, changed or deleted
row it records the actor, tenant, action, entity and the changed fields before and after. Each row goes
to its tenant's trail (`audit_logs`, distributed by tenant: mobility.distribution); a change made
without a tenant (under the system scope) to the installation's (`system_audit_logs`). Secrets
(password hashes, TOTP secrets, token hashes, recovery codes) are redacted: the trail shows that they
changed, never their value. Tables that are themselves logs or login bookkeeping opt out with
`__audited__ = False` (their events go to activity_logs instead).
Deletes by bulk statement (`delete(Model).where(...)`) bypass the flush and so the trail: services
delete through `session.delete(obj)`.
A service may name the business action of its next flush with `describe(session, "user.suspend")`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from typing import Any

from sqlalchemy import event, insert, inspect
from sqlalchemy import types as sa_types
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from mobility.core.errors import Conflict
from mobility.core.models import new_id, utcnow
from mobility.core.scope import Scope, tenant_scoped
from mobility.core.tenancy import ScopedSession

REDACTED = "[redacted]"
_ACTION_KEY = "audit_action"
_DETAILS_KEY = "audit_details"


def describe(session: AsyncSession | Session, action: str, details: dict[str, Any] | None = None) -> None:
    """Name the business action (e.g. "user.suspend") of the rows the next flush writes; `details`
    (e.g. the reason of a status change) are recorded with each of its entries, next to the changed
    columns in `after`."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    sync.info[_ACTION_KEY] = action
    if details:
        sync.info[_DETAILS_KEY] = details


def _json_safe(value: Any) -> Any:
    if isinstance(value, uuid.UUID | dt.date | dt.datetime | dt.time):
        return value.isoformat() if not isinstance(value, uuid.UUID) else str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _audited(obj: Any) -> bool:
    return getattr(type(obj), "__audited__", True) and hasattr(obj, "__table__")


def _redacted(obj: Any) -> frozenset[str]:
    return getattr(type(obj), "__audit_redact__", frozenset())


def _column_attrs(obj: Any):
    return inspect(obj).mapper.column_attrs


def _snapshot(obj: Any) -> dict[str, Any]:
    secret = _redacted(obj)
    out: dict[str, Any] = {}
    for attr in _column_attrs(obj):
        column_name = attr.columns[0].name
        value = getattr(obj, attr.key)
        out[column_name] = REDACTED if attr.key in secret and value is not None else _json_safe(value)
    return out


def _changes(obj: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    secret = _redacted(obj)
    state = inspect(obj)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for attr in _column_attrs(obj):
        history = state.attrs[attr.key].history
        if not history.has_changes():
            continue
        old = history.deleted[0] if history.deleted else None
        new = history.added[0] if history.added else None
        if old == new:
            continue
        column_name = attr.columns[0].name
        if attr.key in secret:
            before[column_name] = REDACTED if old is not None else None
            after[column_name] = REDACTED if new is not None else None
        else:
            before[column_name] = _json_safe(old)
            after[column_name] = _json_safe(new)
    return before, after


def _tenant_of(obj: Any, scope: Scope | None) -> Any:
    """The tenant whose trail records the change: the row's own for a tenant-scoped row, and for a row
    that names the tenant it is about (`__audit_tenant__`: a tenant itself, a membership), whoever
    changed it from wherever; for the others (users, whose tenantId is only the primary tenant; global
    roles) the tenant acted in, which row-level security requires on PostgreSQL. Without one (system
    scope), the row's. Writing into another tenant's trail needs the system scope on PostgreSQL
    (`across_tenants`)."""
    about = getattr(type(obj), "__audit_tenant__", None)
    if about is not None:
        return getattr(obj, about)
    own = getattr(obj, "tenant_id", None)
    if tenant_scoped(type(obj)) or scope is None or scope.tenant_id is None:
        return own or (scope.tenant_id if scope else None)
    return scope.tenant_id


def _entry(obj: Any, operation: str, before: dict | None, after: dict | None, *, scope, action, now) -> dict:
    """One audit row (by attribute name) for a change of `obj`."""
    table = obj.__tablename__
    return {
        "id": new_id(),
        "tenant_id": _tenant_of(obj, scope),
        "actor_id": scope.actor_id if scope else None,
        "action": action or f"{table}.{operation}",
        "entity_type": table,
        "entity_id": obj.id,
        "before": before,
        "after": after,
        "ip_address": scope.ip_address if scope else None,
        "request_id": scope.request_id if scope else None,
        "created_at": now,
    }


def _insert_rows(connection: Any, session_class: type, rows: list[dict[str, Any]]) -> None:
    """The audit rows (by attribute name) into the trails (Core: the trail is not itself audited): a
    row with a tenant into the tenant's trail, one without into the installation's."""
    for model, chosen in (
        (session_class.audit_model, [row for row in rows if row["tenant_id"] is not None]),
        (session_class.system_audit_model, [row for row in rows if row["tenant_id"] is None]),
    ):
        if chosen:
            connection.execute(insert(model.__table__), [by_column(model, row) for row in chosen])


def by_column(model: type, row: dict[str, Any]) -> dict[str, Any]:
    """An audit row by attribute name, as `model`'s columns (the installation's trail has no tenant)."""
    attributes = model.__mapper__.attrs
    return {attributes[key].columns[0].key: value for key, value in row.items() if key in attributes}


def install_trail(session_class: type[ScopedSession], model: type, system_model: type) -> None:
    """Every flush of `session_class` sessions writes its trail, in the same transaction: into
    `model`'s table (the tenants' audit log) and, for changes without a tenant, `system_model`'s.
    Called once, on the application's session class (mobility.app_session): nothing installs it by
    being imported, and a ScopedSession without it refuses to write."""
    session_class.audit_model = model
    session_class.system_audit_model = system_model
    session_class.audited = True
    event.listen(session_class, "after_flush", _record)


def _record(session: Session, _flush_context: Any) -> None:
    """Write the trail of this flush on the flush's own connection, i.e. in the same transaction.

    After the flush, new rows carry their generated values (ids, defaults); the pre-flush history is
    still there for changed rows. Inserted with Core, so the trail itself is not audited or filtered.
    """
    scope = session.info.get("scope")
    label = session.info.pop(_ACTION_KEY, None)
    details = session.info.pop(_DETAILS_KEY, None)
    now = utcnow()
    rows: list[dict[str, Any]] = []

    def entry(obj: Any, operation: str, before: dict | None, after: dict | None) -> None:
        if details:
            after = {**(after or {}), **_json_safe(details)}
        rows.append(_entry(obj, operation, before, after, scope=scope, action=label, now=now))

    for obj in session.new:
        if _audited(obj):
            entry(obj, "create", None, _snapshot(obj))
    for obj in session.dirty:
        if _audited(obj) and session.is_modified(obj, include_collections=False):
            before, after = _changes(obj)
            if after or before:
                entry(obj, "update", before, after)
    for obj in session.deleted:
        if _audited(obj):
            entry(obj, "delete", _snapshot(obj), None)
    if rows:
        _insert_rows(session.connection(), type(session), rows)


async def record_inserted(session: AsyncSession, obj: Any, action: str) -> None:
    """The trail of a row that a statement inserted rather than a flush (an `INSERT ... ON CONFLICT`
    upsert, which the flush cannot express): the entry the flush would have written, in the same
    transaction."""
    scope = session.sync_session.info.get("scope")
    row = _entry(obj, "create", None, _snapshot(obj), scope=scope, action=action, now=utcnow())
    connection = await session.connection()
    await connection.run_sync(lambda sync: _insert_rows(sync, type(session.sync_session), [row]))


_PLAIN = (str, int, float, bool, type(None))


def _as_is(value: Any) -> Any:
    return value


def _plain_or_safe(value: Any) -> Any:
    # Most of a row's values are JSON already: `_json_safe` only for the others (cheaper by half).
    return value if type(value) in _PLAIN else _json_safe(value)


async def record_bulk_insert(
    session: AsyncSession, model: type, rows: list[dict[str, Any]], action: str
) -> None:
    """The trail of the rows of a tenant-scoped `model` that an ORM bulk INSERT wrote
    (`session.execute(insert(model), rows)`, which bypasses the flush: an import's batch): one entry per
    row, the one the flush would have written (`rows` by attribute name, every column given), inserted
    in one statement of many rows."""
    if not tenant_scoped(model):
        raise ValueError(f"{model.__name__} is not tenant-scoped: add its rows to the session instead")
    scope = session.sync_session.info.get("scope")
    secret = getattr(model, "__audit_redact__", frozenset())
    # A JSON column's value is JSON already (the row's INSERT serializes it as it is, in the same
    # transaction): kept as it is, where walking each list and object cost a third of an import's audit.
    columns = [
        (
            attr.key,
            attr.columns[0].name,
            _as_is if isinstance(attr.columns[0].type, sa_types.JSON) else _plain_or_safe,
        )
        for attr in model.__mapper__.column_attrs
    ]
    now = utcnow()
    entries = [
        {
            "id": new_id(),
            "tenant_id": row["tenant_id"],
            "actor_id": scope.actor_id if scope else None,
            "action": action,
            "entity_type": model.__tablename__,
            "entity_id": row["id"],
            "before": None,
            "after": {
                name: safe(row.get(key)) if key not in secret or row.get(key) is None else REDACTED
                for key, name, safe in columns
            },
            "ip_address": scope.ip_address if scope else None,
            "request_id": scope.request_id if scope else None,
            "created_at": now,
        }
        for row in rows
    ]
    if entries:
        connection = await session.connection()
        await connection.run_sync(lambda sync: _insert_rows(sync, type(session.sync_session), entries))


async def flush_as(
    session: AsyncSession,
    action: str,
    *,
    conflict: str,
    reread: tuple[Any, ...] = (),
    details: dict[str, Any] | None = None,
) -> None:
    """Flush the pending writes as the business action `action` (the audit trail's name for them); a
    unique key the pre-checks did not catch (a concurrent request) is a 409, not a 500.

    `details`: recorded with the flush's entries (see `describe`).
    `reread`: rows of the legacy tables (users, roles), whose timestamps PostgreSQL keeps to the
    millisecond: their createdAt/updatedAt are read back, so the response shows what was stored.
    """
    if not (session.new or session.dirty or session.deleted):
        return
    describe(session, action, details)
    try:
        await session.flush()
    except (IntegrityError, StaleDataError) as exc:  # a unique key taken, or the row deleted, meanwhile
        raise Conflict(conflict) from exc
    for row in reread:
        await session.refresh(row, attribute_names=["created_at", "updated_at"])
