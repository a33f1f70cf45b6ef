"""A legacy database full of rows goes to head, back to the baseline and to head again, losing nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from mobility.ops import migrations
from mobility.ops.legacy_schema import LEGACY_TABLES, legacy_metadata
from tests.migrations.support import schema_snapshot, sync_engine

ROLES, USERS, SESSIONS, ACTIVITY = (legacy_metadata.tables[name] for name in LEGACY_TABLES)
NAMES = [
    "Mereani Tuilagi-Vāka",
    "Sōsefo Fifita",
    "王芳",
    "Ülkü Şahin",
    "Ratu Josefa Iloilovatu",
    "Zoë O'Brien",
    "Наталья Иванова",
    "Tēvita 🌊 Kata",
    None,
]
BASE_TIME = datetime(2024, 2, 29, 23, 59, 58, 123000, tzinfo=UTC)  # millisecond precision, as Prisma's


def _at(minutes: int) -> datetime:
    return BASE_TIME + timedelta(minutes=minutes, milliseconds=7 * minutes)


def _fill_legacy_tables(connection: Connection) -> None:
    role_ids = [uuid.uuid4() for _ in range(6)]
    for number, role_id in enumerate(role_ids):
        connection.execute(
            ROLES.insert().values(
                id=role_id,
                name=["System Admin", "Admin", "Trainer", "Candidate", "Agent", "Recruteur (é)"][number],
                description=None if number % 3 == 0 else f"Rôle n°{number} — «ünïcødé»",
                # SQL NULL, a JSON document, and JSON with non-ASCII text.
                permissions=sa.null()
                if number == 2
                else {"can": ["read", "write"][: number % 3], "n": number},
                createdAt=_at(number),
                updatedAt=_at(number + 1),
            )
        )
    user_ids = [uuid.uuid4() for _ in range(30)]
    for number, user_id in enumerate(user_ids):
        connection.execute(
            USERS.insert().values(
                id=user_id,
                email=f"user{number}@example.test",
                passwordHash=None if number % 4 == 0 else f"$argon2id$v=19$m=65536,t=3,p=4${number}",
                name=NAMES[number % len(NAMES)],
                roleId=None if number % 5 == 0 else role_ids[number % len(role_ids)],
                lastLoginAt=None if number % 2 else _at(100 + number),
                createdAt=_at(10 + number),
                updatedAt=_at(20 + number),
            )
        )
    for number in range(40):
        connection.execute(
            SESSIONS.insert().values(
                id=uuid.uuid4(),
                userId=user_ids[number % len(user_ids)],
                token=f"sha256:{number:064x}",
                expiresAt=_at(1000 + number),
                ipAddress=None if number % 3 == 0 else f"2001:db8::{number:x}",
                userAgent=None if number % 2 else "Mozilla/5.0 (X11; Linux) “quoted” ✓",
                createdAt=_at(200 + number),
            )
        )
    for number in range(40):
        connection.execute(
            ACTIVITY.insert().values(
                id=uuid.uuid4(),
                userId=None if number % 7 == 0 else user_ids[number % len(user_ids)],
                action=["login", "logout", "password_change", "connexion réussie"][number % 4],
                details=sa.null() if number % 5 == 0 else {"attempt": number, "note": "ʻokay ✓", "ok": True},
                ipAddress=None if number % 2 else "203.0.113.7",
                userAgent=None,
                createdAt=_at(300 + number),
            )
        )


def _legacy_rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of the legacy tables, through their legacy columns only, in a stable order."""
    with engine.connect() as connection:
        return {
            table.name: [
                dict(row._mapping) for row in connection.execute(sa.select(table).order_by(table.c.id))
            ]
            for table in (ROLES, USERS, SESSIONS, ACTIVITY)
        }


def _new_column_values(engine: Engine) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    with engine.connect() as connection:
        users = connection.execute(
            sa.text(
                'SELECT "authProvider", status, "twoFactorEnabled", "tenantId", "authId", "createdBy", '
                '"updatedBy" FROM users'
            ).columns(twoFactorEnabled=sa.Boolean)
        )
        roles = connection.execute(
            sa.text('SELECT "systemRole", "tenantId" FROM roles').columns(systemRole=sa.Boolean)
        )
        return {tuple(row) for row in users}, {tuple(row) for row in roles}


def test_legacy_rows_survive_upgrade_downgrade_and_upgrade_again(empty_database_url: str) -> None:
    migrations.upgrade(empty_database_url, "0000")
    with sync_engine(empty_database_url) as engine:
        baseline = schema_snapshot(engine)
        with engine.begin() as connection:
            _fill_legacy_tables(connection)
        rows = _legacy_rows(engine)
        assert [len(rows[name]) for name in LEGACY_TABLES] == [6, 30, 40, 40]

        migrations.upgrade(empty_database_url, "head")
        assert _legacy_rows(engine) == rows
        users, roles = _new_column_values(engine)
        # Every existing user and role got the spec's defaults; nothing else was filled in.
        assert users == {("local", "active", False, None, None, None, None)}
        assert roles == {(False, None)}

        migrations.downgrade(empty_database_url, "0000")
        assert _legacy_rows(engine) == rows
        assert schema_snapshot(engine) == baseline

        migrations.upgrade(empty_database_url, "head")
        assert _legacy_rows(engine) == rows
        assert _new_column_values(engine) == (users, roles)
