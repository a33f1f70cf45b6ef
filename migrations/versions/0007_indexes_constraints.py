"""Step 7: indexes and constraints: the unique codes and numbers, the reporting indexes, and the one
reference the creation order could not take earlier (payments -> invoices).

Every tenant-scoped key and index is led by tenantId (scoping filter first; keeps the Citus path open).
Two exceptions, on purpose: the certificate verification code is unique across the installation (it
is checked on a public endpoint that knows no tenant), and the notification worker's queue scan
(status, nextAttemptAt) and the audit trail's actor lookup span tenants.

The tables are the ones 0005/0006 just created, so on PostgreSQL plain CREATE INDEX / ADD CONSTRAINT
in the migration's transaction is right: all-or-nothing, and nothing to wait for on empty tables.
SQLite cannot add a constraint to an existing table: batch mode rebuilds those tables.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, columns): named `<table>_<columns>_key`, Prisma's names.
UNIQUE_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("agents", ("tenantId", "code")),
    ("brokers", ("tenantId", "code")),
    ("candidates", ("tenantId", "referenceNumber")),
    ("courses", ("tenantId", "code")),
    ("certificates", ("tenantId", "certificateNumber")),
    # Checked on a public endpoint without a tenant: unique across the installation.
    ("certificates", ("verificationCode",)),
    # Drafts have no number yet (NULL): a unique key allows any number of NULLs.
    ("invoices", ("tenantId", "invoiceNumber")),
    # A retried request with the same key finds the first payment instead of making a second.
    ("payments", ("tenantId", "idempotencyKey")),
    # One login stands for at most one candidate, agent or broker record per tenant.
    ("agents", ("tenantId", "userId")),
    ("brokers", ("tenantId", "userId")),
    ("candidates", ("tenantId", "userId")),
)

# (table, columns): named `<table>_<columns>_idx`, Prisma's names.
INDEXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("candidates", ("tenantId", "status")),
    ("candidates", ("tenantId", "agentId")),
    ("candidates", ("tenantId", "brokerId")),
    ("candidates", ("tenantId", "lastName", "firstName")),
    ("candidates", ("tenantId", "passportNumber")),
    ("courses", ("tenantId", "startDate")),
    ("courses", ("tenantId", "trainerId")),
    ("enrollments", ("tenantId", "candidateId")),
    ("enrollments", ("tenantId", "status")),
    ("assessments", ("tenantId", "enrollmentId")),
    ("certificates", ("tenantId", "enrollmentId")),
    ("vetting_records", ("tenantId", "candidateId", "checkType")),
    ("vetting_records", ("tenantId", "status", "expiresAt")),
    ("placements", ("tenantId", "candidateId")),
    ("placements", ("tenantId", "status")),
    ("placements", ("tenantId", "agentId")),
    ("placements", ("tenantId", "brokerId")),
    ("placements", ("tenantId", "country", "contractStart")),
    ("payments", ("tenantId", "status", "createdAt")),
    ("payments", ("tenantId", "candidateId")),
    ("payments", ("tenantId", "agentId")),
    ("payments", ("tenantId", "brokerId")),
    ("payments", ("tenantId", "invoiceId")),
    ("payments", ("tenantId", "placementId")),
    ("invoices", ("tenantId", "status", "dueDate")),
    ("invoices", ("tenantId", "candidateId")),
    ("invoices", ("tenantId", "placementId")),
    # The worker's queue scan: what is due next, across tenants.
    ("notifications", ("status", "nextAttemptAt")),
    ("notifications", ("tenantId", "recipientId", "readAt")),
    ("audit_logs", ("tenantId", "entityType", "entityId")),
    ("audit_logs", ("tenantId", "createdAt")),
    ("audit_logs", ("actorId",)),
    ("candidate_documents", ("tenantId", "candidateId", "type")),
    ("candidate_documents", ("tenantId", "expiresOn")),
)

# Invoices are created after payments (0006), so the same-tenant reference comes only now.
INVOICE_FK = "payments_tenantId_invoiceId_fkey"


def _name(table: str, columns: tuple[str, ...], suffix: str) -> str:
    return f"{table}_{'_'.join(columns)}_{suffix}"


def _tables(keys: tuple[tuple[str, tuple[str, ...]], ...]) -> list[str]:
    return list(dict.fromkeys(table for table, _ in keys))


def upgrade() -> None:
    # One batch per table: a single rebuild on SQLite, plain ALTER TABLE statements elsewhere.
    for table in _tables(UNIQUE_KEYS):
        with op.batch_alter_table(table) as batch:
            for _, columns in (key for key in UNIQUE_KEYS if key[0] == table):
                batch.create_unique_constraint(_name(table, columns, "key"), list(columns))
            if table == "payments":
                batch.create_foreign_key(
                    INVOICE_FK,
                    "invoices",
                    ["tenantId", "invoiceId"],
                    ["tenantId", "id"],
                    ondelete="RESTRICT",
                )

    for table, columns in INDEXES:
        op.create_index(_name(table, columns, "idx"), table, list(columns))


def downgrade() -> None:
    for table, columns in reversed(INDEXES):
        op.drop_index(_name(table, columns, "idx"), table_name=table)

    for table in reversed(_tables(UNIQUE_KEYS)):
        with op.batch_alter_table(table) as batch:
            if table == "payments":
                batch.drop_constraint(INVOICE_FK, type_="foreignkey")
            for _, columns in reversed([key for key in UNIQUE_KEYS if key[0] == table]):
                batch.drop_constraint(_name(table, columns, "key"), type_="unique")
