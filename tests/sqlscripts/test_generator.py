"""The generator of migrations/sql: the committed scripts are current, each form is rewritten as documented,
unknown forms stop it, and the up scripts pass Squawk."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobility.ops import sqlscripts
from mobility.ops.sqlscripts import Revision, UnsupportedStatement, rewrite, split_statements
from tests.sqlscripts.support import squawk

pytestmark = pytest.mark.postgres_only

REVISION = Revision(3, "0003", "0002", "example", "An example.", Path("0003_example.py"))


@pytest.fixture(scope="module")
def scripts() -> list[sqlscripts.SqlScript]:
    return sqlscripts.generate()


def _body(statement: str, direction: str = "up", *, lint: bool = False) -> str:
    """What the generator makes of one statement inside a revision's transaction."""
    pieces = rewrite(REVISION, direction, f"BEGIN;\n\n{statement};\n\nCOMMIT;\n")
    # Drop BEGIN, the prologue (version table, guard) and COMMIT.
    first = 3 if direction == "up" else 2
    return "\n\n".join(p.lint if lint and p.lint is not None else p.sql for p in pieces[first:-1])


def test_committed_scripts_are_up_to_date(scripts, backend) -> None:
    problems = sqlscripts.differences(scripts)
    assert not problems, (
        "migrations/sql is out of date with the Alembic revisions:\n  "
        + "\n  ".join(problems)
        + f"\nRegenerate with `.venv/bin/{sqlscripts.REGENERATE}` and commit the result."
    )


def test_every_revision_has_a_pair(scripts, backend) -> None:
    names = {script.name for script in scripts}
    revisions = sqlscripts.revisions()
    assert len(revisions) > 10
    for revision in revisions:
        assert {f"{revision.stem}.up.sql", f"{revision.stem}.down.sql"} <= names


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (
            "CREATE TABLE t (\n    id UUID NOT NULL\n)",
            "CREATE TABLE IF NOT EXISTS t (\n    id UUID NOT NULL\n);",
        ),
        ('CREATE INDEX "t_a_idx" ON t (a)', 'CREATE INDEX IF NOT EXISTS "t_a_idx" ON t (a);'),
        ("CREATE UNIQUE INDEX t_a_key ON t (a)", "CREATE UNIQUE INDEX IF NOT EXISTS t_a_key ON t (a);"),
        (
            'ALTER TABLE users ADD COLUMN "tenantId" UUID',
            'ALTER TABLE users ADD COLUMN IF NOT EXISTS "tenantId" UUID;',
        ),
        (
            "ALTER TABLE users ALTER COLUMN status SET DEFAULT 'active'",
            "ALTER TABLE users ALTER COLUMN status SET DEFAULT 'active';",
        ),
        ("ALTER TABLE users VALIDATE CONSTRAINT c", "ALTER TABLE users VALIDATE CONSTRAINT c;"),
        ("ALTER TABLE users DROP COLUMN status", "ALTER TABLE IF EXISTS users DROP COLUMN IF EXISTS status;"),
        (
            'ALTER TABLE users DROP CONSTRAINT "u_fkey"',
            'ALTER TABLE IF EXISTS users DROP CONSTRAINT IF EXISTS "u_fkey";',
        ),
        ("DROP TABLE tenants", "DROP TABLE IF EXISTS tenants;"),
        ('DROP TYPE "PaymentStatus"', 'DROP TYPE IF EXISTS "PaymentStatus";'),
        ("DROP INDEX t_a_idx", "DROP INDEX IF EXISTS t_a_idx;"),
        ("ALTER TYPE \"S\" ADD VALUE 'x'", "ALTER TYPE \"S\" ADD VALUE IF NOT EXISTS 'x';"),
        (
            "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql",
            "CREATE OR REPLACE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;",
        ),
        ("COMMENT ON TABLE t IS 'a; b'", "COMMENT ON TABLE t IS 'a; b';"),
        (
            "CREATE TRIGGER t_no_update BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f()",
            "CREATE OR REPLACE TRIGGER t_no_update BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f();",
        ),
        ("DROP TRIGGER t_no_update ON t", "DROP TRIGGER IF EXISTS t_no_update ON t;"),
        ("DROP POLICY tenant_isolation ON t", "DROP POLICY IF EXISTS tenant_isolation ON t;"),
        ("ALTER TABLE t FORCE ROW LEVEL SECURITY", "ALTER TABLE t FORCE ROW LEVEL SECURITY;"),
        ("ALTER TABLE t NO FORCE ROW LEVEL SECURITY", "ALTER TABLE t NO FORCE ROW LEVEL SECURITY;"),
        ("GRANT SELECT, INSERT ON TABLE t TO app", "GRANT SELECT, INSERT ON TABLE t TO app;"),
        ("REVOKE ALL ON TABLE t FROM app", "REVOKE ALL ON TABLE t FROM app;"),
        (
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO app",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO app;",
        ),
        (
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM app",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM app;",
        ),
        ("SET LOCAL lock_timeout = '5s'", "SET LOCAL lock_timeout = '5s';"),
    ],
)
def test_statement_forms(statement: str, expected: str, backend) -> None:
    assert _body(statement) == expected


def test_multi_action_alter_table_is_split(backend) -> None:
    body = _body(
        'ALTER TABLE roles ADD COLUMN "tenantId" UUID, ADD COLUMN "systemRole" BOOLEAN DEFAULT false NOT NULL'
    )
    assert body == (
        'ALTER TABLE roles ADD COLUMN IF NOT EXISTS "tenantId" UUID;\n\n'
        'ALTER TABLE roles ADD COLUMN IF NOT EXISTS "systemRole" BOOLEAN DEFAULT false NOT NULL;'
    )


def test_constraints_and_types_are_guarded_by_the_catalog(backend) -> None:
    fk = 'ALTER TABLE users ADD CONSTRAINT "users_tenantId_fkey" FOREIGN KEY("tenantId") REFERENCES tenants (id) NOT VALID'
    body = _body(fk)
    assert body.startswith("DO $$\nBEGIN\n    IF NOT EXISTS (SELECT FROM pg_constraint WHERE ")
    assert "conrelid = 'users'::regclass AND conname = 'users_tenantId_fkey'" in body
    assert f"        {fk};\n    END IF;\nEND\n$$;" in body
    # Squawk cannot see into a DO block: it is shown the statement itself.
    assert _body(fk, lint=True) == fk + ";"

    enum = "CREATE TYPE \"PaymentStatus\" AS ENUM ('pending', 'paid')"
    body = _body(enum)
    assert "typname = 'PaymentStatus' AND typnamespace = current_schema()::regnamespace" in body
    assert _body(enum, lint=True) == enum + ";"


def test_a_redefined_constraint_runs_once_per_revision(backend) -> None:
    """DROP CONSTRAINT IF EXISTS c + ADD CONSTRAINT c may change c's definition: a lookup by name cannot
    tell that from "done", so the pair runs while the database is not yet at the target revision."""
    drop = 'ALTER TABLE roles DROP CONSTRAINT IF EXISTS "roles_tenantId_fkey"'
    add = 'ALTER TABLE roles ADD CONSTRAINT "roles_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES tenants (id) NOT VALID'
    statement = (
        'ALTER TABLE roles\n    DROP CONSTRAINT IF EXISTS "roles_tenantId_fkey",\n    '
        + add[len("ALTER TABLE roles ") :]
    )
    body = _body(statement)
    assert "IF (SELECT max(version_num) FROM alembic_version) IS DISTINCT FROM '0003' THEN" in body
    assert f"        {drop};\n        {add};\n    END IF;" in body
    assert _body(statement, lint=True) == f"{drop};\n\n{add};"
    # Downgrading, the target is the previous revision.
    assert "IS DISTINCT FROM '0002' THEN" in _body(statement, "down")


def test_a_redefinition_may_cascade_and_still_runs_once(backend) -> None:
    """0015 swaps primary keys that foreign keys depend on: DROP ... CASCADE, ADD, once per revision."""
    statement = (
        "ALTER TABLE agents DROP CONSTRAINT IF EXISTS agents_pkey CASCADE, "
        "ADD CONSTRAINT agents_pkey PRIMARY KEY (id)"
    )
    body = _body(statement)
    assert "IF (SELECT max(version_num) FROM alembic_version) IS DISTINCT FROM '0003' THEN" in body
    assert "        ALTER TABLE agents DROP CONSTRAINT IF EXISTS agents_pkey CASCADE;\n" in body
    assert "        ALTER TABLE agents ADD CONSTRAINT agents_pkey PRIMARY KEY (id);\n    END IF;" in body


_COPY = (
    'INSERT INTO keys (id, "tenantId", code) SELECT id, "tenantId", code FROM items WHERE code IS NOT NULL\n'
    "ON CONFLICT DO NOTHING"
)
_MOVE = 'DELETE FROM items WHERE "tenantId" IS NULL AND EXISTS (SELECT 1 FROM moved m WHERE m.id = items.id)'


@pytest.mark.parametrize("statement", [_COPY, _MOVE], ids=["copy", "delete-copied"])
def test_a_copy_or_move_of_rows_runs_once_per_revision(statement: str, backend) -> None:
    """INSERT ... SELECT ... ON CONFLICT DO NOTHING adds nothing twice, and a DELETE of rows another table
    holds removes nothing that was not copied; both run only before the script's target revision (the
    rows or tables they read may be gone after it)."""
    body = _body(statement)
    assert body.startswith(
        "DO $$\nBEGIN\n    IF (SELECT max(version_num) FROM alembic_version) IS DISTINCT FROM '0003'"
    )
    assert f"        {statement.splitlines()[0]}" in body
    assert _body(statement, lint=True) == statement + ";"
    assert "IS DISTINCT FROM '0002' THEN" in _body(statement, "down")


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO keys (id) SELECT id FROM items",  # no ON CONFLICT: a rerun would fail or double
        "INSERT INTO keys (id) VALUES ('x') ON CONFLICT DO NOTHING",  # not a copy
        "INSERT INTO keys (id) SELECT id FROM items ON CONFLICT (id) DO UPDATE SET id = excluded.id",
        'DELETE FROM items WHERE "tenantId" IS NULL',  # not only what was copied
    ],
)
def test_other_inserts_and_deletes_fail_loudly(statement: str, backend) -> None:
    with pytest.raises(UnsupportedStatement, match="no idempotent form known for this (INSERT|DELETE)"):
        _body(statement)


def test_a_policy_is_guarded_by_the_catalog(backend) -> None:
    policy = "CREATE POLICY tenant_isolation ON t FOR ALL USING (a = 1) WITH CHECK (a = 1)"
    body = _body(policy)
    assert (
        "IF NOT EXISTS (SELECT FROM pg_policy WHERE polrelid = 't'::regclass AND polname = 'tenant_isolation')"
        in body
    )
    assert f"        {policy};\n    END IF;" in body
    assert _body(policy, lint=True) == policy + ";"


_ENSURE_ROLE = """DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN
        CREATE ROLE app LOGIN NOSUPERUSER NOBYPASSRLS;
    ELSIF EXISTS (SELECT FROM pg_roles WHERE rolname = 'app' AND (rolsuper OR rolbypassrls)) THEN
        RAISE EXCEPTION 'role app bypasses row-level security';
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$"""


def test_a_role_is_created_only_when_missing(backend) -> None:
    """A cluster-wide role: the revision's own create-if-missing DO block passes unchanged; Squawk is
    shown the CREATE ROLE."""
    assert _body(_ENSURE_ROLE) == _ENSURE_ROLE + ";"
    assert _body(_ENSURE_ROLE, lint=True) == "CREATE ROLE app LOGIN NOSUPERUSER NOBYPASSRLS;"
    minimal = (
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN "
        "CREATE ROLE app; END IF; END $$"
    )
    assert _body(minimal) == minimal + ";"


@pytest.mark.parametrize(
    "block",
    [
        # Another role than the one looked up.
        _ENSURE_ROLE.replace("CREATE ROLE app", "CREATE ROLE other"),
        # A password has no place in a migration.
        _ENSURE_ROLE.replace("NOBYPASSRLS;", "NOBYPASSRLS PASSWORD 'secret';"),
        # Anything else in the block.
        _ENSURE_ROLE.replace("NOBYPASSRLS;", "NOBYPASSRLS;\n        DROP TABLE users;"),
        _ENSURE_ROLE.replace("    NULL;", "    DELETE FROM users;"),
        # Swallowing every error.
        _ENSURE_ROLE.replace("duplicate_object OR unique_violation", "OTHERS"),
    ],
)
def test_other_role_blocks_fail_loudly(block: str, backend) -> None:
    with pytest.raises(UnsupportedStatement, match="no idempotent form known for this DO block"):
        _body(block)


_LEAKPROOF = """DO $leakproof$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        ALTER FUNCTION word_similarity_commutator_op(text, text) LEAKPROOF;
    ELSE
        RAISE NOTICE 'not a superuser';
    END IF;
END
$leakproof$"""


def test_marking_a_function_leakproof_as_a_superuser_is_kept_as_it_is(backend) -> None:
    """It sets a state: running it again changes nothing. Anything more in the block fails loudly."""
    assert _body(_LEAKPROOF) == _LEAKPROOF + ";"
    assert (
        _body(_LEAKPROOF.replace(" LEAKPROOF;", " NOT LEAKPROOF;"))
        == _LEAKPROOF.replace(" LEAKPROOF;", " NOT LEAKPROOF;") + ";"
    )
    for other in (
        _LEAKPROOF.replace("LEAKPROOF;", "LEAKPROOF;\n        DROP TABLE users;"),
        _LEAKPROOF.replace("RAISE NOTICE 'not a superuser';", "DELETE FROM users;"),
        _LEAKPROOF.replace("LEAKPROOF;", "SECURITY DEFINER;"),
    ):
        with pytest.raises(UnsupportedStatement, match="no idempotent form known for this DO block"):
            _body(other)


_CHECK = """DO $check$
DECLARE
    found integer;
BEGIN
    SELECT count(*) INTO found FROM users WHERE email = 'UPDATE users';
    IF found > 0 THEN
        RAISE EXCEPTION 'refused: % rows; DROP them first', found;
    END IF;
END
$check$"""


def test_a_read_only_check_and_a_table_lock_are_kept_as_they_are(backend) -> None:
    # Words that would write inside string literals do not count; running a check again only checks.
    assert _body(_CHECK) == _CHECK + ";"
    assert _body("LOCK TABLE users IN SHARE MODE") == "LOCK TABLE users IN SHARE MODE;"


@pytest.mark.parametrize(
    "block",
    [
        _CHECK.replace("IF found > 0 THEN", "UPDATE users SET email = lower(email);\n    IF found > 0 THEN"),
        _CHECK.replace("IF found > 0 THEN", "EXECUTE 'DELETE FROM users';\n    IF found > 0 THEN"),
        _CHECK.replace("IF found > 0 THEN", "PERFORM pg_sleep(1);\n    IF found > 0 THEN"),
        _CHECK.replace("$check$", "$$"),  # an untagged block is not a check
    ],
)
def test_a_check_that_could_change_anything_fails_loudly(block: str, backend) -> None:
    with pytest.raises(UnsupportedStatement, match="no idempotent form known for this DO block"):
        _body(block)


def test_concurrent_index_drops_an_invalid_leftover_first(backend) -> None:
    sql = 'BEGIN;\nCOMMIT;\nCREATE INDEX CONCURRENTLY "users_tenantId_email_idx" ON users ("tenantId", email);\nBEGIN;\nCOMMIT;\n'
    pieces = [p.sql for p in rewrite(REVISION, "up", sql)]
    index = pieces.index(
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_tenantId_email_idx" ON users ("tenantId", email);'
    )
    cleanup = pieces[index - 1]
    assert "DROP INDEX CONCURRENTLY IF EXISTS" in cleanup and "NOT i.indisvalid" in cleanup
    assert cleanup.endswith("\\gexec")


def test_version_table_follows_the_revision(backend) -> None:
    sql = "BEGIN;\nUPDATE alembic_version SET version_num='0003' WHERE alembic_version.version_num = '0002';\nCOMMIT;\n"
    text = "\n".join(p.sql for p in rewrite(REVISION, "up", sql))
    assert "CREATE TABLE IF NOT EXISTS alembic_version" in text
    assert "current_revision IS DISTINCT FROM '0002' AND current_revision IS DISTINCT FROM '0003'" in text
    assert "DELETE FROM alembic_version WHERE version_num <> '0003';" in text
    assert "INSERT INTO alembic_version (version_num) VALUES ('0003') ON CONFLICT DO NOTHING;" in text


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("BEGIN;\nUPDATE users SET status = 'active';\nCOMMIT;", "no idempotent form"),
        ("BEGIN;\nINSERT INTO tenants (id) VALUES ('x');\nCOMMIT;", "no idempotent form"),
        ("BEGIN;\nALTER TABLE users RENAME COLUMN a TO b;\nCOMMIT;", "unsupported ALTER TABLE action"),
        ("BEGIN;\nALTER TABLE users ADD UNIQUE (email);\nCOMMIT;", "unsupported ALTER TABLE action"),
        (
            "BEGIN;\nALTER TABLE users ALTER COLUMN a TYPE int USING a::int;\nCOMMIT;",
            "unsupported ALTER TABLE",
        ),
        ("BEGIN;\nCREATE INDEX ON users (email);\nCOMMIT;", "no idempotent form"),
        ("BEGIN;\nCREATE INDEX CONCURRENTLY i ON users (email);\nCOMMIT;", "inside a transaction"),
        ("BEGIN;\nDO $$ BEGIN PERFORM 1; END $$;\nCOMMIT;", "no idempotent form"),
        (
            "BEGIN;\nUPDATE alembic_version SET version_num='0009' WHERE alembic_version.version_num = '0002';\nCOMMIT;",
            "expected 0003",
        ),
        ("CREATE TABLE t (id int);", "BEGIN"),
    ],
)
def test_unknown_forms_fail_loudly(sql: str, why: str, backend) -> None:
    with pytest.raises(UnsupportedStatement, match=why):
        rewrite(REVISION, "up", sql)


def test_splitting_respects_quotes_and_comments(backend) -> None:
    sql = (
        "-- Running upgrade 0002 -> 0003\n\n"
        "-- why this index\nCREATE INDEX i ON t (a); -- trailing\n"
        "COMMENT ON TABLE t IS 'semi; colon';\n"
        "CREATE TABLE \"odd;name\" (a text DEFAULT E'it\\'s;');\n"
        "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n"
    )
    statements = split_statements(sql)
    assert [s.code.split()[0:2] for s in statements] == [
        ["CREATE", "INDEX"],
        ["COMMENT", "ON"],
        ["CREATE", "TABLE"],
        ["CREATE", "FUNCTION"],
    ]
    assert statements[0].comments == ("Running upgrade 0002 -> 0003", "why this index")
    assert statements[2].code.endswith("DEFAULT E'it\\'s;')")


def test_up_scripts_pass_squawk(scripts, tmp_path, backend) -> None:
    """Each committed up script passes Squawk (PostgreSQL 15, .squawk.toml), and so does each statement
    the script guards in a DO block, shown to Squawk bare: a finding is taken only where KNOWN_FINDINGS
    explains it in the script."""
    failures = []
    for script in (s for s in scripts if s.direction == "up"):
        committed = sqlscripts.SQL_DIR / script.name
        bare = tmp_path / "bare" / script.name
        bare.parent.mkdir(exist_ok=True)
        bare.write_text(script.lint_text, encoding="utf-8")
        for path in (committed, bare):
            result = squawk(path)
            if result.returncode != 0:
                failures.append(f"{path}:\n{result.stdout}{result.stderr}")
    assert not failures, (
        "Squawk findings (fix the revision, or explain them in KNOWN_FINDINGS):\n" + "\n".join(failures)
    )
