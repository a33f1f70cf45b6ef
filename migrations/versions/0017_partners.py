"""Step 17: a partner's suspension (issue 12, part 1: agents and brokers).

Staff suspend an agent or broker with a reason (a suspended partner registers no candidates); the
record keeps why, since when and by whom while it is suspended:

- `agents` and `brokers`: `"suspensionReason"` (text), `"suspendedAt"` (timestamptz), `"suspendedBy"`
  (the staff member's user id; a record like the audit trail's actor, no foreign key).

Nullable columns without defaults: catalog-only changes on PostgreSQL, no rewrite. The tables are
the domain tables 0005 made; nothing in them changes. The downgrade drops the three columns and their
values (the audit trail keeps every suspension: action "agent.suspend"/"broker.suspend" with its
reason).

Revision ID: 0017
Revises: 0015
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("agents", "brokers")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("suspensionReason", sa.Text(), nullable=True))
            batch.add_column(sa.Column("suspendedAt", sa.DateTime(timezone=True), nullable=True))
            batch.add_column(sa.Column("suspendedBy", sa.Uuid(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("suspendedBy")
            batch.drop_column("suspendedAt")
            batch.drop_column("suspensionReason")
