"""Step 3: users get a tenant, auth metadata, a status, the 2FA flag and who created/changed them.

`users` is the big legacy table (plan for 1,000,000 rows): nothing here may rewrite it or hold its
ACCESS EXCLUSIVE lock for longer than a catalog update. On PostgreSQL every step is written out as SQL
so the locking is visible (and the same in `--sql` output):

1. ADD COLUMN with constant defaults only updates the catalog (PostgreSQL 11+): no rewrite. Existing
   rows read authProvider 'local', status 'active', twoFactorEnabled false, and NULL for the rest.
2. The three foreign keys are added NOT VALID: no scan of existing rows under that lock.
3. The migration's transaction is committed, releasing the lock. Then, in autocommit mode:
   VALIDATE CONSTRAINT checks the existing rows holding only SHARE UPDATE EXCLUSIVE (reads and writes
   go on), and the (tenantId, email) index is built CONCURRENTLY (no write lock at all).

Because of that commit the upgrade is not one atomic step, so every statement tolerates a rerun
(IF [NOT] EXISTS; the constraints are dropped and re-added NOT VALID): if a step after the commit
fails (e.g. on the lock timeout), running the upgrade again finishes the job. One caveat: a failed
CREATE INDEX CONCURRENTLY leaves an INVALID index behind, which IF NOT EXISTS would then accept;
drop it (DROP INDEX CONCURRENTLY "users_tenantId_email_idx") before retrying.

SQLite cannot add a foreign key to an existing table: batch mode rebuilds the table (copying its
rows, which get the defaults), and the index is a plain CREATE INDEX.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from mobility.ops.migration_ops import execute, outside_the_transaction

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "users_tenantId_email_idx"


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        execute(
            """
            ALTER TABLE users
                ADD COLUMN IF NOT EXISTS "tenantId" uuid,
                ADD COLUMN IF NOT EXISTS "authProvider" text NOT NULL DEFAULT 'local',
                ADD COLUMN IF NOT EXISTS "authId" text,
                ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'active',
                ADD COLUMN IF NOT EXISTS "twoFactorEnabled" boolean NOT NULL DEFAULT false,
                ADD COLUMN IF NOT EXISTS "createdBy" uuid,
                ADD COLUMN IF NOT EXISTS "updatedBy" uuid
            """
        )
        execute(
            """
            ALTER TABLE users
                DROP CONSTRAINT IF EXISTS "users_tenantId_fkey",
                ADD CONSTRAINT "users_tenantId_fkey" FOREIGN KEY ("tenantId")
                    REFERENCES tenants (id) ON DELETE RESTRICT NOT VALID,
                DROP CONSTRAINT IF EXISTS "users_createdBy_fkey",
                ADD CONSTRAINT "users_createdBy_fkey" FOREIGN KEY ("createdBy")
                    REFERENCES users (id) ON DELETE SET NULL NOT VALID,
                DROP CONSTRAINT IF EXISTS "users_updatedBy_fkey",
                ADD CONSTRAINT "users_updatedBy_fkey" FOREIGN KEY ("updatedBy")
                    REFERENCES users (id) ON DELETE SET NULL NOT VALID
            """
        )
        block, outside = outside_the_transaction()
        with block:
            op.execute('ALTER TABLE users VALIDATE CONSTRAINT "users_tenantId_fkey"')
            op.execute('ALTER TABLE users VALIDATE CONSTRAINT "users_createdBy_fkey"')
            op.execute('ALTER TABLE users VALIDATE CONSTRAINT "users_updatedBy_fkey"')
            concurrently = " CONCURRENTLY" if outside else ""
            op.execute(f'CREATE INDEX{concurrently} IF NOT EXISTS "{INDEX}" ON users ("tenantId", email)')
        return

    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("tenantId", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("authProvider", sa.Text(), server_default="local", nullable=False))
        batch.add_column(sa.Column("authId", sa.Text(), nullable=True))
        batch.add_column(sa.Column("status", sa.Text(), server_default="active", nullable=False))
        batch.add_column(
            sa.Column("twoFactorEnabled", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("createdBy", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("updatedBy", sa.Uuid(), nullable=True))
        batch.create_foreign_key("users_tenantId_fkey", "tenants", ["tenantId"], ["id"], ondelete="RESTRICT")
        batch.create_foreign_key("users_createdBy_fkey", "users", ["createdBy"], ["id"], ondelete="SET NULL")
        batch.create_foreign_key("users_updatedBy_fkey", "users", ["updatedBy"], ["id"], ondelete="SET NULL")
    op.create_index(INDEX, "users", ["tenantId", "email"])


def downgrade() -> None:
    # Loses every value written into these columns (`mobility db downgrade` takes a backup first).
    if op.get_context().dialect.name == "postgresql":
        # The index first and concurrently (dropping the column would drop it under the table lock);
        # then constraints and columns, which only marks them dropped in the catalog: no rewrite.
        block, outside = outside_the_transaction()
        with block:
            concurrently = " CONCURRENTLY" if outside else ""
            op.execute(f'DROP INDEX{concurrently} IF EXISTS "{INDEX}"')
        execute(
            """
            ALTER TABLE users
                DROP CONSTRAINT IF EXISTS "users_updatedBy_fkey",
                DROP CONSTRAINT IF EXISTS "users_createdBy_fkey",
                DROP CONSTRAINT IF EXISTS "users_tenantId_fkey"
            """
        )
        execute(
            """
            ALTER TABLE users
                DROP COLUMN IF EXISTS "updatedBy",
                DROP COLUMN IF EXISTS "createdBy",
                DROP COLUMN IF EXISTS "twoFactorEnabled",
                DROP COLUMN IF EXISTS status,
                DROP COLUMN IF EXISTS "authId",
                DROP COLUMN IF EXISTS "authProvider",
                DROP COLUMN IF EXISTS "tenantId"
            """
        )
        return

    op.drop_index(INDEX, table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("users_updatedBy_fkey", type_="foreignkey")
        batch.drop_constraint("users_createdBy_fkey", type_="foreignkey")
        batch.drop_constraint("users_tenantId_fkey", type_="foreignkey")
        batch.drop_column("updatedBy")
        batch.drop_column("createdBy")
        batch.drop_column("twoFactorEnabled")
        batch.drop_column("status")
        batch.drop_column("authId")
        batch.drop_column("authProvider")
        batch.drop_column("tenantId")
