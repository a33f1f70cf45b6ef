import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Text, UniqueConstraint, Uuid, false
from sqlalchemy.orm import Mapped, mapped_column

from mobility.core.db import Base
from mobility.core.models import CURRENT_TIMESTAMP, IdMixin, JSONType, LegacyTimestamp, utcnow


class Role(IdMixin, Base):
    """Legacy table (Prisma app), extended by revision 0002 with a tenant and the system flag."""

    __tablename__ = "roles"
    # Names are unique within a tenant, and among the global roles (NULLS NOT DISTINCT, PostgreSQL 15;
    # on SQLite only the seed creates global roles). Replaces the legacy global UNIQUE (name) in 0008.
    __table_args__ = (UniqueConstraint("tenantId", "name", postgresql_nulls_not_distinct=True),)

    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    permissions: Mapped[Any | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", LegacyTimestamp, default=utcnow, server_default=CURRENT_TIMESTAMP
    )
    updated_at: Mapped[datetime] = mapped_column(
        "updatedAt", LegacyTimestamp, default=utcnow, onupdate=utcnow
    )
    # Null for the global (system) roles; set for a tenant's own custom roles.
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        "tenantId", Uuid, ForeignKey("tenants.id", ondelete="RESTRICT")
    )
    system_role: Mapped[bool] = mapped_column("systemRole", Boolean, default=False, server_default=false())
