"""`mobility db adopt`: a legacy database of the right shape is stamped at the baseline and upgrades in
place; any other shape gets the list of differences and is left exactly as it was."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateTable

from mobility.ops import migrations
from mobility.ops.legacy_schema import legacy_metadata
from tests.cli.support import Cli, assert_ok, assert_one_line_error

ROLE_ID = "00000000-0000-4000-8000-000000000001"
USER_ID = "00000000-0000-4000-8000-0000000000a1"
SESSION_ID = "00000000-0000-4000-8000-0000000000b1"
LOG_ID = "00000000-0000-4000-8000-0000000000c1"


def _id(cli: Cli, value: str) -> str:
    # SQLite keeps UUIDs as 32 hex digits (SQLAlchemy's Uuid there).
    return value.replace("-", "") if cli.backend == "sqlite" else value


def make_legacy_database(cli: Cli) -> None:
    """What the Prisma app left: the baseline's tables with rows in them, and no alembic_version."""
    assert_ok(cli("db", "upgrade", "--to", migrations.BASELINE))
    role, user, session, log = (_id(cli, value) for value in (ROLE_ID, USER_ID, SESSION_ID, LOG_ID))
    cli.execute(
        f"""INSERT INTO roles (id, name, description, permissions, "updatedAt")
            VALUES ('{role}', 'Admin', 'legacy admin', '{{"all": true}}', CURRENT_TIMESTAMP)""",
        f"""INSERT INTO users (id, email, "passwordHash", name, "roleId", "updatedAt")
            VALUES ('{user}', 'old@wti.example', 'legacy-hash', 'Old Admin', '{role}', CURRENT_TIMESTAMP)""",
        f"""INSERT INTO sessions (id, "userId", token, "expiresAt")
            VALUES ('{session}', '{user}', 'tok-1', CURRENT_TIMESTAMP)""",
        f"""INSERT INTO activity_logs (id, "userId", action, details)
            VALUES ('{log}', '{user}', 'login', '{{"ok": true}}')""",
        "DROP TABLE alembic_version",
    )


def test_adopt_stamps_a_legacy_database_which_then_upgrades_in_place(cli: Cli) -> None:
    make_legacy_database(cli)
    cli.execute("CREATE TABLE unrelated_report (id INTEGER PRIMARY KEY)")
    assert "run `mobility db adopt`" in assert_ok(cli("db", "status")).stdout
    assert_one_line_error(cli("db", "upgrade"), "legacy tables but no migration revision", "db adopt")

    adopted = assert_ok(cli("db", "adopt"))
    assert "stamped revision 0000" in adopted.stdout
    assert "warning: unrelated_report: table not part of the legacy schema" in adopted.stderr
    assert cli.revision() == migrations.BASELINE
    assert "already adopted" in assert_ok(cli("db", "adopt")).stdout

    assert_ok(cli("db", "upgrade"))
    assert cli.revision() == migrations.head_revision()
    [(email, name, status, provider)] = cli.query('SELECT email, name, status, "authProvider" FROM users')
    assert (email, name, status, provider) == ("old@wti.example", "Old Admin", "active", "local")
    assert cli.query("SELECT token FROM sessions") == [("tok-1",)]
    assert cli.query("SELECT action FROM activity_logs") == [("login",)]
    assert "unrelated_report" in cli.tables()

    assert_one_line_error(cli("db", "adopt"), "is at revision", "not a legacy database")
    assert cli.revision() == migrations.head_revision()


def _retyped_activity_logs(cli: Cli) -> list[str]:
    """activity_logs with `action` as VARCHAR(50) instead of TEXT, and without its index."""
    if cli.backend == "postgresql":
        return [
            "ALTER TABLE activity_logs ALTER COLUMN action TYPE VARCHAR(50)",
            'DROP INDEX "activity_logs_userId_idx"',
        ]
    # SQLite cannot change a column's type: rebuild the table the way it was, but for that column.
    ddl = str(CreateTable(legacy_metadata.tables["activity_logs"]).compile(dialect=sqlite.dialect()))
    assert "action TEXT NOT NULL" in ddl
    return [
        "CREATE TABLE activity_logs_copy AS SELECT * FROM activity_logs",
        "DROP TABLE activity_logs",
        ddl.replace("action TEXT NOT NULL", "action VARCHAR(50) NOT NULL"),
        "INSERT INTO activity_logs SELECT * FROM activity_logs_copy",
        "DROP TABLE activity_logs_copy",
    ]


def test_adopt_lists_every_difference_and_changes_nothing(cli: Cli) -> None:
    make_legacy_database(cli)
    cli.execute(
        "ALTER TABLE users ADD COLUMN nickname TEXT",
        'ALTER TABLE sessions DROP COLUMN "userAgent"',
        *_retyped_activity_logs(cli),
        "CREATE TABLE tenants (id INTEGER PRIMARY KEY)",
    )
    tables_before = cli.tables()

    result = cli("db", "adopt")

    assert result.exit_code != 0 and "Traceback" not in result.output
    header, *lines = result.stderr.strip().splitlines()
    assert (
        header == "error: the database does not have the legacy shape (5 differences); nothing was changed:"
    )
    assert sorted(line.strip() for line in lines) == sorted(
        [
            "activity_logs.action: type expected TEXT, found VARCHAR(50)",
            "activity_logs: missing index activity_logs_userId_idx (expected index (userId))",
            "sessions.userAgent: missing column (expected TEXT NULL)",
            "tenants: table of a later revision present (expected only the legacy tables)",
            "users.nickname: unexpected column (found TEXT NULL)",
        ]
    )
    assert cli.tables() == tables_before
    assert "alembic_version" not in tables_before
    assert cli.query("SELECT email, nickname FROM users") == [("old@wti.example", None)]


def test_adopt_refuses_a_database_without_legacy_tables(cli: Cli) -> None:
    if cli.backend == "sqlite":
        assert_one_line_error(cli("db", "adopt"), "database file", "does not exist")
        cli.query("SELECT 1")  # an empty SQLite file
    assert_one_line_error(cli("db", "adopt"), "nothing to adopt", "mobility db upgrade")
    assert cli.tables() == set()


# The legacy tables exactly as `prisma migrate` writes them for PostgreSQL: unique keys are UNIQUE
# INDEXes (not constraints), foreign keys come last, and Prisma keeps its own `_prisma_migrations`.
PRISMA_MIGRATION = [
    """CREATE TABLE "_prisma_migrations" ("id" VARCHAR(36) NOT NULL, "checksum" VARCHAR(64) NOT NULL,
       "finished_at" TIMESTAMPTZ, "migration_name" VARCHAR(255) NOT NULL, "logs" TEXT,
       "rolled_back_at" TIMESTAMPTZ, "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
       "applied_steps_count" INTEGER NOT NULL DEFAULT 0, CONSTRAINT "_prisma_migrations_pkey" PRIMARY KEY ("id"))""",
    """CREATE TABLE "roles" ("id" UUID NOT NULL, "name" TEXT NOT NULL, "description" TEXT, "permissions" JSONB,
       "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, "updatedAt" TIMESTAMP(3) NOT NULL,
       CONSTRAINT "roles_pkey" PRIMARY KEY ("id"))""",
    """CREATE TABLE "users" ("id" UUID NOT NULL, "email" TEXT NOT NULL, "passwordHash" TEXT, "name" TEXT,
       "roleId" UUID, "lastLoginAt" TIMESTAMP(3), "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
       "updatedAt" TIMESTAMP(3) NOT NULL, CONSTRAINT "users_pkey" PRIMARY KEY ("id"))""",
    """CREATE TABLE "sessions" ("id" UUID NOT NULL, "userId" UUID NOT NULL, "token" TEXT NOT NULL,
       "expiresAt" TIMESTAMP(3) NOT NULL, "ipAddress" TEXT, "userAgent" TEXT,
       "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, CONSTRAINT "sessions_pkey" PRIMARY KEY ("id"))""",
    """CREATE TABLE "activity_logs" ("id" UUID NOT NULL, "userId" UUID, "action" TEXT NOT NULL, "details" JSONB,
       "ipAddress" TEXT, "userAgent" TEXT, "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
       CONSTRAINT "activity_logs_pkey" PRIMARY KEY ("id"))""",
    'CREATE UNIQUE INDEX "roles_name_key" ON "roles"("name")',
    'CREATE UNIQUE INDEX "users_email_key" ON "users"("email")',
    'CREATE UNIQUE INDEX "sessions_token_key" ON "sessions"("token")',
    'CREATE INDEX "sessions_userId_idx" ON "sessions"("userId")',
    'CREATE INDEX "activity_logs_userId_idx" ON "activity_logs"("userId")',
    """ALTER TABLE "users" ADD CONSTRAINT "users_roleId_fkey" FOREIGN KEY ("roleId") REFERENCES "roles"("id")
       ON DELETE SET NULL ON UPDATE CASCADE""",
    """ALTER TABLE "sessions" ADD CONSTRAINT "sessions_userId_fkey" FOREIGN KEY ("userId") REFERENCES "users"("id")
       ON DELETE CASCADE ON UPDATE CASCADE""",
    """ALTER TABLE "activity_logs" ADD CONSTRAINT "activity_logs_userId_fkey" FOREIGN KEY ("userId")
       REFERENCES "users"("id") ON DELETE SET NULL ON UPDATE CASCADE""",
    f"""INSERT INTO roles VALUES ('{ROLE_ID}', 'Admin', 'legacy admin', '{{"all": true}}', now(), now())""",
    f"""INSERT INTO users VALUES ('{USER_ID}', 'old@wti.example', 'legacy-hash', 'Old Admin', '{ROLE_ID}',
        NULL, now(), now())""",
]


@pytest.mark.postgres_only
def test_a_database_made_by_prisma_is_adopted_upgraded_and_seeded(cli: Cli) -> None:
    # Sanity: the DDL above is what the baseline describes, but for the unique indexes.
    assert "UNIQUE (name)" in str(
        CreateTable(legacy_metadata.tables["roles"]).compile(dialect=postgresql.dialect())
    )
    cli.execute(*PRISMA_MIGRATION)

    adopted = assert_ok(cli("db", "adopt"))
    assert "warning: _prisma_migrations: table not part of the legacy schema" in adopted.stderr
    assert "unique index users_email_key (email) stands for the expected unique constraint" in adopted.stderr
    assert_ok(cli("db", "upgrade"))
    assert cli.revision() == migrations.head_revision()

    # The legacy app's own "Admin" role becomes the built-in one; nothing is duplicated.
    seeded = assert_ok(cli("seed"))
    assert "updated  role Admin (marked as system role)" in seeded.stdout
    assert cli.query("SELECT id::text, \"systemRole\" FROM roles WHERE name = 'Admin'") == [(ROLE_ID, True)]
    assert cli.query("SELECT COUNT(*) FROM users WHERE email = 'old@wti.example'") == [(1,)]
