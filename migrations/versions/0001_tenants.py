"""Step 1 of the spec's migration order: the `tenants` table.

The default tenant (WTI) is seeded later by `mobility seed`, not here: revisions carry schema only.

Revision ID: 0001
Revises: 0000
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = "0000"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here rather than imported from the models: a revision must keep producing the same
# DDL however the models change later.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        # {"logoUrl": str, "colorHex": str}
        sa.Column("branding", JSON, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("contactInfo", JSON, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("isActive", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("createdAt", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updatedAt", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name="tenants_pkey"),
        sa.UniqueConstraint("name", name="tenants_name_key"),
        sa.UniqueConstraint("code", name="tenants_code_key"),
    )


def downgrade() -> None:
    op.drop_table("tenants")
