"""Global keys: values that must be unique across the installation, on tables distributed by tenant.

A table distributed by tenant (mobility.distribution) cannot enforce a key across tenants, and cannot be
searched by one without asking every shard. A value that is looked up without a tenant (a certificate's
verification code, an invitation's token) therefore also lives in a small table of its own, one row per
value with the tenant it belongs to (a reference table under Citus): unique there, it is unique across
the installation, and a lookup finds the tenant first, then the row in that tenant.

A model declares such columns: `__global_keys__ = {"verification_code": CertificateCode}`, the key
model having an attribute of the same name (and column) and `tenant_id`. The row refers to the key table by a composite
foreign key (tenantId, <column>), so the database refuses a value that is not registered for the row's
own tenant. Registering is done here, on every flush of the application's session class, for every new
row and every changed value, in the same transaction, before the row itself is written: INSERT ... ON
CONFLICT DO NOTHING, so a value registered already (by the same tenant) is fine, and one another tenant
holds is then refused by the foreign key (a 409 through `audit.flush_as`). Rows of key tables are never
deleted: a value once given stays its tenant's.

A row is found by its global key with `find(session, Model, attribute, value)`: the key's tenant
first, then the row in that tenant (one index probe each; one node each under Citus).

Installed explicitly on the session class (mobility.app_session), never by import.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from mobility.core.models import new_id

GLOBAL_KEYS = "__global_keys__"


def global_keys(cls: type) -> dict[str, type]:
    """The model's global keys: attribute -> key model."""
    return getattr(cls, GLOBAL_KEYS, None) or {}


def install_global_keys(session_class: type[Session]) -> None:
    """Every flush of `session_class` sessions registers the global keys its rows carry (see above).
    Listens after the tenant guard's own before_flush (installed on the base class when it was
    imported), so new rows have their tenant by then."""
    event.listen(session_class, "before_flush", _register)


def _register(session: Session, _flush_context: Any, _instances: Any) -> None:
    wanted: dict[type, dict[tuple[Any, Any], None]] = {}
    for obj in (*session.new, *session.dirty):
        keys = global_keys(type(obj))
        if not keys:
            continue
        state = inspect(obj)
        for attribute, key_model in keys.items():
            value = getattr(obj, attribute)
            if value is None:
                continue
            if not state.pending and not state.attrs[attribute].history.has_changes():
                continue
            wanted.setdefault(key_model, {})[(obj.tenant_id, value)] = None
    if not wanted:
        return
    connection = session.connection()
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    for key_model, pairs in wanted.items():
        column = _value_column(key_model)
        rows = [{"id": new_id(), "tenantId": tenant, column: value} for tenant, value in pairs]
        connection.execute(dialect.insert(key_model.__table__).on_conflict_do_nothing(), rows)


def _value_column(key_model: type) -> str:
    """The key table's value column: the one that is neither its id, its tenant nor a timestamp."""
    columns = [
        column.name
        for column in key_model.__table__.columns
        if column.name not in {"id", "tenantId", "createdAt"}
    ]
    if len(columns) != 1:
        raise TypeError(f"{key_model.__tablename__}: a key table has one value column, not {columns}")
    return columns[0]


async def find(
    session: AsyncSession, model: type, attribute: str, value: Any, *, for_update: bool = False
) -> Any | None:
    """The row of `model` whose global key `attribute` is `value`, or None: the key's tenant from its
    key table, then the row in that tenant by (tenantId, value), both through the session (its scope's
    rules apply: a row they hide is None). `for_update` locks the row."""
    key_model = global_keys(model)[attribute]
    tenant_id = (
        await session.execute(select(key_model.tenant_id).where(getattr(key_model, attribute) == value))
    ).scalar_one_or_none()
    if tenant_id is None:
        return None
    statement = select(model).where(model.tenant_id == tenant_id, getattr(model, attribute) == value)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()
