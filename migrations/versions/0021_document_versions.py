"""Step 21: documents' versions and review (issue 12, parts 6 and 7: candidates' documents).

The documents service (mobility/documents/service.py) keeps older versions of a document and records
each review:

- candidate_documents."supersededAt" (timestamptz) and "supersededById" (the newer version's id): set
  when a newer upload of the same type replaced this one; the current version has them NULL. No
  foreign key: the service keeps the chain when a version is deleted, and a candidate's documents are
  deleted together in any order.
- candidate_documents."reviewedBy" (the staff member's user id; a record like the audit trail's
  actor, no foreign key), "reviewedAt" (timestamptz) and "reviewReason" (text): the last verification
  or rejection, and why (a rejection's reason is required).

Nullable columns without defaults: catalog-only changes on PostgreSQL, no rewrite of the table (on
SQLite, batch mode copies it). Row-level security and the app role's privileges are 0009's for the
table already; nothing else changes.

The downgrade drops the five columns only when that loses nothing: it refuses, changing nothing,
while a version is superseded (the older schema would show every old version as a current document
beside its successor), or a review holds what verifiedBy/verifiedAt do not (a rejection's who and
why, a note). Documents verified without a note, and never superseded, go down unharmed.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from mobility.ops.migration_ops import execute, is_postgresql

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "candidate_documents"
# Rows whose new columns hold something the older schema cannot keep.
WOULD_LOSE = (
    '"supersededAt" IS NOT NULL OR "supersededById" IS NOT NULL OR "reviewReason" IS NOT NULL'
    ' OR ("reviewedBy" IS NOT NULL AND ("verifiedBy" IS NULL OR "reviewedBy" <> "verifiedBy"))'
    ' OR ("reviewedAt" IS NOT NULL AND ("verifiedAt" IS NULL OR "reviewedAt" <> "verifiedAt"))'
)
REFUSAL = (
    "candidate documents have superseded versions or reviews (a rejection, a note) that the older "
    "schema cannot hold: keep this revision, or delete those versions and clear those reviews first."
)


def upgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        batch.add_column(sa.Column("reviewedBy", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("reviewedAt", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("reviewReason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("supersededAt", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("supersededById", sa.Uuid(), nullable=True))


def _refuse_if_data_would_be_lost() -> None:
    if is_postgresql():
        # The check sees every tenant's rows (row-level security, 0009), and fails the transaction.
        execute("SET LOCAL mobility.system = 'on'")
        execute(
            f"""
            DO $check$
            BEGIN
                -- Nested: the inner condition is planned only once the columns are known to exist (a
                -- rerun of the SQL script after they were dropped only checks again).
                IF EXISTS (SELECT FROM pg_attribute WHERE attrelid = '{TABLE}'::regclass
                            AND attname = 'supersededAt' AND NOT attisdropped) THEN
                    IF EXISTS (SELECT FROM {TABLE} WHERE {WOULD_LOSE}) THEN
                        RAISE EXCEPTION '0021 downgrade refused: {REFUSAL}';
                    END IF;
                END IF;
            END
            $check$
            """
        )
    elif not context.is_offline_mode():
        found = op.get_bind().execute(sa.text(f"SELECT 1 FROM {TABLE} WHERE {WOULD_LOSE} LIMIT 1")).first()
        if found is not None:
            raise RuntimeError(f"0021 downgrade refused: {REFUSAL}")


def downgrade() -> None:
    _refuse_if_data_would_be_lost()
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_column("supersededById")
        batch.drop_column("supersededAt")
        batch.drop_column("reviewReason")
        batch.drop_column("reviewedAt")
        batch.drop_column("reviewedBy")
