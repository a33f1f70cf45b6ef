"""Step 10: an index on lower(email), so a login finds its user without reading the whole table.

E-mails are matched case-insensitively (the legacy data has them as typed). At a million users the
unindexed lookup took 0.7 s per login attempt: slow for users, and a lever for denial of service on a
public endpoint. Built CONCURRENTLY on PostgreSQL (no write lock on users), as in 0003.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from mobility.ops.migration_ops import is_postgresql, outside_the_transaction

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "users_email_lower_idx"


def upgrade() -> None:
    if is_postgresql():
        block, outside = outside_the_transaction()
        concurrently = " CONCURRENTLY" if outside else ""
        with block:
            op.execute(f"CREATE INDEX{concurrently} IF NOT EXISTS {INDEX} ON users (lower(email))")
        return
    op.create_index(INDEX, "users", [sa.text("lower(email)")])


def downgrade() -> None:
    if is_postgresql():
        block, outside = outside_the_transaction()
        concurrently = " CONCURRENTLY" if outside else ""
        with block:
            op.execute(f"DROP INDEX{concurrently} IF EXISTS {INDEX}")
        return
    op.drop_index(INDEX, table_name="users")
