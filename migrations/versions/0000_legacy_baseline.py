"""Legacy baseline: roles, users, sessions, activity_logs as the Prisma app created them.

A real legacy database already has these: `mobility db adopt` checks its shape against
`mobility.core.legacy_schema` and stamps this revision instead of running it.

Revision ID: 0000
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy.schema import CreateIndex, CreateTable, DropTable

from mobility.ops.legacy_schema import LEGACY_TABLES, legacy_metadata

revision: str = "0000"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Emitted statement by statement (not create_all) so that offline `--sql` output has it too.
    for name in LEGACY_TABLES:
        table = legacy_metadata.tables[name]
        op.execute(CreateTable(table))
        for index in sorted(table.indexes, key=lambda index: index.name):
            op.execute(CreateIndex(index))


def downgrade() -> None:
    # Only ever run on a database this project created from nothing; a real legacy database is
    # adopted (stamped), and nothing downgrades below the baseline there.
    for name in reversed(LEGACY_TABLES):
        op.execute(DropTable(legacy_metadata.tables[name]))
