"""Step 5: the core domain tables, in the spec's dependency order.

agents, brokers, candidates, courses, enrollments, attendance_records, assessments, certificates,
vetting_records, placements; with their enum types (PostgreSQL), keys, foreign keys and the unique
keys that define a row (UNIQUE (tenantId, id) as the target of same-tenant references; one enrollment
per candidate and course; one attendance record per enrollment and day). The unique codes and numbers
and every non-unique index come in 0007 ("indexes & constraints").

Every reference from one tenant-scoped row to another is a composite foreign key
(tenantId, xId) -> x (tenantId, id): a row of another tenant cannot be referenced, whatever the
application does.

New, empty tables: everything runs in the migration's one transaction.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql.named_types import CreateEnumType, DropEnumType

from mobility.ops.migration_ops import create_tenant_table, is_postgresql, same_tenant_fk, user_fk

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here rather than imported from the models: a revision must keep producing the same
# DDL however the models change later.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
NOW = sa.text("CURRENT_TIMESTAMP")
MONEY = sa.Numeric(12, 2)
CURRENCY = sa.String(3)  # ISO 4217
COUNTRY = sa.String(2)  # ISO 3166-1 alpha-2
PERCENT = sa.Numeric(5, 2)
SCORE = sa.Numeric(7, 2)


def _enum(name: str, *values: str) -> postgresql.ENUM:
    # PostgreSQL: a named type, created once in upgrade() and dropped once in downgrade(), never
    # implicitly by a table. Elsewhere: VARCHAR plus the CHECK constraint `_create_table` adds.
    return postgresql.ENUM(*values, name=name, create_type=False)


PARTNER_STATUS = _enum("PartnerStatus", "active", "suspended", "inactive")
GENDER = _enum("Gender", "female", "male", "other", "undisclosed")
CANDIDATE_STATUS = _enum(
    "CandidateStatus",
    "registered",
    "in_training",
    "trained",
    "vetting",
    "ready",
    "placed",
    "deployed",
    "returned",
    "withdrawn",
    "rejected",
)
COURSE_STATUS = _enum("CourseStatus", "draft", "open", "in_progress", "completed", "cancelled")
ENROLLMENT_STATUS = _enum("EnrollmentStatus", "enrolled", "in_progress", "completed", "failed", "withdrawn")
ATTENDANCE_STATUS = _enum("AttendanceStatus", "present", "late", "absent", "excused")
ASSESSMENT_TYPE = _enum("AssessmentType", "theory", "practical", "final")
VETTING_CHECK_TYPE = _enum(
    "VettingCheckType", "identity", "police_clearance", "medical", "reference", "skills", "visa_eligibility"
)
VETTING_STATUS = _enum("VettingStatus", "pending", "in_progress", "cleared", "failed", "expired", "waived")
PLACEMENT_STATUS = _enum(
    "PlacementStatus",
    "proposed",
    "offered",
    "accepted",
    "declined",
    "deployed",
    "completed",
    "terminated",
    "cancelled",
)
ENUMS = (
    PARTNER_STATUS,
    GENDER,
    CANDIDATE_STATUS,
    COURSE_STATUS,
    ENROLLMENT_STATUS,
    ATTENDANCE_STATUS,
    ASSESSMENT_TYPE,
    VETTING_CHECK_TYPE,
    VETTING_STATUS,
    PLACEMENT_STATUS,
)


def _partner_table(table: str) -> None:
    create_tenant_table(
        table,
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("contactName", sa.String(200), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("phone", sa.String(40), nullable=True),
        sa.Column("address", JSON, nullable=True),
        sa.Column("country", COUNTRY, nullable=True),
        sa.Column("licenceNumber", sa.String(100), nullable=True),
        sa.Column("licenceExpiry", sa.Date(), nullable=True),
        # {"type": "flat" | "percent", "amount" | "percent": "...", "currency": "FJD", "dueDays": 30}
        sa.Column("paymentTerms", JSON, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("status", PARTNER_STATUS, server_default="active", nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        # Optional login of the partner's own staff.
        sa.Column("userId", sa.Uuid(), nullable=True),
        user_fk(table, "userId"),
    )


def upgrade() -> None:
    if is_postgresql():
        for enum in ENUMS:
            op.execute(CreateEnumType(enum))

    _partner_table("agents")
    _partner_table("brokers")

    create_tenant_table(
        "candidates",
        # Human-facing number, e.g. WTI-2026-000123; unique per tenant (0007).
        sa.Column("referenceNumber", sa.String(32), nullable=False),
        sa.Column("firstName", sa.String(100), nullable=False),
        sa.Column("middleName", sa.String(100), nullable=True),
        sa.Column("lastName", sa.String(100), nullable=False),
        sa.Column("dateOfBirth", sa.Date(), nullable=True),
        sa.Column("gender", GENDER, nullable=True),
        sa.Column("nationality", COUNTRY, nullable=True),
        sa.Column("nationalId", sa.String(64), nullable=True),
        sa.Column("passportNumber", sa.String(32), nullable=True),
        sa.Column("passportExpiry", sa.Date(), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("phone", sa.String(40), nullable=True),
        sa.Column("address", JSON, nullable=True),
        sa.Column("emergencyContact", JSON, nullable=True),
        sa.Column("skills", JSON, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("languages", JSON, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("education", JSON, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("workHistory", JSON, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("photoUrl", sa.String(1024), nullable=True),
        sa.Column("cvUrl", sa.String(1024), nullable=True),
        sa.Column("status", CANDIDATE_STATUS, server_default="registered", nullable=False),
        sa.Column("agentId", sa.Uuid(), nullable=True),
        sa.Column("brokerId", sa.Uuid(), nullable=True),
        # The candidate's own login, when they have one.
        sa.Column("userId", sa.Uuid(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        same_tenant_fk("candidates", "agentId", "agents"),
        same_tenant_fk("candidates", "brokerId", "brokers"),
        user_fk("candidates", "userId"),
    )

    create_tenant_table(
        "courses",
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("location", sa.String(200), nullable=True),
        sa.Column("startDate", sa.Date(), nullable=True),
        sa.Column("endDate", sa.Date(), nullable=True),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("trainerId", sa.Uuid(), nullable=True),
        sa.Column("fee", MONEY, nullable=True),
        sa.Column("currency", CURRENCY, nullable=True),
        sa.Column("passMark", PERCENT, server_default="50", nullable=False),
        sa.Column("minAttendancePercent", PERCENT, server_default="80", nullable=False),
        # Months a certificate of this course stays valid; null: no expiry.
        sa.Column("certificateValidityMonths", sa.Integer(), nullable=True),
        sa.Column("status", COURSE_STATUS, server_default="draft", nullable=False),
        user_fk("courses", "trainerId"),
    )

    create_tenant_table(
        "enrollments",
        sa.Column("courseId", sa.Uuid(), nullable=False),
        sa.Column("candidateId", sa.Uuid(), nullable=False),
        sa.Column("status", ENROLLMENT_STATUS, server_default="enrolled", nullable=False),
        sa.Column("enrolledAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completedAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawnAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        # A candidate is enrolled in a course once.
        sa.UniqueConstraint(
            "tenantId", "courseId", "candidateId", name="enrollments_tenantId_courseId_candidateId_key"
        ),
        same_tenant_fk("enrollments", "courseId", "courses"),
        same_tenant_fk("enrollments", "candidateId", "candidates"),
    )

    create_tenant_table(
        "attendance_records",
        sa.Column("enrollmentId", sa.Uuid(), nullable=False),
        sa.Column("sessionDate", sa.Date(), nullable=False),
        sa.Column("status", ATTENDANCE_STATUS, nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        # One record per enrollment and day.
        sa.UniqueConstraint(
            "tenantId",
            "enrollmentId",
            "sessionDate",
            name="attendance_records_tenantId_enrollmentId_sessionDate_key",
        ),
        same_tenant_fk("attendance_records", "enrollmentId", "enrollments", ondelete="CASCADE"),
    )

    create_tenant_table(
        "assessments",
        sa.Column("enrollmentId", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("type", ASSESSMENT_TYPE, nullable=False),
        sa.Column("score", SCORE, nullable=False),
        sa.Column("maxScore", SCORE, nullable=False),
        sa.Column("passed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("assessedAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("assessorId", sa.Uuid(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        same_tenant_fk("assessments", "enrollmentId", "enrollments", ondelete="CASCADE"),
        user_fk("assessments", "assessorId"),
    )

    create_tenant_table(
        "certificates",
        sa.Column("enrollmentId", sa.Uuid(), nullable=False),
        # Unique per tenant, and the verification code across the installation (both 0007).
        sa.Column("certificateNumber", sa.String(32), nullable=False),
        sa.Column("verificationCode", sa.String(64), nullable=False),
        sa.Column("issuedAt", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expiresAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revokedAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocationReason", sa.Text(), nullable=True),
        same_tenant_fk("certificates", "enrollmentId", "enrollments"),
    )

    create_tenant_table(
        "vetting_records",
        sa.Column("candidateId", sa.Uuid(), nullable=False),
        sa.Column("checkType", VETTING_CHECK_TYPE, nullable=False),
        sa.Column("status", VETTING_STATUS, server_default="pending", nullable=False),
        sa.Column("reviewerId", sa.Uuid(), nullable=True),
        sa.Column("requestedAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completedAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expiresAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", JSON, nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        # Vetting results are the candidate's personal data: they go with the candidate.
        same_tenant_fk("vetting_records", "candidateId", "candidates", ondelete="CASCADE"),
        user_fk("vetting_records", "reviewerId"),
    )

    create_tenant_table(
        "placements",
        sa.Column("candidateId", sa.Uuid(), nullable=False),
        sa.Column("employerName", sa.String(200), nullable=False),
        sa.Column("employerContact", JSON, nullable=True),
        sa.Column("country", COUNTRY, nullable=False),
        sa.Column("city", sa.String(100), nullable=True),
        sa.Column("position", sa.String(200), nullable=False),
        sa.Column("scheme", sa.String(100), nullable=True),
        sa.Column("contractStart", sa.Date(), nullable=True),
        sa.Column("contractEnd", sa.Date(), nullable=True),
        sa.Column("salaryAmount", MONEY, nullable=True),
        sa.Column("salaryCurrency", CURRENCY, nullable=True),
        sa.Column("salaryPeriod", sa.String(16), nullable=True),
        sa.Column("status", PLACEMENT_STATUS, server_default="proposed", nullable=False),
        sa.Column("agentId", sa.Uuid(), nullable=True),
        sa.Column("brokerId", sa.Uuid(), nullable=True),
        sa.Column("agentCommission", MONEY, nullable=True),
        sa.Column("brokerCommission", MONEY, nullable=True),
        sa.Column("commissionCurrency", CURRENCY, nullable=True),
        sa.Column("offeredAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acceptedAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deployedAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("endedAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        same_tenant_fk("placements", "candidateId", "candidates"),
        same_tenant_fk("placements", "agentId", "agents"),
        same_tenant_fk("placements", "brokerId", "brokers"),
    )


def downgrade() -> None:
    for table in (
        "placements",
        "vetting_records",
        "certificates",
        "assessments",
        "attendance_records",
        "enrollments",
        "courses",
        "candidates",
        "brokers",
        "agents",
    ):
        op.drop_table(table)
    if is_postgresql():
        for enum in reversed(ENUMS):
            op.execute(DropEnumType(enum))
