"""Courses, who is enrolled in them, attendance, assessments and the certificates they lead to."""

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from mobility.core.db import Base
from mobility.core.models import (
    CURRENT_TIMESTAMP,
    Currency,
    IdMixin,
    Money,
    TenantScopedMixin,
    UTCDateTime,
    db_enum,
    same_tenant_fk,
    tenant_table_args,
    utcnow,
)

Percent = Numeric(5, 2)
Score = Numeric(7, 2)


class CourseStatus(enum.StrEnum):
    draft = "draft"
    open = "open"
    in_progress = "in_progress"
    completed = "completed"
    cancelled = "cancelled"


class EnrollmentStatus(enum.StrEnum):
    enrolled = "enrolled"
    in_progress = "in_progress"
    completed = "completed"
    failed = "failed"
    withdrawn = "withdrawn"


class AttendanceStatus(enum.StrEnum):
    present = "present"
    late = "late"
    absent = "absent"
    excused = "excused"


class AssessmentType(enum.StrEnum):
    theory = "theory"
    practical = "practical"
    final = "final"


class Course(TenantScopedMixin, Base):
    __tablename__ = "courses"
    __table_args__ = tenant_table_args(
        UniqueConstraint("tenantId", "code"),
        Index(None, "tenantId", "startDate"),
        Index(None, "tenantId", "trainerId"),
    )

    code: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(String(200))
    start_date: Mapped[date | None] = mapped_column("startDate", Date)
    end_date: Mapped[date | None] = mapped_column("endDate", Date)
    capacity: Mapped[int | None] = mapped_column(Integer)
    trainer_id: Mapped[uuid.UUID | None] = mapped_column(
        "trainerId", Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    fee: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(Currency)
    pass_mark: Mapped[Decimal] = mapped_column(
        "passMark", Percent, default=Decimal("50"), server_default="50"
    )
    min_attendance_percent: Mapped[Decimal] = mapped_column(
        "minAttendancePercent", Percent, default=Decimal("80"), server_default="80"
    )
    # Months a certificate of this course stays valid; null: no expiry.
    certificate_validity_months: Mapped[int | None] = mapped_column("certificateValidityMonths", Integer)
    status: Mapped[CourseStatus] = mapped_column(
        db_enum(CourseStatus), default=CourseStatus.draft, server_default="draft"
    )


class Enrollment(TenantScopedMixin, Base):
    __tablename__ = "enrollments"
    __table_args__ = tenant_table_args(
        UniqueConstraint("tenantId", "courseId", "candidateId"),
        same_tenant_fk("courseId", "courses"),
        same_tenant_fk("candidateId", "candidates"),
        Index(None, "tenantId", "candidateId"),
        Index(None, "tenantId", "status"),
    )

    course_id: Mapped[uuid.UUID] = mapped_column("courseId", Uuid)
    candidate_id: Mapped[uuid.UUID] = mapped_column("candidateId", Uuid)
    status: Mapped[EnrollmentStatus] = mapped_column(
        db_enum(EnrollmentStatus), default=EnrollmentStatus.enrolled, server_default="enrolled"
    )
    enrolled_at: Mapped[datetime | None] = mapped_column("enrolledAt", UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column("completedAt", UTCDateTime())
    withdrawn_at: Mapped[datetime | None] = mapped_column("withdrawnAt", UTCDateTime())
    notes: Mapped[str | None] = mapped_column(Text)


class AttendanceRecord(TenantScopedMixin, Base):
    __tablename__ = "attendance_records"
    __table_args__ = tenant_table_args(
        UniqueConstraint("tenantId", "enrollmentId", "sessionDate"),
        same_tenant_fk("enrollmentId", "enrollments", ondelete="CASCADE"),
    )

    enrollment_id: Mapped[uuid.UUID] = mapped_column("enrollmentId", Uuid)
    session_date: Mapped[date] = mapped_column("sessionDate", Date)
    status: Mapped[AttendanceStatus] = mapped_column(db_enum(AttendanceStatus))
    notes: Mapped[str | None] = mapped_column(Text)


class Assessment(TenantScopedMixin, Base):
    __tablename__ = "assessments"
    __table_args__ = tenant_table_args(
        same_tenant_fk("enrollmentId", "enrollments", ondelete="CASCADE"),
        Index(None, "tenantId", "enrollmentId"),
    )

    enrollment_id: Mapped[uuid.UUID] = mapped_column("enrollmentId", Uuid)
    title: Mapped[str] = mapped_column(String(200))
    type: Mapped[AssessmentType] = mapped_column(db_enum(AssessmentType))
    score: Mapped[Decimal] = mapped_column(Score)
    max_score: Mapped[Decimal] = mapped_column("maxScore", Score)
    passed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    assessed_at: Mapped[datetime | None] = mapped_column("assessedAt", UTCDateTime())
    assessor_id: Mapped[uuid.UUID | None] = mapped_column(
        "assessorId", Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    notes: Mapped[str | None] = mapped_column(Text)


class CertificateCode(IdMixin, Base):
    """Which tenant a certificate verification code belongs to, across the installation (0015).

    Codes are checked on a public endpoint that knows no tenant, and `certificates` is distributed by
    tenant: the code is looked up here first (a reference table under Citus), then the certificate in
    its tenant (`certificates ("tenantId", "verificationCode")`). Unique here, a code is unique across
    tenants, and the certificate refers to its row, so no certificate carries a code this table does
    not give to its tenant. Written by the data layer with the certificate (`__global_keys__`, see
    core/global_keys.py) and never deleted: a printed code never comes to mean another certificate."""

    __tablename__ = "certificate_codes"
    __audited__ = False
    __table_args__ = (UniqueConstraint("tenantId", "verificationCode"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        "tenantId", Uuid, ForeignKey("tenants.id", ondelete="RESTRICT")
    )
    verification_code: Mapped[str] = mapped_column("verificationCode", String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", UTCDateTime(), default=utcnow, server_default=CURRENT_TIMESTAMP
    )


class Certificate(TenantScopedMixin, Base):
    __tablename__ = "certificates"
    __table_args__ = tenant_table_args(
        UniqueConstraint("tenantId", "certificateNumber"),
        UniqueConstraint("tenantId", "verificationCode"),
        # Checked on a public endpoint without a tenant: unique across the installation through its
        # row in certificate_codes, which gives the code to this tenant.
        ForeignKeyConstraint(
            ["tenantId", "verificationCode"],
            ["certificate_codes.tenantId", "certificate_codes.verificationCode"],
            ondelete="RESTRICT",
        ),
        same_tenant_fk("enrollmentId", "enrollments"),
        Index(None, "tenantId", "enrollmentId"),
    )
    __global_keys__ = {"verification_code": CertificateCode}

    enrollment_id: Mapped[uuid.UUID] = mapped_column("enrollmentId", Uuid)
    certificate_number: Mapped[str] = mapped_column("certificateNumber", String(32))
    # Unguessable (>= 128 bits of randomness), printed on the certificate.
    verification_code: Mapped[str] = mapped_column("verificationCode", String(64))
    issued_at: Mapped[datetime] = mapped_column("issuedAt", UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column("expiresAt", UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column("revokedAt", UTCDateTime())
    revocation_reason: Mapped[str | None] = mapped_column("revocationReason", Text)
