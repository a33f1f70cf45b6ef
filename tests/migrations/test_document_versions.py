"""Revision 0021 (documents' versions and review) with documents in the table, on both databases: up,
down and up again with every value kept; the downgrade refuses, changing nothing, while a version is
superseded or a review holds what verifiedBy/verifiedAt cannot (a rejection's reason), and goes down
when a document was only verified; the SQL scripts rerun cleanly (PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from mobility.models import metadata
from mobility.ops import migrations, sqlscripts
from tests.migrations.support import schema_snapshot, sync_engine
from tests.sqlscripts.support import psql_file, schema

TABLES = metadata.tables
BEFORE, AFTER = "0020", "0021"
TABLE = "candidate_documents"
NEW_COLUMNS = ("reviewedBy", "reviewedAt", "reviewReason", "supersededAt", "supersededById")
NOW = datetime(2026, 3, 2, 9, 30, 15, 250000, tzinfo=UTC)


def _system(connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL mobility.system = 'on'")


def _fill(connection) -> dict[str, uuid.UUID]:
    def add(table: str, **values: Any) -> uuid.UUID:
        values.setdefault("id", uuid.uuid4())
        connection.execute(TABLES[table].insert().values(**values))
        return values["id"]

    tenant = add("tenants", name="Institute WTI", code="WTI")
    user = add("users", email="staff@example.org", name="Staff", status="active", tenantId=tenant)
    candidate = add(
        "candidates", referenceNumber="WTI-2026-000001", firstName="Mere", lastName="Vāka", tenantId=tenant
    )
    ids = {}
    for n, (kind, status) in enumerate(
        (("passport", "verified"), ("medical", "pending"), ("visa", "rejected"))
    ):
        ids[kind] = add(
            TABLE,
            tenantId=tenant,
            candidateId=candidate,
            type=kind,
            fileName=f"scän {n}.pdf",
            contentType="application/pdf",
            sizeBytes=1234 + n,
            sha256=f"{n}" * 64,
            storageKey=f"{tenant}/sha256/{n}{n}/{n}" + f"{n}" * 63,
            documentNumber="FB123456" if kind == "passport" else None,
            issuedOn=date(2024, 1, 2),
            expiresOn=date(2034, 1, 1),
            status=status,
            verifiedBy=user if status == "verified" else None,
            verifiedAt=NOW if status == "verified" else None,
            notes="ünïcødé",
        )
    ids["user"] = user
    return ids


def _rows(engine: Engine) -> list[dict]:
    with engine.connect() as connection:
        present = {column["name"] for column in sa.inspect(connection).get_columns(TABLE)}
        table = TABLES[TABLE]
        columns = [column for column in table.c if column.name in present]
        return [dict(row._mapping) for row in connection.execute(sa.select(*columns).order_by(table.c.id))]


def _set(engine: Engine, document: uuid.UUID, **values: Any) -> None:
    table = TABLES[TABLE]
    with engine.begin() as connection:
        _system(connection)
        # updatedAt as it was: the table's onupdate would stamp the clock.
        connection.execute(
            table.update().where(table.c.id == document).values(updatedAt=table.c.updatedAt, **values)
        )


def test_rows_survive_0021_and_the_downgrade_refuses_to_lose_versions_or_reviews(
    empty_database_url: str,
) -> None:
    migrations.upgrade(empty_database_url, BEFORE)
    with sync_engine(empty_database_url, foreign_keys=True) as engine:
        at_before = schema_snapshot(engine)
        with engine.begin() as connection:
            _system(connection)
            ids = _fill(connection)
        before = _rows(engine)
        migrations.upgrade(empty_database_url, AFTER)
        after = _rows(engine)
        assert [{k: v for k, v in row.items() if k not in NEW_COLUMNS} for row in after] == before
        assert all(row[column] is None for row in after for column in NEW_COLUMNS)

        # A verification only (who and when as verifiedBy/verifiedAt say): nothing to lose, it goes down.
        _set(engine, ids["passport"], reviewedBy=ids["user"], reviewedAt=NOW)
        migrations.downgrade(empty_database_url, BEFORE)
        assert _rows(engine) == before
        assert schema_snapshot(engine) == at_before

        migrations.upgrade(empty_database_url, AFTER)
        for values in (
            {"supersededAt": NOW, "supersededById": ids["passport"]},  # an older version
            {"reviewedBy": ids["user"], "reviewedAt": NOW, "reviewReason": "Unreadable"},  # a rejection
        ):
            document = ids["medical"] if "supersededAt" in values else ids["visa"]
            _set(engine, document, **values)
            kept = _rows(engine)
            with pytest.raises(Exception, match="0021 downgrade refused"):
                migrations.downgrade(empty_database_url, BEFORE)
            assert _rows(engine) == kept  # refused, changing nothing
            _set(engine, document, **dict.fromkeys(values))
        migrations.downgrade(empty_database_url, BEFORE)
        assert _rows(engine) == before


@pytest.mark.postgres_only
def test_the_sql_scripts_of_0021_rerun_cleanly(empty_database_url: str) -> None:
    [revision] = [r for r in sqlscripts.revisions() if r.revision == AFTER]
    up, down = (sqlscripts.SQL_DIR / f"{revision.stem}.{direction}.sql" for direction in ("up", "down"))
    migrations.upgrade(empty_database_url, BEFORE)
    with sync_engine(empty_database_url) as engine:
        with engine.begin() as connection:
            ids = _fill(connection)
        before = _rows(engine)
        at_before = schema(empty_database_url)
        psql_file(empty_database_url, up)
        at_after = schema(empty_database_url)
        psql_file(empty_database_url, up)
        assert schema(empty_database_url) == at_after != at_before
        _set(engine, ids["medical"], supersededAt=NOW, supersededById=ids["passport"])
        with pytest.raises(Exception, match="0021 downgrade refused"):
            psql_file(empty_database_url, down)
        assert schema(empty_database_url) == at_after
        _set(engine, ids["medical"], supersededAt=None, supersededById=None)
        psql_file(empty_database_url, down)
        psql_file(empty_database_url, down)
        assert _rows(engine) == before
        assert schema(empty_database_url) == at_before
