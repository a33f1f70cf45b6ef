"""Revision 0017 (a partner's suspension) with rows in agents, brokers and what refers to them, on both
databases: up, down and up again, every other value kept; on SQLite the two tables are rebuilt (batch
mode) with their rows and the candidates' same-tenant references to them still holding."""

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
BEFORE, AFTER = "0016", "0017"
NEW_COLUMNS = ("suspensionReason", "suspendedAt", "suspendedBy")
PARTNERS = ("agents", "brokers")
NOW = datetime(2026, 3, 2, 9, 30, 15, 250000, tzinfo=UTC)


def _fill(connection) -> None:
    def add(table: str, **values: Any) -> uuid.UUID:
        values.setdefault("id", uuid.uuid4())
        connection.execute(TABLES[table].insert().values(**values))
        return values["id"]

    tenant = add("tenants", name="Institute WTI", code="WTI")
    for n in range(2):
        by = {"tenantId": tenant}
        agent = add(
            "agents",
            code=f"AG{n}",
            name="Agent Vāka",
            licenceNumber="RA/2023/045",
            licenceExpiry=date(2027, 1, 31),
            paymentTerms={"type": "flat", "amount": "250.00", "currency": "FJD", "dueDays": 30},
            status="suspended" if n else "active",
            notes="ünïcødé",
            **by,
        )
        broker = add("brokers", code=f"BR{n}", name="Broker", country="TO", status="inactive", **by)
        add(
            "candidates",
            referenceNumber=f"WTI-{n}",
            firstName="Mereani",
            lastName="Vāka",
            agentId=agent,
            brokerId=broker,
            **by,
        )


def _rows(engine: Engine, tables: tuple[str, ...] = (*PARTNERS, "candidates")) -> dict[str, list[dict]]:
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        rows = {}
        for name in tables:
            present = {column["name"] for column in inspector.get_columns(name)}
            table = TABLES[name]
            columns = [column for column in table.c if column.name in present]
            rows[name] = [
                dict(row._mapping) for row in connection.execute(sa.select(*columns).order_by(table.c.id))
            ]
        return rows


def test_rows_survive_0017_up_down_and_up_again(empty_database_url: str) -> None:
    migrations.upgrade(empty_database_url, BEFORE)
    with sync_engine(empty_database_url, foreign_keys=True) as engine:
        at_before = schema_snapshot(engine)
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("SET LOCAL mobility.system = 'on'")
            _fill(connection)
        before = _rows(engine)
        for _ in range(2):
            migrations.upgrade(empty_database_url, AFTER)
            after = _rows(engine)
            assert after["candidates"] == before["candidates"]
            for name in PARTNERS:
                assert [
                    {k: v for k, v in row.items() if k not in NEW_COLUMNS} for row in after[name]
                ] == before[name]
                assert all(row[column] is None for row in after[name] for column in NEW_COLUMNS)
            with engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.exec_driver_sql("SET LOCAL mobility.system = 'on'")
                connection.execute(
                    TABLES["agents"]
                    .update()
                    .where(TABLES["agents"].c.status == "suspended")
                    .values(
                        suspensionReason="Licence under review",
                        suspendedAt=NOW,
                        suspendedBy=uuid.uuid4(),
                        # As it was: the table's onupdate would stamp the clock.
                        updatedAt=TABLES["agents"].c.updatedAt,
                    )
                )
            migrations.downgrade(empty_database_url, BEFORE)
            assert _rows(engine) == before
            assert schema_snapshot(engine) == at_before


@pytest.mark.postgres_only
def test_the_sql_scripts_of_0017_rerun_cleanly(empty_database_url: str) -> None:
    [revision] = [r for r in sqlscripts.revisions() if r.revision == AFTER]
    up, down = (sqlscripts.SQL_DIR / f"{revision.stem}.{direction}.sql" for direction in ("up", "down"))
    migrations.upgrade(empty_database_url, BEFORE)
    with sync_engine(empty_database_url) as engine:
        with engine.begin() as connection:
            _fill(connection)
        before = _rows(engine)
        at_before = schema(empty_database_url)
        psql_file(empty_database_url, up)
        at_after = schema(empty_database_url)
        psql_file(empty_database_url, up)
        assert schema(empty_database_url) == at_after != at_before
        assert _rows(engine)["candidates"] == before["candidates"]
        psql_file(empty_database_url, down)
        psql_file(empty_database_url, down)
        assert _rows(engine) == before
        assert schema(empty_database_url) == at_before
