"""Step 4: `user_tenants`, a user's membership (with a role) in each tenant they belong to.

A new table, empty when created, so its index is built here in the same transaction.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "user_tenants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("userId", sa.Uuid(), nullable=False),
        sa.Column("tenantId", sa.Uuid(), nullable=False),
        sa.Column("roleId", sa.Uuid(), nullable=False),
        sa.Column("isPrimary", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("createdAt", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updatedAt", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name="user_tenants_pkey"),
        sa.UniqueConstraint("userId", "tenantId", name="user_tenants_userId_tenantId_key"),
        # Leaving a platform removes the memberships; a tenant or role in use cannot be deleted.
        sa.ForeignKeyConstraint(
            ["userId"], ["users.id"], name="user_tenants_userId_fkey", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenantId"], ["tenants.id"], name="user_tenants_tenantId_fkey", ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["roleId"], ["roles.id"], name="user_tenants_roleId_fkey", ondelete="RESTRICT"
        ),
    )
    op.create_index("user_tenants_tenantId_roleId_idx", "user_tenants", ["tenantId", "roleId"])


def downgrade() -> None:
    op.drop_index("user_tenants_tenantId_roleId_idx", table_name="user_tenants")
    op.drop_table("user_tenants")
