"""Step 6: the auxiliary tables, in the spec's order.

payments, invoices, notifications, settings, audit_logs, candidate_documents; with their enum types
(PostgreSQL; `PartyType` serves payments and invoices and is created once), keys and foreign keys.
Payments come before invoices in the spec's order, so the reference payments (tenantId, invoiceId) ->
invoices is added by 0007, with the unique numbers and every non-unique index.

audit_logs is append-only and deliberately has no foreign key to users or to the audited rows:
deleting anything must never cascade into (or be blocked by) the trail. Deleting a candidate deletes
its documents (ON DELETE CASCADE).

New, empty tables: everything runs in the migration's one transaction.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql.named_types import CreateEnumType, DropEnumType

from mobility.ops.migration_ops import create_tenant_table, is_postgresql, same_tenant_fk, user_fk

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here rather than imported from the models: a revision must keep producing the same
# DDL however the models change later.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
NOW = sa.text("CURRENT_TIMESTAMP")
MONEY = sa.Numeric(12, 2)
CURRENCY = sa.String(3)  # ISO 4217


def _enum(name: str, *values: str) -> postgresql.ENUM:
    # PostgreSQL: a named type, created once in upgrade() and dropped once in downgrade(), never
    # implicitly by a table. Elsewhere: VARCHAR plus the CHECK constraint `_create_table` adds.
    return postgresql.ENUM(*values, name=name, create_type=False)


PAYMENT_DIRECTION = _enum("PaymentDirection", "incoming", "outgoing")
PARTY_TYPE = _enum("PartyType", "candidate", "agent", "broker", "employer")
PAYMENT_METHOD = _enum("PaymentMethod", "bank_transfer", "cash", "card", "mobile_money", "cheque", "other")
PAYMENT_STATUS = _enum("PaymentStatus", "pending", "completed", "failed", "cancelled", "refunded")
INVOICE_STATUS = _enum("InvoiceStatus", "draft", "issued", "partially_paid", "paid", "void")
NOTIFICATION_CHANNEL = _enum("NotificationChannel", "in_app", "email")
NOTIFICATION_STATUS = _enum("NotificationStatus", "queued", "sending", "sent", "failed", "cancelled")
DOCUMENT_TYPE = _enum(
    "DocumentType",
    "passport",
    "national_id",
    "birth_certificate",
    "police_clearance",
    "medical",
    "visa",
    "contract",
    "certificate",
    "photo",
    "cv",
    "reference",
    "other",
)
DOCUMENT_STATUS = _enum("DocumentStatus", "pending", "verified", "rejected")
ENUMS = (
    PAYMENT_DIRECTION,
    PARTY_TYPE,
    PAYMENT_METHOD,
    PAYMENT_STATUS,
    INVOICE_STATUS,
    NOTIFICATION_CHANNEL,
    NOTIFICATION_STATUS,
    DOCUMENT_TYPE,
    DOCUMENT_STATUS,
)


def upgrade() -> None:
    if is_postgresql():
        for enum in ENUMS:
            op.execute(CreateEnumType(enum))

    create_tenant_table(
        "payments",
        sa.Column("direction", PAYMENT_DIRECTION, nullable=False),
        sa.Column("partyType", PARTY_TYPE, nullable=False),
        sa.Column("candidateId", sa.Uuid(), nullable=True),
        sa.Column("agentId", sa.Uuid(), nullable=True),
        sa.Column("brokerId", sa.Uuid(), nullable=True),
        # For employers, who have no record of their own.
        sa.Column("partyName", sa.String(200), nullable=True),
        sa.Column("placementId", sa.Uuid(), nullable=True),
        # References invoices from 0007 on.
        sa.Column("invoiceId", sa.Uuid(), nullable=True),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("currency", CURRENCY, nullable=False),
        sa.Column("method", PAYMENT_METHOD, nullable=False),
        sa.Column("status", PAYMENT_STATUS, server_default="pending", nullable=False),
        sa.Column("reference", sa.String(100), nullable=True),
        # A retried request with the same key returns the first payment (unique per tenant, 0007).
        sa.Column("idempotencyKey", sa.String(128), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("dueDate", sa.Date(), nullable=True),
        sa.Column("paidAt", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint('"amount" > 0', name=op.f("payments_amount_positive_check")),
        same_tenant_fk("payments", "candidateId", "candidates"),
        same_tenant_fk("payments", "agentId", "agents"),
        same_tenant_fk("payments", "brokerId", "brokers"),
        same_tenant_fk("payments", "placementId", "placements"),
    )

    create_tenant_table(
        "invoices",
        # Null while a draft; numbered on issue, gapless and unique per tenant (0007).
        sa.Column("invoiceNumber", sa.String(32), nullable=True),
        sa.Column("billToType", PARTY_TYPE, nullable=False),
        sa.Column("candidateId", sa.Uuid(), nullable=True),
        sa.Column("agentId", sa.Uuid(), nullable=True),
        sa.Column("brokerId", sa.Uuid(), nullable=True),
        sa.Column("placementId", sa.Uuid(), nullable=True),
        sa.Column("billToName", sa.String(200), nullable=False),
        sa.Column("billToDetails", JSON, nullable=True),
        # [{"description": str, "quantity": "1", "unitPrice": "100.00", "amount": "100.00"}]
        sa.Column("lineItems", JSON, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("subtotal", MONEY, server_default="0", nullable=False),
        sa.Column("tax", MONEY, server_default="0", nullable=False),
        sa.Column("total", MONEY, server_default="0", nullable=False),
        sa.Column("amountPaid", MONEY, server_default="0", nullable=False),
        sa.Column("currency", CURRENCY, nullable=False),
        sa.Column("status", INVOICE_STATUS, server_default="draft", nullable=False),
        sa.Column("issuedAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dueDate", sa.Date(), nullable=True),
        sa.Column("paidAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("voidedAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("voidReason", sa.Text(), nullable=True),
        same_tenant_fk("invoices", "candidateId", "candidates"),
        same_tenant_fk("invoices", "agentId", "agents"),
        same_tenant_fk("invoices", "brokerId", "brokers"),
        same_tenant_fk("invoices", "placementId", "placements"),
    )

    create_tenant_table(
        "notifications",
        sa.Column("recipientId", sa.Uuid(), nullable=True),
        # For people without a login (e.g. an employer contact).
        sa.Column("recipientEmail", sa.String(320), nullable=True),
        sa.Column("channel", NOTIFICATION_CHANNEL, nullable=False),
        sa.Column("template", sa.String(100), nullable=False),
        sa.Column("payload", JSON, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("status", NOTIFICATION_STATUS, server_default="queued", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("nextAttemptAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lastError", sa.Text(), nullable=True),
        sa.Column("sentAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("readAt", sa.DateTime(timezone=True), nullable=True),
        # A user's notifications go with the user.
        user_fk("notifications", "recipientId", ondelete="CASCADE"),
    )

    create_tenant_table(
        "settings",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("value", JSON, nullable=False),
        # One value per key and tenant: the key that defines the row.
        sa.UniqueConstraint("tenantId", "key", name="settings_tenantId_key_key"),
    )

    # Not tenant-scoped like the others: tenantId is nullable (platform-level events), no authorship
    # columns, and no foreign key but the tenant's (RESTRICT: tenants are never deleted).
    op.create_table(
        "audit_logs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenantId", sa.Uuid(), nullable=True),
        sa.Column("actorId", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("entityType", sa.String(64), nullable=False),
        sa.Column("entityId", sa.Uuid(), nullable=True),
        sa.Column("before", JSON, nullable=True),
        sa.Column("after", JSON, nullable=True),
        sa.Column("ipAddress", sa.String(45), nullable=True),
        sa.Column("requestId", sa.String(64), nullable=True),
        sa.Column("createdAt", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name="audit_logs_pkey"),
        sa.ForeignKeyConstraint(
            ["tenantId"], ["tenants.id"], name="audit_logs_tenantId_fkey", ondelete="RESTRICT"
        ),
    )

    create_tenant_table(
        "candidate_documents",
        sa.Column("candidateId", sa.Uuid(), nullable=False),
        sa.Column("type", DOCUMENT_TYPE, nullable=False),
        sa.Column("fileName", sa.String(255), nullable=False),
        sa.Column("contentType", sa.String(127), nullable=False),
        sa.Column("sizeBytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        # Where the file lives in the document store (never a client-supplied path).
        sa.Column("storageKey", sa.String(512), nullable=False),
        sa.Column("documentNumber", sa.String(64), nullable=True),
        sa.Column("issuedOn", sa.Date(), nullable=True),
        sa.Column("expiresOn", sa.Date(), nullable=True),
        sa.Column("status", DOCUMENT_STATUS, server_default="pending", nullable=False),
        sa.Column("verifiedBy", sa.Uuid(), nullable=True),
        sa.Column("verifiedAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        # Deleting a candidate deletes its documents (the service deletes the stored files).
        same_tenant_fk("candidate_documents", "candidateId", "candidates", ondelete="CASCADE"),
        user_fk("candidate_documents", "verifiedBy"),
    )


def downgrade() -> None:
    for table in ("candidate_documents", "audit_logs", "settings", "notifications", "invoices", "payments"):
        op.drop_table(table)
    if is_postgresql():
        for enum in reversed(ENUMS):
            op.execute(DropEnumType(enum))
