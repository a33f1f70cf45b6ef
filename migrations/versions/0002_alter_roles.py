"""Step 2: roles get a tenant (null for the global, built-in roles) and the `systemRole` flag.

`roles` is a legacy table that already holds rows. On PostgreSQL every step is written out as SQL so
the locking is visible (and the same in `--sql` output):

1. ADD COLUMN with a constant default only updates the catalog (PostgreSQL 11+): no table rewrite.
   Existing rows read `systemRole = false` and `tenantId = NULL`.
2. The foreign key is added NOT VALID: no scan of existing rows under the ACCESS EXCLUSIVE lock.
3. The migration's transaction is committed (releasing that lock), and VALIDATE CONSTRAINT then checks
   the existing rows holding only SHARE UPDATE EXCLUSIVE, which lets reads and writes go on.

Because of that commit the upgrade is not one atomic step, so every statement before it tolerates a
rerun (IF NOT EXISTS; the constraint is dropped and re-added NOT VALID): if VALIDATE fails (e.g. on the
lock timeout), running the upgrade again finishes the job.

SQLite cannot add a foreign key to an existing table: batch mode rebuilds the table (copying its rows).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from mobility.ops.migration_ops import execute, outside_the_transaction

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        execute(
            """
            ALTER TABLE roles
                ADD COLUMN IF NOT EXISTS "tenantId" uuid,
                ADD COLUMN IF NOT EXISTS "systemRole" boolean NOT NULL DEFAULT false
            """
        )
        execute(
            """
            ALTER TABLE roles
                DROP CONSTRAINT IF EXISTS "roles_tenantId_fkey",
                ADD CONSTRAINT "roles_tenantId_fkey" FOREIGN KEY ("tenantId")
                    REFERENCES tenants (id) ON DELETE RESTRICT NOT VALID
            """
        )
        with outside_the_transaction()[0]:
            op.execute('ALTER TABLE roles VALIDATE CONSTRAINT "roles_tenantId_fkey"')
        return

    with op.batch_alter_table("roles") as batch:
        batch.add_column(sa.Column("tenantId", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("systemRole", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.create_foreign_key("roles_tenantId_fkey", "tenants", ["tenantId"], ["id"], ondelete="RESTRICT")


def downgrade() -> None:
    # Loses which roles are tenant-specific or built-in (`mobility db downgrade` takes a backup first).
    if op.get_context().dialect.name == "postgresql":
        # Dropping columns only marks them dropped in the catalog: no rewrite, a brief lock.
        execute('ALTER TABLE roles DROP CONSTRAINT IF EXISTS "roles_tenantId_fkey"')
        execute(
            """
            ALTER TABLE roles
                DROP COLUMN IF EXISTS "systemRole",
                DROP COLUMN IF EXISTS "tenantId"
            """
        )
        return

    with op.batch_alter_table("roles") as batch:
        batch.drop_constraint("roles_tenantId_fkey", type_="foreignkey")
        batch.drop_column("systemRole")
        batch.drop_column("tenantId")
