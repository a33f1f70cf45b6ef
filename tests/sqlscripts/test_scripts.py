"""The committed SQL scripts, applied with psql as a DBA would: idempotent, equal to Alembic at every step,
and the downs bring back the legacy baseline with its rows."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from mobility.ops import migrations, sqlscripts
from mobility.ops.legacy_schema import LEGACY_TABLES, legacy_metadata
from tests.sqlscripts.support import PsqlError, execute, psql_file, schema, schema_diff
from tests.support.databases import DatabaseFactory

pytestmark = pytest.mark.postgres_only

REVISIONS = sqlscripts.revisions()


def _script(revision: sqlscripts.Revision, direction: str):
    return sqlscripts.SQL_DIR / f"{revision.stem}.{direction}.sql"


@pytest.fixture(scope="session")
def alembic_schemas(backend: str, database_factory: DatabaseFactory) -> dict[str | None, str]:
    """The schema `alembic upgrade <rev>` gives, for every revision (None: an empty database)."""
    url = database_factory.create(backend, "alembic")
    schemas: dict[str | None, str] = {None: schema(url)}
    for revision in REVISIONS:
        migrations.upgrade(url, revision.revision)
        schemas[revision.revision] = schema(url)
    database_factory.drop(url)
    return schemas


def _apply_twice(url: str, path, expected: str, expected_name: str) -> None:
    psql_file(url, path)
    first = schema(url)
    assert first == expected, f"{path.name} differs from {expected_name}:\n" + schema_diff(
        expected, first, expected_name, path.name
    )
    psql_file(url, path)
    second = schema(url)
    assert second == first, f"running {path.name} a second time changed the schema:\n" + schema_diff(
        first, second, "first run", "second run"
    )


def _insert_legacy_rows(url: str) -> None:
    role, admin, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime(2024, 5, 1, 12, 30, 15, 123000)
    execute(
        url,
        """INSERT INTO roles (id, name, description, permissions, "updatedAt") VALUES
               (%s, 'Admin', 'Everything', '{"all": true}', %s), (%s, 'Trainer', NULL, NULL, %s)""",
        (role, now, uuid.uuid4(), now),
    )
    execute(
        url,
        """INSERT INTO users (id, email, "passwordHash", name, "roleId", "lastLoginAt", "updatedAt") VALUES
               (%s, 'admin@example.org', 'argon2id$x', 'Ada', %s, %s, %s),
               (%s, 'plain@example.org', NULL, NULL, NULL, NULL, %s)""",
        (admin, role, now, now, user, now),
    )
    execute(
        url,
        """INSERT INTO sessions (id, "userId", token, "expiresAt", "ipAddress") VALUES
               (%s, %s, 'token-1', %s, '10.0.0.1'), (%s, %s, 'token-2', %s, NULL)""",
        (uuid.uuid4(), admin, now, uuid.uuid4(), user, now),
    )
    execute(
        url,
        """INSERT INTO activity_logs (id, "userId", action, details) VALUES
               (%s, %s, 'login', '{"ok": true}'), (%s, NULL, 'system', NULL)""",
        (uuid.uuid4(), admin, uuid.uuid4()),
    )


def _legacy_rows(url: str) -> dict[str, list[tuple]]:
    """Every legacy row, in the legacy columns only."""
    rows = {}
    for name in LEGACY_TABLES:
        columns = ", ".join(f'"{column.name}"' for column in legacy_metadata.tables[name].columns)
        rows[name] = execute(url, f"SELECT {columns} FROM {name} ORDER BY id")
    return rows


def test_up_scripts_equal_alembic_at_every_step_and_rerun_cleanly(
    backend, database_factory, alembic_schemas
) -> None:
    url = database_factory.create(backend, "up")
    for revision in REVISIONS:
        _apply_twice(
            url,
            _script(revision, "up"),
            alembic_schemas[revision.revision],
            f"alembic upgrade {revision.revision}",
        )
        if revision.previous is None:
            _insert_legacy_rows(url)
            before = _legacy_rows(url)
    assert _legacy_rows(url) == before, "the up scripts changed legacy rows"
    user_columns = {
        row[0]
        for row in execute(
            url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
        )
    }
    if {"authProvider", "status"} <= user_columns:
        assert execute(url, 'SELECT DISTINCT "authProvider", status FROM users') == [("local", "active")]
    database_factory.drop(url)


def test_down_scripts_restore_the_baseline_and_keep_legacy_rows(
    backend, database_factory, alembic_schemas
) -> None:
    url = database_factory.create(backend, "down")
    baseline, *later = REVISIONS
    psql_file(url, _script(baseline, "up"))
    _insert_legacy_rows(url)
    before = _legacy_rows(url)
    for revision in later:
        psql_file(url, _script(revision, "up"))
    for revision in reversed(later):
        _apply_twice(
            url,
            _script(revision, "down"),
            alembic_schemas[revision.previous],
            f"alembic upgrade {revision.previous}",
        )
    assert schema(url) == alembic_schemas[baseline.revision]
    assert _legacy_rows(url) == before, "legacy rows did not survive the up-then-down round trip"
    _apply_twice(url, _script(baseline, "down"), alembic_schemas[None], "an empty database")
    database_factory.drop(url)


def test_scripts_refuse_a_database_at_another_revision(backend, database_factory) -> None:
    url = database_factory.create(backend, "guard")
    psql_file(url, _script(REVISIONS[0], "up"))
    execute(url, "UPDATE alembic_version SET version_num = 'elsewhere'")
    before = schema(url)
    for revision in REVISIONS[:2]:
        for direction in ("up", "down"):
            with pytest.raises(
                PsqlError, match="the database is at revision elsewhere.*apply the scripts in order"
            ):
                psql_file(url, _script(revision, direction))
            assert schema(url) == before
    database_factory.drop(url)


def test_a_failed_concurrent_index_build_is_redone(backend, database_factory, alembic_schemas) -> None:
    """CREATE INDEX CONCURRENTLY that fails half-way leaves an INVALID index; the rerun must replace it."""
    target = next(
        (r for r in REVISIONS if "CREATE INDEX CONCURRENTLY IF NOT EXISTS" in _script(r, "up").read_text()),
        None,
    )
    if target is None:
        pytest.skip("no revision builds an index concurrently")
    text = _script(target, "up").read_text()
    index = text.split("CREATE INDEX CONCURRENTLY IF NOT EXISTS ", 1)[1].split(" ON ", 1)[0]
    url = database_factory.create(backend, "invalid")
    for revision in REVISIONS[: REVISIONS.index(target)]:
        psql_file(url, _script(revision, "up"))
    _insert_legacy_rows(url)
    # A unique build over duplicate values fails and leaves the index behind, INVALID.
    with pytest.raises(Exception, match="could not create unique index"):
        execute(url, f"CREATE UNIQUE INDEX CONCURRENTLY {index} ON users ((1))")
    assert execute(url, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == [(1,)]
    psql_file(url, _script(target, "up"))
    assert execute(url, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == [(0,)]
    for revision in REVISIONS[REVISIONS.index(target) + 1 :]:
        psql_file(url, _script(revision, "up"))
    assert schema(url) == alembic_schemas[REVISIONS[-1].revision]
    database_factory.drop(url)
