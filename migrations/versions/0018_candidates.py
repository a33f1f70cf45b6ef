"""Step 18: what the candidates service needs (issue 12, parts 2-5).

- candidates."referenceNumber" widened to 48 characters: a tenant code may be 32 characters long, and
  `<code>-<year>-<sequence>` must fit (candidates/reference.py).
- the duplicate keys, kept by the service (candidates/duplicates.py): "passportKey" (nationality and
  normalised passport number), "nationalIdKey", "emailKey" (lower case), each UNIQUE per tenant, so a
  concurrent registration of the same person meets the key (409) rather than a race; and
  "searchName" (first and last name transliterated to ASCII lower case), the accent- and
  case-insensitive name search, with a trigram (GIN, pg_trgm) index on PostgreSQL and a plain one on
  SQLite; an index on ("tenantId", "dateOfBirth") for the likely-duplicate lookup.
- `candidate_reference_counters` (a tenant-scoped row per "tenantId" and year, "lastNumber"): the sequence of reference numbers
  per tenant and year, taken with INSERT ... ON CONFLICT DO UPDATE ... RETURNING in the registering
  transaction. Row-level security and the app role's privileges as 0009 gives every table.
- PostgreSQL: `CREATE EXTENSION IF NOT EXISTS pg_trgm` (idempotent).

Existing candidates (none on any installation: no service wrote them before this revision) get their
keys computed in the upgrade; two of them with the same key make the upgrade fail, changing nothing.
Counters start from the highest sequence number already used in each tenant and year.

The downgrade drops the new columns, indexes and the counter table, and narrows referenceNumber back
to 32 (refused, changing nothing, while a stored reference is longer), and drops the pg_trgm extension
without CASCADE: while another object of the database uses it, the downgrade fails and changes
nothing (drop or keep that object first).

Revision ID: 0018
Revises: 0015
Create Date: 2026-11-26
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from mobility.ops.migration_ops import NOW, execute, is_postgresql, user_fk

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "mobility_app"  # 0009
COUNTERS = "candidate_reference_counters"
SYSTEM = "current_setting('mobility.system', true) = 'on'"
IN_TENANT = f"{SYSTEM} OR \"tenantId\" = nullif(current_setting('mobility.tenant_id', true), '')::uuid"
KEYS = ("passportKey", "nationalIdKey", "emailKey")
TRGM_INDEX = "candidates_searchName_trgm_idx"
DOB_INDEX = "candidates_tenantId_dateOfBirth_idx"


def _key(function, value, nationality):
    try:
        return function(value, nationality) if value and nationality else None
    except ValueError:
        return None


def _fill_keys() -> None:
    """The keys of existing candidates, computed as the service computes them (online only: the SQL
    scripts are for databases whose candidates this project's service wrote)."""
    if context.is_offline_mode():
        return
    from mobility.candidates.duplicates import email_key, name_key, national_id_key, passport_key

    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            'SELECT "tenantId", id, "firstName", "lastName", nationality, "passportNumber", '
            '"nationalId", email FROM candidates'
        )
    ).all()
    for tenant_id, row_id, first, last, nationality, passport, national_id, email in rows:
        connection.execute(
            sa.text(
                'UPDATE candidates SET "passportKey" = :p, "nationalIdKey" = :n, "emailKey" = :e, '
                '"searchName" = :s WHERE "tenantId" = :t AND id = :i'
            ),
            {
                "p": _key(passport_key, passport, nationality),
                "n": _key(national_id_key, national_id, nationality),
                "e": email_key(email) if email else None,
                "s": name_key(first or "", last or "")[:600],
                "t": tenant_id,
                "i": row_id,
            },
        )


def upgrade() -> None:
    if is_postgresql():
        execute("SET LOCAL mobility.system = 'on'")
        execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    with op.batch_alter_table("candidates") as batch:
        batch.alter_column(
            "referenceNumber", existing_type=sa.String(32), type_=sa.String(48), existing_nullable=False
        )
        batch.add_column(sa.Column("passportKey", sa.String(40), nullable=True))
        batch.add_column(sa.Column("nationalIdKey", sa.String(40), nullable=True))
        batch.add_column(sa.Column("emailKey", sa.String(320), nullable=True))
        batch.add_column(sa.Column("searchName", sa.String(600), nullable=True))
    _fill_keys()
    with op.batch_alter_table("candidates") as batch:
        for column in KEYS:
            batch.create_unique_constraint(f"candidates_tenantId_{column}_key", ["tenantId", column])
    op.create_index(DOB_INDEX, "candidates", ["tenantId", "dateOfBirth"])
    op.create_index(
        TRGM_INDEX,
        "candidates",
        ["searchName"],
        postgresql_using="gin",
        postgresql_ops={"searchName": "gin_trgm_ops"},
    )
    op.create_table(
        COUNTERS,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenantId", sa.Uuid(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("lastNumber", sa.BigInteger(), nullable=False),
        sa.Column("createdBy", sa.Uuid(), nullable=True),
        sa.Column("updatedBy", sa.Uuid(), nullable=True),
        sa.Column("createdAt", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updatedAt", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("tenantId", "id", name=f"{COUNTERS}_pkey"),
        sa.UniqueConstraint("tenantId", "year", name=f"{COUNTERS}_tenantId_year_key"),
        sa.ForeignKeyConstraint(
            ["tenantId"], ["tenants.id"], name=f"{COUNTERS}_tenantId_fkey", ondelete="RESTRICT"
        ),
        user_fk(COUNTERS, "createdBy"),
        user_fk(COUNTERS, "updatedBy"),
    )
    if not context.is_offline_mode():
        _fill_counters()
    if is_postgresql():
        execute(f"ALTER TABLE {COUNTERS} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
        execute(
            f"""
            CREATE POLICY tenant_isolation ON {COUNTERS} AS PERMISSIVE FOR ALL TO PUBLIC
                USING ({IN_TENANT})
                WITH CHECK ({IN_TENANT})
            """
        )
        execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {COUNTERS} TO {APP_ROLE}")


def _fill_counters() -> None:
    """Each tenant and year continues after the highest sequence number its references already use."""
    from mobility.candidates.reference import parse_reference

    connection = op.get_bind()
    highest: dict[tuple, int] = {}
    for tenant_id, reference in connection.execute(
        sa.text('SELECT "tenantId", "referenceNumber" FROM candidates')
    ):
        try:
            parsed = parse_reference(reference)
        except ValueError:
            continue
        key = (tenant_id, parsed.year)
        highest[key] = max(highest.get(key, 0), parsed.sequence)
    for (tenant_id, year), number in highest.items():
        connection.execute(
            sa.text(f'INSERT INTO {COUNTERS} (id, "tenantId", year, "lastNumber") VALUES (:i, :t, :y, :n)'),
            {"i": uuid.uuid4(), "t": tenant_id, "y": year, "n": number},
        )


def downgrade() -> None:
    if is_postgresql():
        execute("SET LOCAL mobility.system = 'on'")
    op.drop_table(COUNTERS)
    op.drop_index(TRGM_INDEX, table_name="candidates")
    op.drop_index(DOB_INDEX, table_name="candidates")
    with op.batch_alter_table("candidates") as batch:
        for column in KEYS:
            batch.drop_constraint(f"candidates_tenantId_{column}_key", type_="unique")
        for column in ("searchName", *reversed(KEYS)):
            batch.drop_column(column)
        batch.alter_column(
            "referenceNumber", existing_type=sa.String(48), type_=sa.String(32), existing_nullable=False
        )
    if is_postgresql():
        # RESTRICT (the default): while anything else in the database uses pg_trgm, the downgrade fails
        # here and changes nothing, rather than dropping what depends on it.
        execute("DROP EXTENSION IF EXISTS pg_trgm")
