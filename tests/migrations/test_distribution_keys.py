"""Revision 0015 (keys Citus could distribute) on a database full of rows, on both databases: up, down
and up again, losing nothing; on SQLite every table it touches is rebuilt (batch mode) with its rows."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from mobility.models import metadata
from mobility.ops import migrations, sqlscripts
from tests.migrations.support import schema_snapshot, sync_engine
from tests.sqlscripts.support import psql_file, schema

TABLES = metadata.tables
BEFORE, AFTER = "0014", "0015"
NOW = datetime(2026, 3, 2, 9, 30, 15, 250000, tzinfo=UTC)

# Every table 0015 changes, and what it does to them.
DISTRIBUTED = (
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
    "invoices",
    "payments",
    "notifications",
    "settings",
    "candidate_documents",
    "user_invitations",
    "user_tenants",
    "audit_logs",
)
NEW_TABLES = ("certificate_codes", "invitation_tokens", "system_audit_logs")


def _as_migrated(connection: Connection, name: str) -> sa.Table:
    """The model's table with only the columns the database has at its revision: 0015 adds no column
    to the tables it touches, but later revisions do (0016: notifications' dedupeKey, language, ...)."""
    present = {column["name"] for column in sa.inspect(connection).get_columns(name)}
    return sa.Table(
        name, sa.MetaData(), *(column._copy() for column in TABLES[name].columns if column.name in present)
    )


def _fill(connection: Connection) -> dict[str, uuid.UUID]:
    """Rows in every table 0015 touches, in two tenants. Through the models' tables, as the database at
    0014 has them (Core checks no constraint: the database does)."""
    tables: dict[str, sa.Table] = {}

    def add(table: str, **values: Any) -> uuid.UUID:
        values.setdefault("id", uuid.uuid4())
        if table not in tables:
            tables[table] = _as_migrated(connection, table)
        connection.execute(tables[table].insert().values(**values))
        return values["id"]

    user = add("users", email="invitee@example.test", updatedAt=NOW)
    role = add("roles", name="Trainer", updatedAt=NOW)
    made: dict[str, uuid.UUID] = {"user": user}
    for n, code in enumerate(("WTI", "PAC")):
        t = add("tenants", name=f"Institute {code}", code=code)
        made[code] = t
        by = {"tenantId": t}
        agent = add("agents", code=f"AG{n}", name="Agent", **by)
        broker = add("brokers", code=f"BR{n}", name="Broker", **by)
        candidate = add(
            "candidates",
            referenceNumber=f"{code}-1",
            firstName="Mereani",
            lastName="Vāka",
            agentId=agent,
            brokerId=broker,
            **by,
        )
        course = add("courses", code=f"HORT{n}", title="Horticulture", **by)
        enrollment = add("enrollments", courseId=course, candidateId=candidate, **by)
        add(
            "attendance_records",
            enrollmentId=enrollment,
            sessionDate=date(2026, 3, 2),
            status="present",
            **by,
        )
        add(
            "assessments",
            enrollmentId=enrollment,
            title="Final",
            type="final",
            score=Decimal("80"),
            maxScore=Decimal("100"),
            **by,
        )
        add(
            "certificates",
            enrollmentId=enrollment,
            certificateNumber=f"{code}-C1",
            verificationCode=f"public-code-{code}",
            issuedAt=NOW,
            **by,
        )
        add("vetting_records", candidateId=candidate, checkType="medical", **by)
        placement = add(
            "placements", candidateId=candidate, employerName="Orchard", country="AU", position="Picker", **by
        )
        invoice = add(
            "invoices",
            billToType="employer",
            billToName="Orchard",
            currency="FJD",
            placementId=placement,
            **by,
        )
        add(
            "payments",
            direction="incoming",
            partyType="employer",
            amount=Decimal("150.00"),
            currency="FJD",
            method="cash",
            invoiceId=invoice,
            placementId=placement,
            **by,
        )
        add("notifications", channel="email", template="welcome", recipientId=user, **by)
        add("settings", key="vetting.requiredChecks", value=["medical"], **by)
        add(
            "candidate_documents",
            candidateId=candidate,
            type="passport",
            fileName="p.pdf",
            contentType="application/pdf",
            sizeBytes=10,
            sha256="0" * 64,
            storageKey=f"documents/{code}",
            **by,
        )
        add("user_tenants", userId=user, roleId=role, **by)
        add("user_invitations", userId=user, tokenHash=f"{n}" * 64, expiresAt=NOW + timedelta(days=3), **by)
        add("user_invitations", userId=user, tokenHash=None, roleId=role, expiresAt=NOW, **by)
        add("audit_logs", action="setting.create", entityType="settings", createdAt=NOW, **by)
    # Trail entries without a tenant: the seed's global role, a merge.
    for action in ("role.create", "user.merge"):
        made[action] = add(
            "audit_logs",
            tenantId=None,
            action=action,
            entityType="users",
            after={"why": "ünïcødé"},
            createdAt=NOW,
        )
    return made


def _rows(engine: Engine, tables: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """Each table's rows, in the columns the database has at this revision (later revisions add
    columns to the models' tables: 0017 the partners' suspension, 0018 the candidates' keys)."""
    with engine.connect() as connection:
        rows = {}
        for name in tables:
            table = _as_migrated(connection, name)
            rows[name] = [
                dict(row._mapping) for row in connection.execute(sa.select(table).order_by(table.c.id))
            ]
        return rows


def _primary_keys(engine: Engine) -> dict[str, list[str]]:
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        return {name: inspector.get_pk_constraint(name)["constrained_columns"] for name in DISTRIBUTED}


def test_rows_survive_0015_up_down_and_up_again(empty_database_url: str) -> None:
    migrations.upgrade(empty_database_url, BEFORE)
    with sync_engine(empty_database_url, foreign_keys=True) as engine:
        at_0014 = schema_snapshot(engine)
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("SET LOCAL mobility.system = 'on'")
            made = _fill(connection)
        before = _rows(engine, DISTRIBUTED)
        assert all(before[name] for name in DISTRIBUTED)
        without_tenant = [row for row in before["audit_logs"] if row["tenantId"] is None]
        assert {row["id"] for row in without_tenant} == {made["role.create"], made["user.merge"]}

        for _ in range(2):  # twice: a downgraded database upgrades again as the first time
            migrations.upgrade(empty_database_url, AFTER)
            assert _primary_keys(engine) == {name: ["tenantId", "id"] for name in DISTRIBUTED}
            after = _rows(engine, (*DISTRIBUTED, *NEW_TABLES))
            # Every row is still there, as it was, but the trail entries without a tenant: moved.
            for name in DISTRIBUTED:
                expected = before[name]
                if name == "audit_logs":
                    expected = [row for row in expected if row["tenantId"] is not None]
                assert after[name] == expected, name
            assert after["system_audit_logs"] == [
                {key: value for key, value in row.items() if key != "tenantId"} for row in without_tenant
            ]
            # The global keys of the existing rows, each for its row's tenant.
            assert {(r["tenantId"], r["verificationCode"]) for r in after["certificate_codes"]} == {
                (r["tenantId"], r["verificationCode"]) for r in before["certificates"]
            }
            assert {(r["tenantId"], r["tokenHash"]) for r in after["invitation_tokens"]} == {
                (r["tenantId"], r["tokenHash"]) for r in before["user_invitations"] if r["tokenHash"]
            }

            migrations.downgrade(empty_database_url, BEFORE)
            assert _rows(engine, DISTRIBUTED) == before
            assert schema_snapshot(engine) == at_0014


@pytest.mark.postgres_only
def test_the_sql_scripts_of_0015_move_the_same_rows_and_rerun_cleanly(empty_database_url: str) -> None:
    """migrations/sql/15_*: what a DBA applies with psql does what the revision does, with rows, and a
    second run of either script changes nothing."""
    [revision] = [r for r in sqlscripts.revisions() if r.revision == AFTER]
    up, down = (sqlscripts.SQL_DIR / f"{revision.stem}.{direction}.sql" for direction in ("up", "down"))
    migrations.upgrade(empty_database_url, BEFORE)
    with sync_engine(empty_database_url) as engine:
        with engine.begin() as connection:
            _fill(connection)
        before = _rows(engine, DISTRIBUTED)
        at_0014 = schema(empty_database_url)

        psql_file(empty_database_url, up)
        after = _rows(engine, (*DISTRIBUTED, *NEW_TABLES))
        at_0015 = schema(empty_database_url)
        psql_file(empty_database_url, up)
        assert _rows(engine, (*DISTRIBUTED, *NEW_TABLES)) == after
        assert schema(empty_database_url) == at_0015
        assert (
            len(after["system_audit_logs"]) == 2 and after["certificate_codes"] and after["invitation_tokens"]
        )

        psql_file(empty_database_url, down)
        psql_file(empty_database_url, down)
        assert _rows(engine, DISTRIBUTED) == before
        assert schema(empty_database_url) == at_0014
