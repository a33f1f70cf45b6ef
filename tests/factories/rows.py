"""A generic row builder: a valid row of ANY model, so suites over "every table" cover new tables too.

Rules, from the model alone:
- NOT NULL columns without a default get a value by type: strings unique (within their length), enums
  their first value, numbers 1, dates today, timestamps now, JSON {}, booleans False, UUIDs new;
- nullable columns and columns with a default are left alone (unless given);
- `tenantId` is the builder's tenant;
- a NOT NULL foreign key is satisfied by building the referenced row first, recursively, in the same
  tenant, and taking the column it refers to (its id, or a global key's value: a certificate's code);
  a reference to `users` gets a user who is a member of the tenant, to `tenants` the tenant.

Rows are written with whatever session is passed (normally the system scope of `system_session`).
"""

from __future__ import annotations

import datetime as dt
import enum
import secrets
import uuid
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import JSON, Column, Table, TypeDecorator, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.authz.permissions import SystemRole
from mobility.core.db import Base
from mobility.tenants.models import Tenant
from mobility.users.models import User
from tests.factories import make_user

TENANT_COLUMN = "tenantId"
# Who wrote a row: stamped by the data layer, never "a reference" a caller chooses.
AUTHORSHIP_COLUMNS = frozenset({"createdBy", "updatedBy"})


@cache
def model_of_table() -> dict[str, type]:
    import mobility.models  # noqa: F401  (every model registered)

    return {mapper.local_table.name: mapper.class_ for mapper in Base.registry.mappers}


def model_for(table: Table | str) -> type:
    return model_of_table()[table if isinstance(table, str) else table.name]


def attribute_of(model: type, column: Column) -> str:
    return inspect(model).get_property_by_column(column).key


def referenced_column(column: Column) -> Column:
    """The column a (non-tenant) column refers to: `agentId` -> agents.id, `verificationCode` ->
    certificate_codes.verificationCode (a global key, core/global_keys.py)."""
    (target,) = {fk.column for fk in column.foreign_keys}
    return target


def referenced_table(column: Column) -> str | None:
    """The table a (non-tenant) column refers to: `agentId` -> agents, through a composite key or not."""
    targets = {fk.column.table.name for fk in column.foreign_keys}
    if not targets:
        return None
    assert len(targets) == 1, f"{column.table.name}.{column.name} refers to several tables: {targets}"
    return targets.pop()


def references_to(table_name: str) -> list[tuple[type, Column]]:
    """Every (model, column) whose foreign key points at `table_name` (tenantId and authorship aside)."""
    import mobility.models as models

    found = []
    for table in models.metadata.sorted_tables:
        for column in table.columns:
            if column.name == TENANT_COLUMN or column.name in AUTHORSHIP_COLUMNS:
                continue
            if referenced_table(column) == table_name:
                found.append((model_for(table), column))
    return found


def has_tenant_column(model: type) -> bool:
    return TENANT_COLUMN in model.__table__.c


def _unique_text(length: int | None) -> str:
    text = f"t{uuid.uuid4().hex}{secrets.token_hex(4)}"
    return text[: length or len(text)]


def value_for(column: Column) -> Any:
    """A valid value of the column's type."""
    column_type = column.type
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    if isinstance(column_type, JSON):
        return {}
    try:
        python_type = column_type.python_type
    except NotImplementedError:  # pragma: no cover - a type without one: say which
        raise AssertionError(
            f"no generic value for {column.table.name}.{column.name} ({column.type!r})"
        ) from None
    if isinstance(python_type, type) and issubclass(python_type, enum.Enum):
        return next(iter(python_type))
    if python_type is bool:
        return False
    if python_type is int:
        return 1
    if python_type in (Decimal, float):
        return python_type(1)
    if python_type is str:
        length = getattr(column_type, "length", None)
        return _unique_text(length)
    if python_type is dt.datetime:
        return dt.datetime.now(dt.UTC)
    if python_type is dt.date:
        return dt.date.today()
    if python_type is uuid.UUID:
        return uuid.uuid4()
    if python_type in (dict, list):
        return {}
    raise AssertionError(f"no generic value for {column.table.name}.{column.name} ({python_type})")


def _needs_value(column: Column) -> bool:
    if column.primary_key:
        return column.default is None and column.server_default is None and column.autoincrement is not True
    return not column.nullable and column.default is None and column.server_default is None


class RowBuilder:
    """Builds rows of any model in one tenant, parents included."""

    def __init__(self, session: AsyncSession, tenant: Tenant, *, depth_limit: int = 8) -> None:
        self.session = session
        self.tenant = tenant
        self.depth_limit = depth_limit

    async def user(self, *, member: bool = True) -> User:
        """A login of the tenant: a member of it (as Recruiter), or with `member=False` only its user row."""
        if not member:
            user = User(email=f"{_unique_text(24)}@example.org", tenant_id=self.tenant.id, status="active")
            self.session.add(user)
            await self.session.flush()
            return user
        return (await make_user(self.session, self.tenant, SystemRole.recruiter, primary=False)).user

    async def values(self, model: type, _depth: int = 0, **overrides: Any) -> dict[str, Any]:
        """Attribute values of a valid new row of `model` (parents built and flushed, the row not)."""
        if _depth > self.depth_limit:
            raise AssertionError(f"foreign keys nest deeper than {self.depth_limit} at {model.__name__}")
        values: dict[str, Any] = {}
        for column in model.__table__.columns:
            key = attribute_of(model, column)
            if key in overrides:
                continue
            if column.name == TENANT_COLUMN:
                values[key] = self.tenant.id
                continue
            if not _needs_value(column):
                continue
            target = referenced_table(column)
            if target is None:
                values[key] = value_for(column)
            elif target == "tenants":
                values[key] = self.tenant.id
            elif target == "users":
                # A membership row needs a user who is not a member yet.
                values[key] = (await self.user(member=model.__tablename__ != "user_tenants")).id
            else:
                parent = await self.build(model_for(target), _depth=_depth + 1)
                values[key] = getattr(parent, attribute_of(type(parent), referenced_column(column)))
        return {**values, **overrides}

    async def build(self, model: type, _depth: int = 0, **overrides: Any) -> Any:
        """A new row of `model` in the tenant, flushed (so it has its id)."""
        if model is User and not overrides:
            return await self.user()
        row = model(**await self.values(model, _depth=_depth, **overrides))
        self.session.add(row)
        await self.session.flush()
        return row


async def snapshot(session: AsyncSession, model: type, row_id: Any) -> dict[str, Any] | None:
    """Every column of the row, read afresh (None when it is gone)."""
    table = model.__table__
    found = (await session.execute(select(table).where(table.c.id == row_id))).mappings().one_or_none()
    return dict(found) if found is not None else None
