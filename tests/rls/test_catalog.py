"""What the catalog says: every tenant table has row-level security on and forced with a policy, and the
app role can neither bypass it nor change the schema."""

from __future__ import annotations

import secrets

import psycopg
import pytest
from psycopg import errors

from mobility.ops import sqlscripts
from mobility.ops.sqlscripts import split_statements
from tests.rls.conftest import app_sql, tenant_tables
from tests.support.databases import APP_ROLE, PG_ADMIN_URL, libpq_url

pytestmark = pytest.mark.postgres_only


def _owner(url: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(libpq_url(url)) as conn:
        return conn.execute(query, params).fetchall()


def test_every_table_with_a_tenant_column_has_rls_enabled_forced_and_a_policy(migrated_database_url) -> None:
    tables = tenant_tables(migrated_database_url)
    assert {"candidates", "users", "roles", "sessions", "audit_logs"} <= set(tables)
    rows = _owner(
        migrated_database_url,
        """
        SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
               (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)
        FROM pg_class c WHERE c.oid = ANY(%s::regclass[])
        """,
        (tables,),
    )
    unprotected = {
        name: {"enabled": enabled, "forced": forced, "policies": policies}
        for name, enabled, forced, policies in rows
        if not (enabled and forced and policies)
    }
    assert not unprotected, (
        "tables with a tenantId column need ENABLE + FORCE ROW LEVEL SECURITY and a policy "
        f"(see migrations/versions/0009_row_level_security.py): {unprotected}"
    )


def test_the_app_role_bypasses_nothing_and_owns_nothing(migrated_database_url) -> None:
    [(login, superuser, bypass, createrole, createdb)] = _owner(
        migrated_database_url,
        "SELECT rolcanlogin, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb"
        " FROM pg_roles WHERE rolname = %s",
        (APP_ROLE,),
    )
    assert (login, superuser, bypass, createrole, createdb) == (True, False, False, False, False)
    owned = _owner(
        migrated_database_url,
        """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND pg_has_role(%s, c.relowner, 'USAGE')
        """,
        (APP_ROLE,),
    )
    assert owned == [], "the app role must own no table (an owner can switch row-level security off)"


def test_the_app_role_has_exactly_its_privileges(migrated_database_url) -> None:
    rows = _owner(
        migrated_database_url,
        """
        SELECT c.relname, p.privilege FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'])
            AS p(privilege)
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND has_table_privilege(%s, c.oid, p.privilege)
        """,
        (APP_ROLE,),
    )
    granted: dict[str, set[str]] = {}
    for table, privilege in rows:
        granted.setdefault(table, set()).add(privilege)
    read_write = {"SELECT", "INSERT", "UPDATE", "DELETE"}
    assert granted.pop("audit_logs") == {"SELECT", "INSERT"}
    assert granted.pop("system_audit_logs") == {"SELECT", "INSERT"}
    assert granted.pop("alembic_version") == {"SELECT"}
    assert granted and all(privileges == read_write for privileges in granted.values()), granted


def test_tables_of_later_revisions_get_the_same_privileges(migrated_database_url) -> None:
    with psycopg.connect(libpq_url(migrated_database_url)) as conn:
        conn.execute("CREATE TABLE rls_later_revision_probe (id uuid PRIMARY KEY)")
        privileges = conn.execute(
            "SELECT p FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS p"
            " WHERE has_table_privilege(%s, 'rls_later_revision_probe', p)",
            (APP_ROLE,),
        ).fetchall()
        conn.rollback()
    assert {p for (p,) in privileges} == {"SELECT", "INSERT", "UPDATE", "DELETE"}


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE candidates ADD COLUMN sneaky text",
        "ALTER TABLE candidates DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE candidates NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON candidates",
        "CREATE POLICY everything ON candidates USING (true)",
        "DROP TABLE candidates",
        "TRUNCATE candidates",
        "ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only",
        "DROP FUNCTION audit_logs_append_only() CASCADE",
        "CREATE TABLE sneaky (id int)",
    ],
)
def test_the_app_role_cannot_change_the_schema_or_switch_rls_off(migrated_database_url, statement) -> None:
    with app_sql(migrated_database_url) as db:
        error = db.refused(statement)
    assert isinstance(error, errors.InsufficientPrivilege), error


def test_turning_row_security_off_does_not_lift_it_for_the_app_role(migrated_database_url) -> None:
    with app_sql(migrated_database_url) as db:
        db.one("SELECT set_config('row_security', 'off', true)")
        error = db.refused("SELECT count(*) FROM candidates")
    assert isinstance(error, errors.InsufficientPrivilege)
    assert "row-level security" in str(error)


def test_the_migration_creates_the_role_only_when_missing_and_refuses_one_that_bypasses_rls() -> None:
    """Revision 0009's own create-if-missing block, on a role of another name (the real one exists)."""
    revision = next(r for r in sqlscripts.revisions() if r.revision == "0009")
    [block] = [
        s.code
        for s in split_statements(sqlscripts.offline_sql(revision, "up"))
        if s.code.startswith("DO") and "CREATE ROLE" in s.code
    ]
    probe = f"mobility_rls_probe_{secrets.token_hex(4)}"
    block = block.replace(APP_ROLE, probe)
    with psycopg.connect(PG_ADMIN_URL) as conn:
        conn.execute(block)
        conn.execute(block)  # a second time: the role is there, nothing happens
        attributes = conn.execute(
            "SELECT rolcanlogin, rolsuper, rolbypassrls, rolpassword IS NULL"
            " FROM pg_authid WHERE rolname = %s",
            (probe,),
        ).fetchone()
        assert attributes == (True, False, False, True)
        conn.execute(f"ALTER ROLE {probe} BYPASSRLS")
        with pytest.raises(errors.RaiseException, match="BYPASSRLS"):
            conn.execute(block)
        conn.rollback()  # the role was never committed
