"""Step 16: notifications delivered (the outbox's worker), e-mail preferences, webhooks, password
resets and the periodic jobs' leases.

- notifications (0006, empty until now): `dedupeKey` (the same reminder for the same thing is queued
  once: a UNIQUE index on ("tenantId", "dedupeKey"), built CONCURRENTLY on PostgreSQL), `language`
  (default 'en', a constant: catalog only) and `leaseUntil` (a worker's claim).
- notification_preferences: whether a user wants a category by e-mail, per tenant.
- webhook_endpoints, webhook_deliveries: the endpoints a tenant registers and the delivery log.
- password_resets: forgotten-password links (hashes only), installation-wide like the accounts.
- job_leases: one row per periodic job, installation-wide: which worker runs it now, and when next.

The new tenant tables have 0015's keys (distributed by tenant, mobility.distribution): primary key
(tenantId, id), references (tenantId, xId), every unique key led by tenantId; and on PostgreSQL
row-level security is enabled and forced on them with the `tenant_isolation` policy of 0009. The
app role gets its four privileges from 0009's default privileges.

The downgrade drops the five tables with their rows (preferences, endpoints and their secrets, the
delivery log, open reset links, job history) and the three notification columns with their values.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from mobility.ops.migration_ops import (
    NOW,
    enum_checks,
    execute,
    is_postgresql,
    outside_the_transaction,
    same_tenant_fk,
    user_fk,
)

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# The type 0006 created (PostgreSQL); never created or dropped here.
NOTIFICATION_STATUS = postgresql.ENUM(
    "queued", "sending", "sent", "failed", "cancelled", name="NotificationStatus", create_type=False
)
DEDUPE_INDEX = "notifications_tenantId_dedupeKey_idx"
TENANT_TABLES = ("notification_preferences", "webhook_endpoints", "webhook_deliveries")
# 0009's policy for a table whose rows belong to one tenant.
IN_TENANT = (
    "current_setting('mobility.system', true) = 'on'"
    " OR \"tenantId\" = nullif(current_setting('mobility.tenant_id', true), '')::uuid"
)


def _create_tenant_table(table: str, *items: sa.Column | sa.Constraint) -> None:
    """A tenant-scoped table in 0015's shape (docs/scaling.md): id, tenantId, the given columns,
    authorship, timestamps; PRIMARY KEY ("tenantId", id), the target of the same-tenant foreign keys.
    (migration_ops.create_tenant_table is the shape before 0015, kept for 0005-0006.)"""
    columns = [item for item in items if isinstance(item, sa.Column)]
    constraints = [item for item in items if not isinstance(item, sa.Column)]
    op.create_table(
        table,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenantId", sa.Uuid(), nullable=False),
        *columns,
        sa.Column("createdBy", sa.Uuid(), nullable=True),
        sa.Column("updatedBy", sa.Uuid(), nullable=True),
        sa.Column("createdAt", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updatedAt", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("tenantId", "id", name=f"{table}_pkey"),
        sa.ForeignKeyConstraint(
            ["tenantId"], ["tenants.id"], name=f"{table}_tenantId_fkey", ondelete="RESTRICT"
        ),
        user_fk(table, "createdBy"),
        user_fk(table, "updatedBy"),
        *constraints,
        *enum_checks(table, columns),
    )


def upgrade() -> None:
    op.add_column("notifications", sa.Column("dedupeKey", sa.Text(), nullable=True))
    op.add_column("notifications", sa.Column("language", sa.Text(), server_default="en", nullable=False))
    op.add_column("notifications", sa.Column("leaseUntil", sa.DateTime(timezone=True), nullable=True))

    _create_tenant_table(
        "notification_preferences",
        sa.Column("userId", sa.Uuid(), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("email", sa.Boolean(), server_default=sa.true(), nullable=False),
        user_fk("notification_preferences", "userId", ondelete="CASCADE"),
        sa.UniqueConstraint(
            "tenantId", "userId", "category", name="notification_preferences_tenantId_userId_category_key"
        ),
    )
    _create_tenant_table(
        "webhook_endpoints",
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.String(200), nullable=True),
        sa.Column("eventTypes", JSON, server_default=sa.text("'[]'"), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previousSecret", sa.Text(), nullable=True),
        sa.Column("previousSecretUntil", sa.DateTime(timezone=True), nullable=True),
        sa.Column("isActive", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("disabledAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabledReason", sa.Text(), nullable=True),
        sa.Column("failingSince", sa.DateTime(timezone=True), nullable=True),
    )
    _create_tenant_table(
        "webhook_deliveries",
        sa.Column("endpointId", sa.Uuid(), nullable=False),
        sa.Column("eventId", sa.Uuid(), nullable=False),
        sa.Column("eventType", sa.String(64), nullable=False),
        sa.Column("payload", JSON, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("status", NOTIFICATION_STATUS, server_default="queued", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("nextAttemptAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("leaseUntil", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lastError", sa.Text(), nullable=True),
        sa.Column("responseStatus", sa.Integer(), nullable=True),
        sa.Column("sentAt", sa.DateTime(timezone=True), nullable=True),
        same_tenant_fk("webhook_deliveries", "endpointId", "webhook_endpoints", ondelete="CASCADE"),
    )
    op.create_index(
        "webhook_deliveries_status_nextAttemptAt_idx", "webhook_deliveries", ["status", "nextAttemptAt"]
    )
    op.create_index(
        "webhook_deliveries_tenantId_endpointId_createdAt_idx",
        "webhook_deliveries",
        ["tenantId", "endpointId", "createdAt"],
    )
    op.create_table(
        "password_resets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("userId", sa.Uuid(), nullable=False),
        sa.Column("tokenHash", sa.Text(), nullable=False),
        sa.Column("expiresAt", sa.DateTime(timezone=True), nullable=False),
        sa.Column("usedAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ipAddress", sa.Text(), nullable=True),
        sa.Column("createdAt", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name="password_resets_pkey"),
        sa.UniqueConstraint("tokenHash", name="password_resets_tokenHash_key"),
        user_fk("password_resets", "userId", ondelete="CASCADE"),
    )
    op.create_index("password_resets_userId_idx", "password_resets", ["userId"])
    op.create_table(
        "job_leases",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("nextRunAt", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leasedBy", sa.Text(), nullable=True),
        sa.Column("leaseUntil", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lastStartedAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lastFinishedAt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lastResult", JSON, nullable=True),
        sa.Column("lastError", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name="job_leases_pkey"),
    )

    if not is_postgresql():
        op.create_index(DEDUPE_INDEX, "notifications", ["tenantId", "dedupeKey"], unique=True)
        return
    for table in TENANT_TABLES:
        execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
        execute(
            f"""
            CREATE POLICY tenant_isolation ON {table} AS PERMISSIVE FOR ALL TO PUBLIC
                USING ({IN_TENANT})
                WITH CHECK ({IN_TENANT})
            """
        )
    block, outside = outside_the_transaction()
    concurrently = " CONCURRENTLY" if outside else ""
    with block:
        op.execute(
            f'CREATE UNIQUE INDEX{concurrently} IF NOT EXISTS "{DEDUPE_INDEX}" ON notifications ("tenantId", "dedupeKey")'
        )


def downgrade() -> None:
    if is_postgresql():
        block, outside = outside_the_transaction()
        concurrently = " CONCURRENTLY" if outside else ""
        with block:
            op.execute(f'DROP INDEX{concurrently} IF EXISTS "{DEDUPE_INDEX}"')
    else:
        op.drop_index(DEDUPE_INDEX, table_name="notifications")
    op.drop_table("job_leases")
    op.drop_index("password_resets_userId_idx", table_name="password_resets")
    op.drop_table("password_resets")
    op.drop_index("webhook_deliveries_tenantId_endpointId_createdAt_idx", table_name="webhook_deliveries")
    op.drop_index("webhook_deliveries_status_nextAttemptAt_idx", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    op.drop_table("notification_preferences")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("leaseUntil")
        batch.drop_column("language")
        batch.drop_column("dedupeKey")
