"""Revision 0019 (merged candidates) with rows in candidates and what refers to them, on both
databases: up, down and up again, every other value kept; the downgrade refuses, changing nothing,
while a candidate is merged (the older schema would show the tombstone as a live record)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from mobility.models import metadata
from mobility.ops import migrations, sqlscripts
from tests.migrations.support import schema_snapshot, sync_engine
from tests.sqlscripts.support import psql_file, schema

TABLES = metadata.tables
BEFORE, AFTER = "0018", "0019"
NEW_COLUMNS = ("mergedIntoId", "mergedAt", "mergedBy")
NOW = datetime(2026, 3, 2, 9, 30, 15, 250000, tzinfo=UTC)


def _system(connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL mobility.system = 'on'")


def _fill(connection) -> dict[str, uuid.UUID]:
    def add(table: str, **values) -> uuid.UUID:
        values.setdefault("id", uuid.uuid4())
        connection.execute(TABLES[table].insert().values(**values))
        return values["id"]

    tenant = add("tenants", name="Institute WTI", code="WTI")
    made = {}
    for n in range(2):
        made[f"candidate{n}"] = add(
            "candidates",
            tenantId=tenant,
            referenceNumber=f"WTI-2026-00000{n}",
            firstName="Mereani",
            lastName="Vāka",
            passportKey=f"FJ:FB00{n}",
        )
    course = add("courses", tenantId=tenant, code="AC1", title="Aged care")
    add("enrollments", tenantId=tenant, courseId=course, candidateId=made["candidate1"])
    return made


def _rows(engine: Engine) -> dict[str, list[dict]]:
    with engine.connect() as connection:
        present = {column["name"] for column in sa.inspect(connection).get_columns("candidates")}
        rows = {}
        for name in ("candidates", "enrollments"):
            table = TABLES[name]
            columns = [column for column in table.c if name != "candidates" or column.name in present]
            rows[name] = [
                dict(row._mapping) for row in connection.execute(sa.select(*columns).order_by(table.c.id))
            ]
        return rows


def test_rows_survive_0019_up_down_and_up_again(empty_database_url: str) -> None:
    migrations.upgrade(empty_database_url, BEFORE)
    with sync_engine(empty_database_url, foreign_keys=True) as engine:
        at_before = schema_snapshot(engine)
        with engine.begin() as connection:
            _system(connection)
            made = _fill(connection)
        before = _rows(engine)
        for _ in range(2):
            migrations.upgrade(empty_database_url, AFTER)
            after = _rows(engine)
            assert after["enrollments"] == before["enrollments"]
            assert [
                {k: v for k, v in row.items() if k not in NEW_COLUMNS} for row in after["candidates"]
            ] == (before["candidates"])
            assert all(row[column] is None for row in after["candidates"] for column in NEW_COLUMNS)

            # A merge: the downgrade refuses while it is there, and changes nothing.
            candidates = TABLES["candidates"]
            merged = (
                candidates.update()
                .where(candidates.c.id == made["candidate0"])
                .values(mergedIntoId=made["candidate1"], mergedAt=NOW, updatedAt=candidates.c.updatedAt)
            )
            with engine.begin() as connection:
                _system(connection)
                connection.execute(merged)
            tombstoned = _rows(engine)
            with pytest.raises(Exception, match="0019 downgrade refused"):
                migrations.downgrade(empty_database_url, BEFORE)
            assert _rows(engine) == tombstoned
            # The tombstone goes with its survivor (ON DELETE CASCADE) only when the survivor goes; here
            # the merge is undone by hand, and the downgrade then drops the columns.
            with engine.begin() as connection:
                _system(connection)
                connection.execute(
                    candidates.update()
                    .where(candidates.c.id == made["candidate0"])
                    .values(mergedIntoId=None, mergedAt=None, updatedAt=candidates.c.updatedAt)
                )
            migrations.downgrade(empty_database_url, BEFORE)
            assert _rows(engine) == before
            assert schema_snapshot(engine) == at_before


@pytest.mark.postgres_only
def test_the_sql_scripts_of_0019_rerun_cleanly(empty_database_url: str) -> None:
    [revision] = [r for r in sqlscripts.revisions() if r.revision == AFTER]
    up, down = (sqlscripts.SQL_DIR / f"{revision.stem}.{direction}.sql" for direction in ("up", "down"))
    migrations.upgrade(empty_database_url, BEFORE)
    with sync_engine(empty_database_url) as engine:
        with engine.begin() as connection:
            _system(connection)
            _fill(connection)
        before = _rows(engine)
        at_before = schema(empty_database_url)
        psql_file(empty_database_url, up)
        at_after = schema(empty_database_url)
        psql_file(empty_database_url, up)
        assert schema(empty_database_url) == at_after != at_before
        psql_file(empty_database_url, down)
        psql_file(empty_database_url, down)
        assert _rows(engine) == before
        assert schema(empty_database_url) == at_before
