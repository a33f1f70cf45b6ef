"""Column types and mixins shared by every domain's models."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

import uuid6
from sqlalchemy import (
    JSON,
    DateTime,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Numeric,
    PrimaryKeyConstraint,
    String,
    TypeDecorator,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, declared_attr, mapped_column


def new_id() -> uuid.UUID:
    """Time-ordered UUIDv7: index-friendly inserts, and no URL exposes a counter."""
    return uuid.UUID(bytes=uuid6.uuid7().bytes)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the engine keeps.

    SQLite has no time zones and the legacy Prisma tables use ``timestamp(3)`` without one, so naive
    values coming back are read as UTC, and aware values going in are converted to UTC first.
    """

    impl = DateTime
    cache_ok = True

    def __init__(self, timezone: bool = True, precision: int | None = None) -> None:
        super().__init__(timezone=timezone)
        self.precision = precision

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import TIMESTAMP

            # Returned as is: type_descriptor() would adapt it and drop the precision.
            return TIMESTAMP(timezone=self.impl.timezone, precision=self.precision)
        return dialect.type_descriptor(DateTime(timezone=self.impl.timezone))

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware values")
        value = value.astimezone(UTC)
        if self.precision is not None and self.precision < 6:
            # Store what the column keeps (legacy timestamp(3)), so the object shows what was stored.
            step = 10 ** (6 - self.precision)
            value = value.replace(microsecond=value.microsecond // step * step)
        return value if self.impl.timezone and dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# The legacy Prisma tables keep Prisma's default `timestamp(3) without time zone`, holding UTC.
LegacyTimestamp = UTCDateTime(timezone=False, precision=3)
CURRENT_TIMESTAMP = text("CURRENT_TIMESTAMP")
# Database defaults of NOT NULL JSON columns, so writers other than this app (SQL, Prisma) need not know.
EMPTY_JSON_OBJECT = text("'{}'")
EMPTY_JSON_ARRAY = text("'[]'")

# JSONB on PostgreSQL (indexable, compact), plain JSON text on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")
Money = Numeric(12, 2, asdecimal=True)
Currency = String(3)  # ISO 4217
CountryCode = String(2)  # ISO 3166-1 alpha-2


def db_enum(enum_class: type[enum.Enum], name: str | None = None) -> Enum:
    """A PostgreSQL enum type named like Prisma's (PascalCase); a CHECK constraint on SQLite.

    The stored labels are the members' values (snake_case), not their Python names.
    """
    return Enum(
        enum_class,
        name=name or enum_class.__name__,
        values_callable=lambda members: [member.value for member in members],
        create_constraint=True,
        validate_strings=True,
    )


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id, sort_order=-100)


class TenantKeyMixin:
    """A row of a table distributed by tenant (mobility.distribution): its primary key is
    (tenantId, id), which Citus needs (every key of a distributed table includes the distribution
    column), and the ORM's identity is `id` alone, as everywhere (`session.get(Model, id)`).

    The unit of work still names both columns in the UPDATEs and DELETEs it writes (SQLAlchemy uses
    the table's primary key there): `WHERE "tenantId" = ... AND id = ...`, an index probe of the
    primary key here, and one shard under Citus. The table adds the key with `tenant_key()`.
    """

    id: Mapped[uuid.UUID] = mapped_column(Uuid, default=new_id, sort_order=-100)
    __mapper_args__ = {"primary_key": ["id"]}


def tenant_key() -> PrimaryKeyConstraint:
    """The primary key of a table distributed by tenant: (tenantId, id), named `<table>_pkey`."""
    return PrimaryKeyConstraint("tenantId", "id")


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", UTCDateTime(), default=utcnow, server_default=CURRENT_TIMESTAMP, sort_order=100
    )
    updated_at: Mapped[datetime] = mapped_column(
        "updatedAt",
        UTCDateTime(),
        default=utcnow,
        onupdate=utcnow,
        server_default=CURRENT_TIMESTAMP,
        sort_order=100,
    )


class AuthorshipMixin:
    """Who created and last changed a row (nullable: seeds and system jobs have no user)."""

    @declared_attr
    def created_by(cls) -> Mapped[uuid.UUID | None]:
        return mapped_column("createdBy", Uuid, ForeignKey("users.id", ondelete="SET NULL"), sort_order=90)

    @declared_attr
    def updated_by(cls) -> Mapped[uuid.UUID | None]:
        return mapped_column("updatedBy", Uuid, ForeignKey("users.id", ondelete="SET NULL"), sort_order=90)


class TenantScopedMixin(TenantKeyMixin, AuthorshipMixin, TimestampMixin):
    """A row that belongs to exactly one tenant.

    Its primary key (tenantId, id) is what other tables refer to with a composite foreign key: a
    reference across tenants is then impossible by construction (see `same_tenant_fk`).
    """

    __tenant_scoped__ = True

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(
            "tenantId", Uuid, ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=False, sort_order=-90
        )


def tenant_table_args(*args: Any) -> tuple[Any, ...]:
    """``__table_args__`` of a tenant-scoped table: its own args plus the primary key (tenantId, id).

    The key is the target of `same_tenant_fk`, and is led by tenantId for Citus (mobility.distribution).
    """
    return (tenant_key(), *args)


def same_tenant_fk(column: str, target_table: str, ondelete: str = "RESTRICT") -> ForeignKeyConstraint:
    """A reference to another tenant-scoped row that must belong to the same tenant.

    The key is (tenantId, column) -> target (tenantId, id), the target's primary key: a row of another
    tenant cannot be referenced, whatever the application does. Rows are never re-parented across
    tenants, so no ON UPDATE; and never ON DELETE SET NULL, which would null tenantId too (Citus
    refuses both on a key that includes the distribution column).
    """
    return ForeignKeyConstraint(
        ["tenantId", column], [f"{target_table}.tenantId", f"{target_table}.id"], ondelete=ondelete
    )
