"""Partners who bring candidates in (agents) and place them (brokers)."""

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from mobility.core.db import Base
from mobility.core.models import (
    EMPTY_JSON_OBJECT,
    CountryCode,
    JSONType,
    TenantScopedMixin,
    UTCDateTime,
    db_enum,
    tenant_table_args,
)


class PartnerStatus(enum.StrEnum):
    active = "active"
    suspended = "suspended"
    inactive = "inactive"


class PartnerMixin(TenantScopedMixin):
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    contact_name: Mapped[str | None] = mapped_column("contactName", String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40))
    address: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    country: Mapped[str | None] = mapped_column(CountryCode)
    licence_number: Mapped[str | None] = mapped_column("licenceNumber", String(100))
    licence_expiry: Mapped[date | None] = mapped_column("licenceExpiry", Date)
    # {"type": "flat" | "percent", "amount": "250.00" | "percent": "5", "currency": "FJD", "dueDays": 30}
    payment_terms: Mapped[dict[str, Any]] = mapped_column(
        "paymentTerms", JSONType, default=dict, server_default=EMPTY_JSON_OBJECT
    )
    status: Mapped[PartnerStatus] = mapped_column(
        db_enum(PartnerStatus), default=PartnerStatus.active, server_default=PartnerStatus.active.value
    )
    notes: Mapped[str | None] = mapped_column(Text)
    # Set while the status is `suspended` (migration 0017): why, since when, by whom.
    suspension_reason: Mapped[str | None] = mapped_column("suspensionReason", Text)
    suspended_at: Mapped[datetime | None] = mapped_column("suspendedAt", UTCDateTime())
    # The staff member's user id, as the audit trail keeps an actor: a record, no foreign key (adding
    # one would scan and lock the table; the account may go, the fact stays).
    suspended_by: Mapped[uuid.UUID | None] = mapped_column("suspendedBy", Uuid)

    @declared_attr
    def user_id(cls) -> Mapped[uuid.UUID | None]:
        # Optional login of the partner's own staff.
        return mapped_column("userId", Uuid, ForeignKey("users.id", ondelete="SET NULL"))


class Agent(PartnerMixin, Base):
    __tablename__ = "agents"
    __table_args__ = tenant_table_args(
        UniqueConstraint("tenantId", "code"), UniqueConstraint("tenantId", "userId")
    )


class Broker(PartnerMixin, Base):
    __tablename__ = "brokers"
    __table_args__ = tenant_table_args(
        UniqueConstraint("tenantId", "code"), UniqueConstraint("tenantId", "userId")
    )
