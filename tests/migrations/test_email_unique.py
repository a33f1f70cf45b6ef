"""Revision 0013: one account per e-mail whatever its letter case, enforced by the database; a database
with case twins refuses the upgrade, unchanged, until they are merged."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.util.exc import CommandError
from sqlalchemy.exc import IntegrityError

from mobility.ops import migrations
from mobility.ops.legacy_schema import legacy_metadata
from mobility.users import accounts
from tests.migrations.support import schema_snapshot, sync_engine
from tests.sqlscripts.support import PsqlError, psql_file
from tests.support.sessions import system_session

BEFORE, AT = "0012", "0013"
LEGACY_USERS = legacy_metadata.tables["users"]
UNIQUE_INDEX = "users_email_ci_key"
# What the unique index must be: the login lookup's expression (users.models.email_key), unique.
EXPECTED_DEFINITION = {
    "postgresql": "CREATE UNIQUE INDEX users_email_ci_key ON public.users USING btree "
    "(email COLLATE mobility_email_ci)",
    "sqlite": "CREATE UNIQUE INDEX users_email_ci_key ON users (lower(email))",
}
# The lookup indexes 0013 replaces (0010's on both, 0012's on PostgreSQL).
REPLACED = {
    "postgresql": {"users_email_lower_idx", "users_email_ci_idx"},
    "sqlite": {"users_email_lower_idx"},
}


def _insert_user(connection: sa.Connection, email: str) -> uuid.UUID:
    user_id = uuid.uuid4()
    connection.execute(LEGACY_USERS.insert().values(id=user_id, email=email, updatedAt=datetime.now(UTC)))
    return user_id


async def _merge(url: str, *, keep: uuid.UUID, drop: uuid.UUID) -> None:
    async with system_session(url) as session:
        await accounts.merge(session, str(keep), str(drop))


def _index_definitions(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            rows = connection.execute(
                sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'users'")
            )
        else:
            rows = connection.execute(
                sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users'")
            )
        return {name: definition for name, definition in rows}


def _users(engine: sa.Engine) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.select(LEGACY_USERS).order_by(LEGACY_USERS.c.id))]


def test_the_index_is_the_lookup_expression_unique_and_the_downgrade_restores_the_old_ones(
    backend: str, empty_database_url: str
) -> None:
    migrations.upgrade(empty_database_url, BEFORE)
    with sync_engine(empty_database_url) as engine:
        before = _index_definitions(engine)
        assert REPLACED[backend] <= set(before) and UNIQUE_INDEX not in before

        migrations.upgrade(empty_database_url, AT)
        after = _index_definitions(engine)
        assert after[UNIQUE_INDEX] == EXPECTED_DEFINITION[backend]
        assert not REPLACED[backend] & set(after), "the replaced lookup indexes are gone, not kept beside it"

        migrations.downgrade(empty_database_url, BEFORE)
        assert _index_definitions(engine) == before
        # Twins can be written again below 0013.
        with engine.begin() as connection:
            _insert_user(connection, "Twin@Example.org")
            _insert_user(connection, "twin@example.org")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Bob@x.example", "bob@x.example"),
        ("ANA@X.EXAMPLE", "ana@x.example"),
        ("bob@x.example", "bob@x.example"),
    ],
)
def test_the_database_refuses_a_second_account_for_an_e_mail_in_any_case(
    migrated_database_url: str, first: str, second: str
) -> None:
    suffix = uuid.uuid4().hex[:8]
    first, second = first.replace("@", f"+{suffix}@"), second.replace("@", f"+{suffix}@")
    with sync_engine(migrated_database_url) as engine:
        with engine.begin() as connection:
            kept = _insert_user(connection, first)
        with pytest.raises(IntegrityError, match=r"users[._]email"), engine.begin() as connection:
            _insert_user(connection, second)
        with engine.begin() as connection:
            rows = connection.execute(
                sa.select(LEGACY_USERS.c.id).where(sa.func.lower(LEGACY_USERS.c.email) == first.lower())
            ).all()
            assert [row.id for row in rows] == [kept]
            connection.execute(LEGACY_USERS.delete().where(LEGACY_USERS.c.id == kept))


def test_twins_refuse_the_upgrade_unchanged_and_it_goes_through_after_a_merge(
    backend: str, empty_database_url: str
) -> None:
    migrations.upgrade(empty_database_url, BEFORE)
    with sync_engine(empty_database_url) as engine:
        with engine.begin() as connection:
            older = _insert_user(connection, "Mele.Tonga@Example.org")
            younger = _insert_user(connection, "mele.tonga@example.org")
            _insert_user(connection, "someone.else@example.org")
        schema, users = schema_snapshot(engine), _users(engine)

        with pytest.raises(CommandError) as refused:
            migrations.upgrade(empty_database_url, "head")
        message = str(refused.value)
        assert "\n" not in message
        for fragment in (
            "1 e-mail address(es) belong to more than one account",
            f"Mele.Tonga@Example.org ({older})",
            f"mele.tonga@example.org ({younger})",
            "`mobility users duplicates`",
            "`mobility users merge KEEP DROP`",
            "Nothing was changed",
        ):
            assert fragment in message, message
        assert "someone.else" not in message
        assert migrations.current_revision(empty_database_url) == BEFORE
        assert schema_snapshot(engine) == schema
        assert _users(engine) == users

        asyncio.run(_merge(empty_database_url, keep=younger, drop=older))
        migrations.upgrade(empty_database_url, "head")
        assert migrations.current_revision(empty_database_url) == migrations.head_revision()
        assert {row[1] for row in _users(engine)} == {
            "mele.tonga@example.org",
            "someone.else@example.org",
        }


def test_the_refusal_lists_ten_groups_and_counts_the_rest(backend: str, empty_database_url: str) -> None:
    migrations.upgrade(empty_database_url, BEFORE)
    with sync_engine(empty_database_url) as engine, engine.begin() as connection:
        for number in range(12):
            _insert_user(connection, f"Twin{number:02d}@example.org")
            _insert_user(connection, f"twin{number:02d}@example.org")
    with pytest.raises(CommandError) as refused:
        migrations.upgrade(empty_database_url, "head")
    message = str(refused.value)
    assert message.startswith("12 e-mail address(es)")
    assert "twin09@example.org" in message and "twin10@example.org" not in message
    assert " and 2 more;" in message


@pytest.mark.postgres_only
def test_the_sql_script_refuses_twins_too(backend: str, empty_database_url: str) -> None:
    migrations.upgrade(empty_database_url, BEFORE)
    with sync_engine(empty_database_url) as engine:
        with engine.begin() as connection:
            _insert_user(connection, "Vika@Example.org")
            _insert_user(connection, "vika@example.org")
        schema = schema_snapshot(engine)
        script = migrations.MIGRATIONS_DIR / "sql" / "13_users_email_unique.up.sql"
        with pytest.raises(PsqlError, match="mobility users merge KEEP DROP"):
            psql_file(empty_database_url, script)
        assert schema_snapshot(engine) == schema
        assert migrations.current_revision(empty_database_url) == BEFORE
