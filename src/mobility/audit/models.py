import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from mobility.core.db import Base
from mobility.core.models import (
    CURRENT_TIMESTAMP,
    IdMixin,
    JSONType,
    LegacyTimestamp,
    TenantKeyMixin,
    UTCDateTime,
    tenant_key,
    utcnow,
)


class ActivityLog(IdMixin, Base):
    """Legacy table (Prisma app): sign-in activity and other user events."""

    __tablename__ = "activity_logs"
    __audited__ = False
    __table_args__ = (Index(None, "userId"),)

    user_id: Mapped[uuid.UUID | None] = mapped_column(
        "userId", Uuid, ForeignKey("users.id", ondelete="SET NULL", onupdate="CASCADE")
    )
    action: Mapped[str] = mapped_column(Text)
    details: Mapped[Any | None] = mapped_column(JSONType)
    ip_address: Mapped[str | None] = mapped_column("ipAddress", Text)
    user_agent: Mapped[str | None] = mapped_column("userAgent", Text)
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", LegacyTimestamp, default=utcnow, server_default=CURRENT_TIMESTAMP
    )


class AuditLog(TenantKeyMixin, Base):
    """Append-only trail of every write, each row in its tenant's trail (distributed by tenant: its key
    is (tenantId, id); changes made without a tenant are in `SystemAuditLog`).

    Deliberately without foreign keys to users or to the audited rows: deleting anything must never
    cascade into, or rewrite, the trail. The tenant reference is RESTRICT (tenants are never deleted).
    """

    __tablename__ = "audit_logs"
    __audited__ = False
    __table_args__ = (
        tenant_key(),
        Index(None, "tenantId", "entityType", "entityId"),
        Index(None, "tenantId", "createdAt"),
        Index(None, "actorId"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        "tenantId", Uuid, ForeignKey("tenants.id", ondelete="RESTRICT")
    )
    actor_id: Mapped[uuid.UUID | None] = mapped_column("actorId", Uuid)
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column("entityType", String(64))
    entity_id: Mapped[uuid.UUID | None] = mapped_column("entityId", Uuid)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    ip_address: Mapped[str | None] = mapped_column("ipAddress", String(45))
    request_id: Mapped[str | None] = mapped_column("requestId", String(64))
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", UTCDateTime(), default=utcnow, server_default=CURRENT_TIMESTAMP
    )


class SystemAuditLog(IdMixin, Base):
    """Append-only trail of the changes made without a tenant (under the system scope: the seed's
    global roles, an account changed by `mobility users merge` or `set-password` outside any tenant).

    The same columns as `AuditLog` but the tenant; apart from it because `audit_logs` is distributed by
    tenant (Citus refuses a row without one), while these rows belong to the installation (local).
    """

    __tablename__ = "system_audit_logs"
    __audited__ = False

    actor_id: Mapped[uuid.UUID | None] = mapped_column("actorId", Uuid)
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column("entityType", String(64))
    entity_id: Mapped[uuid.UUID | None] = mapped_column("entityId", Uuid)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    ip_address: Mapped[str | None] = mapped_column("ipAddress", String(45))
    request_id: Mapped[str | None] = mapped_column("requestId", String(64))
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", UTCDateTime(), default=utcnow, server_default=CURRENT_TIMESTAMP
    )
