"""Step 15: keys that Citus could distribute by tenant (docs/scaling.md, mobility.distribution).

Citus shards a table by one column and needs that column in every primary key and unique key of the
table, and in every foreign key between two such tables. This revision gives the 18 tables meant to be
distributed by `tenantId` keys that include it, and moves the two keys that must stay unique across
tenants into small tables of their own:

- primary keys: (tenantId, id) instead of (id) on the 16 tenant-scoped tables (agents ... settings,
  user_invitations), on user_tenants and on audit_logs. The UNIQUE (tenantId, id) that the same-tenant
  foreign keys referred to is the primary key now: it is dropped (CASCADE drops those foreign keys with
  it) and the 21 same-tenant foreign keys are made again, the same, on the primary key;
- audit_logs."tenantId" NOT NULL: a trail entry without a tenant (made under the system scope: the
  seed's global roles, `mobility users merge`) moves to the new `system_audit_logs` (same columns but
  the tenant; append-only like audit_logs; visible under the system setting only);
- `certificate_codes` (verificationCode unique, its tenantId) and `invitation_tokens` (tokenHash
  unique, its tenantId): the global keys. `certificates."verificationCode"` and
  `user_invitations."tokenHash"` are unique per tenant now and refer to their row there
  (tenantId, value), so they stay unique across the installation. Filled from the existing rows.

The tables whose keys are rebuilt are locked (ACCESS EXCLUSIVE) while their new primary keys are built:
the domain tables are empty on every installation (the legacy database has none of them); user_tenants,
user_invitations, settings and audit_logs hold what the new application wrote (their size, in rows, is
what the build takes: milliseconds to a second). `users` and `roles` are not touched. One transaction,
all or nothing, waiting at most lock_timeout for each lock.

The downgrade puts everything back: primary keys on (id), UNIQUE (tenantId, id) with the foreign keys on
it, verificationCode and tokenHash unique across the installation again, the installation-wide trail
entries back into audit_logs (tenantId NULL), and drops the three new tables. Nothing is lost: the codes
and tokens are still on their rows.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from mobility.ops.migration_ops import execute, is_postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than taken from the models: a revision keeps producing the same DDL.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMPTZ = sa.DateTime(timezone=True)
NOW = sa.text("CURRENT_TIMESTAMP")
APP_ROLE = "mobility_app"  # 0009

# The tenant-scoped tables (0005, 0006, 0008): primary key (id) and UNIQUE (tenantId, id) until now.
TENANT_SCOPED = (
    "agents",
    "brokers",
    "candidates",
    "courses",
    "enrollments",
    "attendance_records",
    "assessments",
    "certificates",
    "vetting_records",
    "placements",
    "payments",
    "invoices",
    "notifications",
    "settings",
    "candidate_documents",
    "user_invitations",
)
# Tables whose primary key was (id) without a UNIQUE (tenantId, id) beside it.
KEYED_BY_ID = ("user_tenants", "audit_logs")

# (table, column, target, ON DELETE): the same-tenant foreign keys (tenantId, column) -> target
# (tenantId, id) of 0005, 0006 and 0007, named `<table>_tenantId_<column>_fkey`.
SAME_TENANT_FKS: tuple[tuple[str, str, str, str], ...] = (
    ("candidates", "agentId", "agents", "RESTRICT"),
    ("candidates", "brokerId", "brokers", "RESTRICT"),
    ("enrollments", "courseId", "courses", "RESTRICT"),
    ("enrollments", "candidateId", "candidates", "RESTRICT"),
    ("attendance_records", "enrollmentId", "enrollments", "CASCADE"),
    ("assessments", "enrollmentId", "enrollments", "CASCADE"),
    ("certificates", "enrollmentId", "enrollments", "RESTRICT"),
    ("vetting_records", "candidateId", "candidates", "CASCADE"),
    ("placements", "candidateId", "candidates", "RESTRICT"),
    ("placements", "agentId", "agents", "RESTRICT"),
    ("placements", "brokerId", "brokers", "RESTRICT"),
    ("payments", "candidateId", "candidates", "RESTRICT"),
    ("payments", "agentId", "agents", "RESTRICT"),
    ("payments", "brokerId", "brokers", "RESTRICT"),
    ("payments", "placementId", "placements", "RESTRICT"),
    ("payments", "invoiceId", "invoices", "RESTRICT"),
    ("invoices", "candidateId", "candidates", "RESTRICT"),
    ("invoices", "agentId", "agents", "RESTRICT"),
    ("invoices", "brokerId", "brokers", "RESTRICT"),
    ("invoices", "placementId", "placements", "RESTRICT"),
    ("candidate_documents", "candidateId", "candidates", "CASCADE"),
)

# (key table, value column, its type, owner table): the global keys.
GLOBAL_KEYS: tuple[tuple[str, str, sa.types.TypeEngine, str], ...] = (
    ("certificate_codes", "verificationCode", sa.String(64), "certificates"),
    ("invitation_tokens", "tokenHash", sa.Text(), "user_invitations"),
)

SYSTEM_TRAIL = "system_audit_logs"
# audit_logs' columns but the tenant, in its order (0006).
TRAIL_COLUMNS = (
    "id",
    "actorId",
    "action",
    "entityType",
    "entityId",
    "before",
    "after",
    "ipAddress",
    "requestId",
    "createdAt",
)
APPEND_ONLY_TRIGGER = "audit_logs_append_only"  # 0009, on audit_logs

SYSTEM = "current_setting('mobility.system', true) = 'on'"
IN_TENANT = f"{SYSTEM} OR \"tenantId\" = nullif(current_setting('mobility.tenant_id', true), '')::uuid"

_SYSTEM_TRAIL_APPEND_ONLY = f"""
    CREATE FUNCTION {SYSTEM_TRAIL}_append_only() RETURNS trigger
        LANGUAGE plpgsql
        AS $$
    BEGIN
        RAISE EXCEPTION USING
            ERRCODE = 'insufficient_privilege',
            MESSAGE = '{SYSTEM_TRAIL} is append-only: ' || TG_OP || ' is not allowed',
            HINT = 'The audit trail is never changed or removed, not even by the owner.';
    END
    $$
"""


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def _fk_name(table: str, column: str) -> str:
    return f"{table}_tenantId_{column}_fkey"


def _same_tenant_fk_sql(table: str, column: str, target: str, ondelete: str) -> str:
    """A same-tenant foreign key, (re)defined: dropped if there, then added (on whatever unique key of
    (tenantId, id) the target has)."""
    name = _fk_name(table, column)
    return f"""
        ALTER TABLE {table}
            DROP CONSTRAINT IF EXISTS "{name}",
            ADD CONSTRAINT "{name}" FOREIGN KEY ("tenantId", "{column}")
                REFERENCES {target} ("tenantId", id) ON DELETE {ondelete}
    """


def _create_new_tables() -> None:
    for table, column, type_, _owner in GLOBAL_KEYS:
        op.create_table(
            table,
            sa.Column("id", sa.Uuid(), nullable=False),
            sa.Column("tenantId", sa.Uuid(), nullable=False),
            sa.Column(column, type_, nullable=False),
            sa.Column("createdAt", TIMESTAMPTZ, server_default=NOW, nullable=False),
            sa.PrimaryKeyConstraint("id", name=f"{table}_pkey"),
            sa.UniqueConstraint(column, name=f"{table}_{column}_key"),
            # The target of the owner's (tenantId, value) foreign key.
            sa.UniqueConstraint("tenantId", column, name=f"{table}_tenantId_{column}_key"),
            sa.ForeignKeyConstraint(
                ["tenantId"], ["tenants.id"], name=f"{table}_tenantId_fkey", ondelete="RESTRICT"
            ),
        )
    op.create_table(
        SYSTEM_TRAIL,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("actorId", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("entityType", sa.String(64), nullable=False),
        sa.Column("entityId", sa.Uuid(), nullable=True),
        sa.Column("before", JSON, nullable=True),
        sa.Column("after", JSON, nullable=True),
        sa.Column("ipAddress", sa.String(45), nullable=True),
        sa.Column("requestId", sa.String(64), nullable=True),
        sa.Column("createdAt", TIMESTAMPTZ, server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"{SYSTEM_TRAIL}_pkey"),
    )


def _fill_new_tables() -> None:
    """The global keys of the existing rows (each key row takes its owner's id: SQLite has no uuid
    function), and the trail entries without a tenant, moved (copied, then deleted where copied)."""
    for table, column, _type, owner in GLOBAL_KEYS:
        execute(
            f"""
            INSERT INTO {table} (id, "tenantId", "{column}", "createdAt")
            SELECT id, "tenantId", "{column}", "createdAt" FROM {owner} WHERE "{column}" IS NOT NULL
            ON CONFLICT DO NOTHING
            """
        )
    columns = _quoted(TRAIL_COLUMNS)
    execute(
        f"""
        INSERT INTO {SYSTEM_TRAIL} ({columns})
        SELECT {columns} FROM audit_logs WHERE "tenantId" IS NULL
        ON CONFLICT DO NOTHING
        """
    )
    if is_postgresql():
        execute(f"ALTER TABLE audit_logs DISABLE TRIGGER {APPEND_ONLY_TRIGGER}")
    execute(
        f"""
        DELETE FROM audit_logs
         WHERE "tenantId" IS NULL AND EXISTS (SELECT 1 FROM {SYSTEM_TRAIL} s WHERE s.id = audit_logs.id)
        """
    )
    if is_postgresql():
        execute(f"ALTER TABLE audit_logs ENABLE TRIGGER {APPEND_ONLY_TRIGGER}")


def _protect_new_tables() -> None:
    """PostgreSQL: row-level security and privileges as 0009 gives every table, the installation's
    trail append-only and seen under the system setting only."""
    for table, *_ in GLOBAL_KEYS:
        execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
        execute(
            f"""
            CREATE POLICY tenant_isolation ON {table} AS PERMISSIVE FOR ALL TO PUBLIC
                USING ({IN_TENANT})
                WITH CHECK ({IN_TENANT})
            """
        )
    execute(f"ALTER TABLE {SYSTEM_TRAIL} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
    execute(
        f"""
        CREATE POLICY system_only ON {SYSTEM_TRAIL} AS PERMISSIVE FOR ALL TO PUBLIC
            USING ({SYSTEM})
            WITH CHECK ({SYSTEM})
        """
    )
    tables = ", ".join(table for table, *_ in GLOBAL_KEYS)
    execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {tables} TO {APP_ROLE}")
    execute(f"GRANT SELECT, INSERT ON TABLE {SYSTEM_TRAIL} TO {APP_ROLE}")
    # The default privileges of 0009 gave it these too: the trail is append-only.
    execute(f"REVOKE UPDATE, DELETE ON TABLE {SYSTEM_TRAIL} FROM {APP_ROLE}")
    execute(_SYSTEM_TRAIL_APPEND_ONLY)
    execute(
        f"""
        CREATE TRIGGER {SYSTEM_TRAIL}_append_only BEFORE UPDATE OR DELETE ON {SYSTEM_TRAIL}
            FOR EACH ROW EXECUTE FUNCTION {SYSTEM_TRAIL}_append_only()
        """
    )
    execute(
        f"""
        CREATE TRIGGER {SYSTEM_TRAIL}_no_truncate BEFORE TRUNCATE ON {SYSTEM_TRAIL}
            FOR EACH STATEMENT EXECUTE FUNCTION {SYSTEM_TRAIL}_append_only()
        """
    )


def upgrade() -> None:
    if is_postgresql():
        # Row-level security (0009) is forced on these tables: the copies act across tenants.
        execute("SET LOCAL mobility.system = 'on'")
    _create_new_tables()
    _fill_new_tables()
    if is_postgresql():
        _upgrade_keys_postgresql()
        _protect_new_tables()
    else:
        _upgrade_keys_sqlite()


def _upgrade_keys_postgresql() -> None:
    for table in TENANT_SCOPED:
        # CASCADE: and the same-tenant foreign keys that refer to it, made again below on the new key.
        execute(f'ALTER TABLE {table} DROP CONSTRAINT IF EXISTS "{table}_tenantId_id_key" CASCADE')
    execute('ALTER TABLE audit_logs ALTER COLUMN "tenantId" SET NOT NULL')
    for table in (*TENANT_SCOPED, *KEYED_BY_ID):
        execute(
            f"""
            ALTER TABLE {table}
                DROP CONSTRAINT IF EXISTS {table}_pkey,
                ADD CONSTRAINT {table}_pkey PRIMARY KEY ("tenantId", id)
            """
        )
    for table, column, target, ondelete in SAME_TENANT_FKS:
        execute(_same_tenant_fk_sql(table, column, target, ondelete))
    for key_table, column, _type, owner in GLOBAL_KEYS:
        execute(f'ALTER TABLE {owner} DROP CONSTRAINT IF EXISTS "{owner}_{column}_key"')
        execute(
            f'ALTER TABLE {owner} ADD CONSTRAINT "{owner}_tenantId_{column}_key" UNIQUE ("tenantId", "{column}")'
        )
        execute(
            f"""
            ALTER TABLE {owner} ADD CONSTRAINT "{owner}_tenantId_{column}_fkey"
                FOREIGN KEY ("tenantId", "{column}") REFERENCES {key_table} ("tenantId", "{column}")
                ON DELETE RESTRICT
            """
        )


def _upgrade_keys_sqlite() -> None:
    # SQLite cannot alter a key: each table is rebuilt (batch mode), its rows copied. The same-tenant
    # foreign keys of the other tables name columns, not constraints: they hold on the new key.
    for table in (*TENANT_SCOPED, *KEYED_BY_ID):
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.drop_constraint(f"{table}_pkey", type_="primary")
            if table in TENANT_SCOPED:
                batch.drop_constraint(f"{table}_tenantId_id_key", type_="unique")
            if table == "audit_logs":
                batch.alter_column("tenantId", existing_type=sa.Uuid(), nullable=False)
            for key_table, column, _type, owner in GLOBAL_KEYS:
                if owner != table:
                    continue
                batch.drop_constraint(f"{owner}_{column}_key", type_="unique")
                batch.create_unique_constraint(f"{owner}_tenantId_{column}_key", ["tenantId", column])
                batch.create_foreign_key(
                    f"{owner}_tenantId_{column}_fkey",
                    key_table,
                    ["tenantId", column],
                    ["tenantId", column],
                    ondelete="RESTRICT",
                )
            batch.create_primary_key(f"{table}_pkey", ["tenantId", "id"])


def downgrade() -> None:
    if is_postgresql():
        execute("SET LOCAL mobility.system = 'on'")
        _downgrade_keys_postgresql()
    else:
        _downgrade_keys_sqlite()
    # The installation-wide trail entries back into audit_logs, without a tenant, as before 0015.
    columns = _quoted(TRAIL_COLUMNS)
    execute(
        f"""
        INSERT INTO audit_logs ({columns})
        SELECT {columns} FROM {SYSTEM_TRAIL} WHERE id IS NOT NULL
        ON CONFLICT DO NOTHING
        """
    )
    op.drop_table(SYSTEM_TRAIL)
    if is_postgresql():
        execute(f"DROP FUNCTION IF EXISTS {SYSTEM_TRAIL}_append_only()")
    for table, *_ in reversed(GLOBAL_KEYS):
        op.drop_table(table)


def _downgrade_keys_postgresql() -> None:
    for _key_table, column, _type, owner in reversed(GLOBAL_KEYS):
        execute(f'ALTER TABLE {owner} DROP CONSTRAINT IF EXISTS "{owner}_tenantId_{column}_fkey"')
        execute(f'ALTER TABLE {owner} DROP CONSTRAINT IF EXISTS "{owner}_tenantId_{column}_key"')
        execute(f'ALTER TABLE {owner} ADD CONSTRAINT "{owner}_{column}_key" UNIQUE ("{column}")')
    for table in reversed(TENANT_SCOPED):
        execute(f'ALTER TABLE {table} ADD CONSTRAINT "{table}_tenantId_id_key" UNIQUE ("tenantId", id)')
    for table in reversed((*TENANT_SCOPED, *KEYED_BY_ID)):
        # CASCADE: and the same-tenant foreign keys on it, made again below on UNIQUE (tenantId, id).
        execute(
            f"""
            ALTER TABLE {table}
                DROP CONSTRAINT IF EXISTS {table}_pkey CASCADE,
                ADD CONSTRAINT {table}_pkey PRIMARY KEY (id)
            """
        )
    for table, column, target, ondelete in reversed(SAME_TENANT_FKS):
        execute(_same_tenant_fk_sql(table, column, target, ondelete))
    execute('ALTER TABLE audit_logs ALTER COLUMN "tenantId" DROP NOT NULL')


def _downgrade_keys_sqlite() -> None:
    for table in reversed((*TENANT_SCOPED, *KEYED_BY_ID)):
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.drop_constraint(f"{table}_pkey", type_="primary")
            for _key_table, column, _type, owner in GLOBAL_KEYS:
                if owner != table:
                    continue
                batch.drop_constraint(f"{owner}_tenantId_{column}_fkey", type_="foreignkey")
                batch.drop_constraint(f"{owner}_tenantId_{column}_key", type_="unique")
                batch.create_unique_constraint(f"{owner}_{column}_key", [column])
            if table == "audit_logs":
                batch.alter_column("tenantId", existing_type=sa.Uuid(), nullable=True)
            if table in TENANT_SCOPED:
                batch.create_unique_constraint(f"{table}_tenantId_id_key", ["tenantId", "id"])
            batch.create_primary_key(f"{table}_pkey", ["id"])
