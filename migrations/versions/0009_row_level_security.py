"""Step 9 (PostgreSQL only): row-level security, the second wall behind the data layer's tenant filter.

- The role `mobility_app`, which the API connects as (MOBILITY_APP_DATABASE_URL). It owns no table, so
  it can neither change the schema nor switch row-level security off. LOGIN without a password: the DBA
  sets one (`ALTER ROLE mobility_app PASSWORD '...'`). Created only when missing; an existing role that
  is a superuser or has BYPASSRLS is refused, since row-level security would not apply to it.
  Creating it needs CREATEROLE; without it, a DBA creates the role first and the migration keeps it.
- Its privileges: USAGE on the schema; SELECT, INSERT, UPDATE, DELETE on the application's tables,
  except `audit_logs` (SELECT, INSERT: the trail is append-only) and `alembic_version` (SELECT: /health
  reads the revision). Never TRUNCATE, REFERENCES or TRIGGER. Default privileges give the tables (and
  sequences) that later revisions create, as the same owner, the same four; a later revision that wants
  otherwise (another append-only table, a read-only one) REVOKEs explicitly.
- Every table with a `tenantId` column: row-level security ENABLEd and FORCEd (so it applies to the
  owner too, unless the owner is a superuser) and one policy `tenant_isolation` FOR ALL, keyed on the
  transaction-local settings `mobility.core.tenancy.apply_to_database` makes:
  `mobility.system` ('on' for the CLI, seeding and authentication lookups), `mobility.tenant_id` and
  `mobility.actor_id` (a uuid, or '' when none). Nothing set means nothing visible. The tables whose
  `tenantId` is not simply "the tenant the row belongs to" follow the row rules of authz/rules.py:
  users (primary tenant only: visible as oneself or as a member of the current tenant), roles (global
  ones to all; a role the actor holds in another tenant, for /me), user_tenants (the tenant's
  memberships and one's own), sessions (one's own, or a member's), audit_logs (rows without a tenant
  only under the system setting).
- `audit_logs` refuses UPDATE and DELETE (row triggers) and TRUNCATE (statement trigger) for every
  role, its owner included.

FORCE applies to the owner too (unless a superuser): whatever connects as the owner and touches rows
must say it acts across tenants. The seed and the CLI act under the system scope, `mobility db backup`
dumps under it; a later revision that reads or writes rows of these tables must first
`SET LOCAL mobility.system = 'on'`, or it sees and changes nothing. See docs/security.md.

All of it in one transaction: the locks (ACCESS EXCLUSIVE, catalog changes only) are brief and bounded
by lock_timeout; a rerun after a timeout starts again from the top. On SQLite, which has neither roles
nor row-level security, this revision does nothing.

The downgrade removes the policies, triggers, function and privileges. It keeps the role: roles belong
to the whole cluster and may hold privileges in other databases; `DROP ROLE mobility_app` is the DBA's
(after `DROP OWNED BY mobility_app` in every database that used it).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

from mobility.ops.migration_ops import execute

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "mobility_app"

# Every table at this revision, and what the app role may do with it.
READ_WRITE = "SELECT, INSERT, UPDATE, DELETE"
GRANTS: tuple[tuple[str, str], ...] = (
    ("activity_logs", READ_WRITE),
    ("agents", READ_WRITE),
    ("assessments", READ_WRITE),
    ("attendance_records", READ_WRITE),
    ("brokers", READ_WRITE),
    ("candidate_documents", READ_WRITE),
    ("candidates", READ_WRITE),
    ("certificates", READ_WRITE),
    ("courses", READ_WRITE),
    ("enrollments", READ_WRITE),
    ("invoices", READ_WRITE),
    ("login_throttles", READ_WRITE),
    ("notifications", READ_WRITE),
    ("payments", READ_WRITE),
    ("placements", READ_WRITE),
    ("roles", READ_WRITE),
    ("sessions", READ_WRITE),
    ("settings", READ_WRITE),
    ("tenants", READ_WRITE),
    ("user_invitations", READ_WRITE),
    ("user_tenants", READ_WRITE),
    ("users", READ_WRITE),
    ("vetting_records", READ_WRITE),
    ("audit_logs", "SELECT, INSERT"),
    ("alembic_version", "SELECT"),
)

SYSTEM = "current_setting('mobility.system', true) = 'on'"
TENANT = "nullif(current_setting('mobility.tenant_id', true), '')::uuid"
ACTOR = "nullif(current_setting('mobility.actor_id', true), '')::uuid"
IN_TENANT = f'{SYSTEM} OR "tenantId" = {TENANT}'


def _member(user_id: str) -> str:
    """`user_id` is a member of the current tenant."""
    return f'EXISTS (SELECT FROM user_tenants m WHERE m."userId" = {user_id} AND m."tenantId" = {TENANT})'


_USERS_VISIBLE = f"{SYSTEM} OR id = {ACTOR} OR {_member('users.id')}"
_SESSIONS_VISIBLE = f'{SYSTEM} OR "userId" = {ACTOR} OR ' + _member('sessions."userId"')
_HELD_BY_ACTOR = f'EXISTS (SELECT FROM user_tenants h WHERE h."roleId" = roles.id AND h."userId" = {ACTOR})'

# table -> (USING, WITH CHECK): every table with a tenantId column at this revision.
POLICIES: dict[str, tuple[str, str]] = {
    # The plain case: the row belongs to the current tenant.
    **{
        table: (IN_TENANT, IN_TENANT)
        for table in (
            "agents",
            "assessments",
            "attendance_records",
            "brokers",
            "candidate_documents",
            "candidates",
            "certificates",
            "courses",
            "enrollments",
            "invoices",
            "notifications",
            "payments",
            "placements",
            "settings",
            "user_invitations",
            "vetting_records",
            # Rows without a tenant (written under the system setting) only under it.
            "audit_logs",
        )
    },
    # tenantId is the primary tenant only: a user is seen as oneself or as a member of the current
    # tenant. An invitation inserts the user (primary tenant: the current one) before the membership.
    "users": (_USERS_VISIBLE, f'{_USERS_VISIBLE} OR "tenantId" = {TENANT}'),
    # Global roles (no tenant) to everyone, the tenant's own, and those the actor holds elsewhere (/me
    # lists them); only the tenant's own can be written.
    "roles": (f'{IN_TENANT} OR "tenantId" IS NULL OR {_HELD_BY_ACTOR}', IN_TENANT),
    # The tenant's memberships, and the actor's own in other tenants (/me, switching tenant).
    "user_tenants": (f'{IN_TENANT} OR "userId" = {ACTOR}', IN_TENANT),
    # One's own sessions (in any tenant), and those of the tenant's members (ended on suspension).
    "sessions": (_SESSIONS_VISIBLE, _SESSIONS_VISIBLE),
}

_APPEND_ONLY_FUNCTION = """
    CREATE FUNCTION audit_logs_append_only() RETURNS trigger
        LANGUAGE plpgsql
        AS $$
    BEGIN
        RAISE EXCEPTION USING
            ERRCODE = 'insufficient_privilege',
            MESSAGE = 'audit_logs is append-only: ' || TG_OP || ' is not allowed',
            HINT = 'The audit trail is never changed or removed, not even by the owner.';
    END
    $$
"""

# Created only when missing (two databases of one cluster may be migrated at the same time: the loser
# of that race sees duplicate_object or unique_violation, and the role is there either way).
_ENSURE_ROLE = f"""
    DO $$
    BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
            CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
        ELSIF EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}' AND (rolsuper OR rolbypassrls)) THEN
            RAISE EXCEPTION 'role {APP_ROLE} is a superuser or has BYPASSRLS: row-level security would not apply to it (ALTER ROLE {APP_ROLE} NOSUPERUSER NOBYPASSRLS)';
        END IF;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;
    END
    $$
"""


def _tables(privileges: str) -> str:
    return ", ".join(table for table, granted in GRANTS if granted == privileges)


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    execute(_ENSURE_ROLE)
    execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    for privileges in dict.fromkeys(granted for _, granted in GRANTS):
        execute(f"GRANT {privileges} ON TABLE {_tables(privileges)} TO {APP_ROLE}")
    execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {READ_WRITE} ON TABLES TO {APP_ROLE}")
    execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}")

    for table, (using, check) in POLICIES.items():
        execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
        execute(
            f"""
            CREATE POLICY tenant_isolation ON {table} AS PERMISSIVE FOR ALL TO PUBLIC
                USING ({using})
                WITH CHECK ({check})
            """
        )

    execute(_APPEND_ONLY_FUNCTION)
    execute(
        """
        CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
            FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only()
        """
    )
    execute(
        """
        CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs
            FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only()
        """
    )


def downgrade() -> None:
    # Takes away the second wall and the append-only trigger; loses no data. The role stays (see above).
    if op.get_context().dialect.name != "postgresql":
        return
    execute("DROP TRIGGER IF EXISTS audit_logs_no_truncate ON audit_logs")
    execute("DROP TRIGGER IF EXISTS audit_logs_append_only ON audit_logs")
    execute("DROP FUNCTION IF EXISTS audit_logs_append_only()")
    for table in reversed(POLICIES):
        execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY")
    execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM {APP_ROLE}")
    execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE {READ_WRITE} ON TABLES FROM {APP_ROLE}")
    execute(f"REVOKE ALL ON TABLE {', '.join(table for table, _ in GRANTS)} FROM {APP_ROLE}")
    execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}")
