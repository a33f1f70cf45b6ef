"""How the revisions treat a live PostgreSQL database: locks, rewrites, reruns, offline SQL."""

from __future__ import annotations

import io
import re
import uuid

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import Engine

from mobility.core.models import utcnow
from mobility.ops import migrations
from mobility.ops.legacy_schema import legacy_metadata
from tests.migrations.support import schema_snapshot, sync_engine
from tests.support.databases import libpq_url

pytestmark = pytest.mark.postgres_only


def _filenodes(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table: connection.execute(sa.text(f"SELECT pg_relation_filenode('{table}')")).scalar_one()
            for table in ("roles", "users")
        }


def _fill(engine: Engine) -> None:
    roles, users = legacy_metadata.tables["roles"], legacy_metadata.tables["users"]
    role = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(roles.insert().values(id=role, name="Trainer", updatedAt=utcnow()))
        connection.execute(
            users.insert(),
            [
                {"id": uuid.uuid4(), "email": f"u{n}@example.test", "roleId": role, "updatedAt": utcnow()}
                for n in range(50)
            ],
        )


def test_legacy_tables_are_altered_in_place_and_the_steps_can_be_rerun(empty_database_url: str) -> None:
    migrations.upgrade(empty_database_url, "0001")
    with sync_engine(empty_database_url) as engine:
        _fill(engine)
        before = _filenodes(engine)

        migrations.upgrade(empty_database_url, "0003")
        # Same storage: ADD COLUMN with constant defaults and NOT VALID constraints rewrote nothing.
        assert _filenodes(engine) == before
        with engine.connect() as connection:
            unvalidated = connection.execute(
                sa.text(
                    "SELECT conname FROM pg_constraint WHERE NOT convalidated "
                    "AND conrelid IN ('users'::regclass, 'roles'::regclass)"
                )
            ).all()
            index = connection.execute(
                sa.text(
                    "SELECT indisvalid AND indisready FROM pg_index "
                    "WHERE indexrelid = '\"users_tenantId_email_idx\"'::regclass"
                )
            ).scalar_one()
        assert unvalidated == [] and index is True
        at_0003 = schema_snapshot(engine)

        # As if 0002 and 0003 had failed after their first commit: running them again finishes cleanly.
        command.stamp(migrations.alembic_config(empty_database_url), "0001")
        migrations.upgrade(empty_database_url, "0003")
        assert schema_snapshot(engine) == at_0003

        migrations.downgrade(empty_database_url, "0001")
        assert _filenodes(engine) == before  # dropping columns rewrites nothing either


def test_a_blocked_migration_times_out_and_can_be_retried(empty_database_url: str) -> None:
    migrations.upgrade(empty_database_url, "0002")
    config = migrations.alembic_config(empty_database_url)
    config.attributes["lock_timeout"] = "200ms"
    with psycopg.connect(libpq_url(empty_database_url)) as blocker:
        # Any open transaction that has read `users` holds a lock ALTER TABLE must wait for.
        blocker.execute("SELECT count(*) FROM users")
        with pytest.raises(sa.exc.DBAPIError, match="lock timeout"):
            command.upgrade(config, "0003")
    with sync_engine(empty_database_url) as engine, engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "0002"
        columns = {column["name"] for column in sa.inspect(connection).get_columns("users")}
        assert "authProvider" not in columns  # the failed step left nothing behind
    command.upgrade(config, "0003")


def _offline_sql(direction: str, revisions: str) -> str:
    config = migrations.alembic_config("postgresql+asyncpg://offline@localhost/offline")
    config.output_buffer = io.StringIO()
    getattr(command, direction)(config, revisions, sql=True)
    return config.output_buffer.getvalue()


def test_every_revision_renders_as_offline_sql() -> None:
    upgrade = _offline_sql("upgrade", "0000:head")
    downgrade = _offline_sql("downgrade", "head:0000")

    # 0003's lock-sensitive steps, in order: NOT VALID under the table lock, commit, then validate and
    # build the index concurrently outside any transaction.
    step = upgrade[
        upgrade.index("Running upgrade 0002 -> 0003") : upgrade.index("Running upgrade 0003 -> 0004")
    ]
    positions = [
        step.index('ADD COLUMN IF NOT EXISTS "tenantId" uuid'),
        step.index("ON DELETE SET NULL NOT VALID"),
        step.index("COMMIT;"),
        step.index('VALIDATE CONSTRAINT "users_tenantId_fkey"'),
        step.index('CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_tenantId_email_idx"'),
        step.index("BEGIN;"),
    ]
    assert positions == sorted(positions)
    assert 'DROP INDEX CONCURRENTLY IF EXISTS "users_tenantId_email_idx"' in downgrade

    # Every enum type is created once and dropped once, shared ones included.
    created = re.findall(r'CREATE TYPE "(\w+)"', upgrade)
    dropped = re.findall(r'DROP TYPE "(\w+)"', downgrade)
    assert len(created) == len(set(created)) == 19
    assert sorted(created) == sorted(dropped)
