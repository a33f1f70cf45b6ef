"""Vetting: the checks a candidate must clear before a placement can be offered."""

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from mobility.core.db import Base
from mobility.core.models import (
    JSONType,
    TenantScopedMixin,
    UTCDateTime,
    db_enum,
    same_tenant_fk,
    tenant_table_args,
)


class VettingCheckType(enum.StrEnum):
    identity = "identity"
    police_clearance = "police_clearance"
    medical = "medical"
    reference = "reference"
    skills = "skills"
    visa_eligibility = "visa_eligibility"


class VettingStatus(enum.StrEnum):
    pending = "pending"
    in_progress = "in_progress"
    cleared = "cleared"
    failed = "failed"
    expired = "expired"
    waived = "waived"


class VettingRecord(TenantScopedMixin, Base):
    __tablename__ = "vetting_records"
    __table_args__ = tenant_table_args(
        # Vetting results are the candidate's personal data: they go with the candidate.
        same_tenant_fk("candidateId", "candidates", ondelete="CASCADE"),
        Index(None, "tenantId", "candidateId", "checkType"),
        Index(None, "tenantId", "status", "expiresAt"),
    )

    candidate_id: Mapped[uuid.UUID] = mapped_column("candidateId", Uuid)
    check_type: Mapped[VettingCheckType] = mapped_column("checkType", db_enum(VettingCheckType))
    status: Mapped[VettingStatus] = mapped_column(
        db_enum(VettingStatus), default=VettingStatus.pending, server_default="pending"
    )
    reviewer_id: Mapped[uuid.UUID | None] = mapped_column(
        "reviewerId", Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    requested_at: Mapped[datetime | None] = mapped_column("requestedAt", UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column("completedAt", UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column("expiresAt", UTCDateTime())
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    notes: Mapped[str | None] = mapped_column(Text)
