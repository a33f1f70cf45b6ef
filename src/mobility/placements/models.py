"""Placements of candidates with overseas employers, and the commissions they earn partners."""

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from mobility.core.db import Base
from mobility.core.models import (
    CountryCode,
    Currency,
    JSONType,
    Money,
    TenantScopedMixin,
    UTCDateTime,
    db_enum,
    same_tenant_fk,
    tenant_table_args,
)


class PlacementStatus(enum.StrEnum):
    proposed = "proposed"
    offered = "offered"
    accepted = "accepted"
    declined = "declined"
    deployed = "deployed"
    completed = "completed"
    terminated = "terminated"
    cancelled = "cancelled"


class Placement(TenantScopedMixin, Base):
    __tablename__ = "placements"
    __table_args__ = tenant_table_args(
        same_tenant_fk("candidateId", "candidates"),
        same_tenant_fk("agentId", "agents"),
        same_tenant_fk("brokerId", "brokers"),
        Index(None, "tenantId", "candidateId"),
        Index(None, "tenantId", "status"),
        Index(None, "tenantId", "agentId"),
        Index(None, "tenantId", "brokerId"),
        Index(None, "tenantId", "country", "contractStart"),
    )

    candidate_id: Mapped[uuid.UUID] = mapped_column("candidateId", Uuid)
    employer_name: Mapped[str] = mapped_column("employerName", String(200))
    employer_contact: Mapped[dict[str, Any] | None] = mapped_column("employerContact", JSONType)
    country: Mapped[str] = mapped_column(CountryCode)
    city: Mapped[str | None] = mapped_column(String(100))
    position: Mapped[str] = mapped_column(String(200))
    # The labour-mobility scheme, e.g. "PALM seasonal", "RSE".
    scheme: Mapped[str | None] = mapped_column(String(100))
    contract_start: Mapped[date | None] = mapped_column("contractStart", Date)
    contract_end: Mapped[date | None] = mapped_column("contractEnd", Date)
    salary_amount: Mapped[Decimal | None] = mapped_column("salaryAmount", Money)
    salary_currency: Mapped[str | None] = mapped_column("salaryCurrency", Currency)
    salary_period: Mapped[str | None] = mapped_column("salaryPeriod", String(16))
    status: Mapped[PlacementStatus] = mapped_column(
        db_enum(PlacementStatus), default=PlacementStatus.proposed, server_default="proposed"
    )
    agent_id: Mapped[uuid.UUID | None] = mapped_column("agentId", Uuid)
    broker_id: Mapped[uuid.UUID | None] = mapped_column("brokerId", Uuid)
    # Fixed from the partners' payment terms when the placement is accepted.
    agent_commission: Mapped[Decimal | None] = mapped_column("agentCommission", Money)
    broker_commission: Mapped[Decimal | None] = mapped_column("brokerCommission", Money)
    commission_currency: Mapped[str | None] = mapped_column("commissionCurrency", Currency)
    offered_at: Mapped[datetime | None] = mapped_column("offeredAt", UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column("acceptedAt", UTCDateTime())
    deployed_at: Mapped[datetime | None] = mapped_column("deployedAt", UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column("endedAt", UTCDateTime())
    notes: Mapped[str | None] = mapped_column(Text)
