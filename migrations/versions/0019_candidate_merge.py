"""Step 19: merged candidates (issue 12, part 5: a duplicate folded into a survivor).

`POST /candidates/{id}/merge` moves everything of a duplicate record to the record that survives and
keeps the duplicate as a tombstone pointing at it (candidates/merge.py):

- candidates."mergedIntoId": the survivor, a same-tenant foreign key to candidates ("tenantId",
  "mergedIntoId") -> ("tenantId", id), ON DELETE CASCADE (a tombstone goes with its survivor; it
  holds no rows of its own, everything moved), with an index ("tenantId", "mergedIntoId") for the
  survivor's tombstones (its history, the cascade);
- candidates."mergedAt" (timestamptz) and "mergedBy" (the staff member's user id; a record like the
  audit trail's actor, no foreign key).

Nullable columns without defaults: catalog-only changes on PostgreSQL, no rewrite of candidates. As in
0002/0008, the foreign key is added NOT VALID (no scan under the ACCESS EXCLUSIVE lock) and validated
after the commit, and the index is built CONCURRENTLY (no write lock): candidates may be large by now.
A rerun changes nothing (IF NOT EXISTS; the key is added only when missing). If the concurrent build
fails it leaves an INVALID index, which IF NOT EXISTS would accept: drop it (DROP INDEX CONCURRENTLY
"candidates_tenantId_mergedIntoId_idx") before retrying.

The downgrade refuses while a candidate is merged (the older schema would show every tombstone as a
live candidate again, beside its survivor, and lose which record it became): it drops the index, the
key and the three columns only when no row has a value in them, so it never loses data.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from mobility.ops.migration_ops import execute, is_postgresql, outside_the_transaction

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK = "candidates_tenantId_mergedIntoId_fkey"
INDEX = "candidates_tenantId_mergedIntoId_idx"
MERGED_REFUSAL = (
    "candidates have been merged (mergedIntoId is set): the older schema would show them as live "
    "candidates again. Keep this revision, or remove those tombstones first."
)


def upgrade() -> None:
    if is_postgresql():
        execute(
            """
            ALTER TABLE candidates
                ADD COLUMN IF NOT EXISTS "mergedIntoId" uuid,
                ADD COLUMN IF NOT EXISTS "mergedAt" timestamp with time zone,
                ADD COLUMN IF NOT EXISTS "mergedBy" uuid
            """
        )
        execute(
            f"""
            ALTER TABLE candidates
                ADD CONSTRAINT "{FK}" FOREIGN KEY ("tenantId", "mergedIntoId")
                    REFERENCES candidates ("tenantId", id) ON DELETE CASCADE NOT VALID
            """
        )
        block, outside = outside_the_transaction()
        with block:
            op.execute(f'ALTER TABLE candidates VALIDATE CONSTRAINT "{FK}"')
            concurrently = " CONCURRENTLY" if outside else ""
            op.execute(
                f'CREATE INDEX{concurrently} IF NOT EXISTS "{INDEX}" ON candidates ("tenantId", "mergedIntoId")'
            )
        return
    with op.batch_alter_table("candidates") as batch:
        batch.add_column(sa.Column("mergedIntoId", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("mergedAt", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("mergedBy", sa.Uuid(), nullable=True))
        batch.create_foreign_key(
            FK,
            "candidates",
            ["tenantId", "mergedIntoId"],
            ["tenantId", "id"],
            ondelete="CASCADE",
        )
    op.create_index(INDEX, "candidates", ["tenantId", "mergedIntoId"])


def downgrade() -> None:
    if is_postgresql():
        execute("SET LOCAL mobility.system = 'on'")
        execute(
            f"""
            DO $check$
            BEGIN
                -- Nested: the inner condition is planned only once the column is known to exist.
                IF EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'candidates'::regclass
                            AND attname = 'mergedIntoId' AND NOT attisdropped) THEN
                    IF EXISTS (SELECT FROM candidates WHERE "mergedIntoId" IS NOT NULL) THEN
                        RAISE EXCEPTION '0019 downgrade refused: {MERGED_REFUSAL}';
                    END IF;
                END IF;
            END
            $check$
            """
        )
        execute(f'DROP INDEX IF EXISTS "{INDEX}"')
        execute(
            f"""
            ALTER TABLE candidates
                DROP CONSTRAINT IF EXISTS "{FK}",
                DROP COLUMN IF EXISTS "mergedBy",
                DROP COLUMN IF EXISTS "mergedAt",
                DROP COLUMN IF EXISTS "mergedIntoId"
            """
        )
        return
    merged = op.get_bind().execute(
        sa.text('SELECT count(*) FROM candidates WHERE "mergedIntoId" IS NOT NULL')
    )
    if merged.scalar_one():
        raise RuntimeError(f"0019 downgrade refused: {MERGED_REFUSAL}")
    op.drop_index(INDEX, table_name="candidates")
    with op.batch_alter_table("candidates") as batch:
        batch.drop_constraint(FK, type_="foreignkey")
        batch.drop_column("mergedBy")
        batch.drop_column("mergedAt")
        batch.drop_column("mergedIntoId")
