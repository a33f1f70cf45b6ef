"""Helpers of the migration tests: synchronous engines and a comparable picture of a schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine, event
from sqlalchemy.pool import NullPool

from tests.support.databases import to_sync


def sqlite_transactions_as_declared(engine: Engine, *, foreign_keys: bool = False) -> None:
    """Let SQLAlchemy, not pysqlite, decide where SQLite transactions begin.

    pysqlite opens transactions lazily (before DML only), so DDL would run outside the transactions
    and SAVEPOINTs a test rolls back. This is SQLAlchemy's documented recipe: driver autocommit off
    the table, and an explicit BEGIN whenever a transaction starts. `foreign_keys` turns on SQLite's
    enforcement (off by default, per connection), as the application does.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        if foreign_keys:
            dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN")


@contextmanager
def sync_engine(url: str, *, foreign_keys: bool = True) -> Iterator[Engine]:
    """A synchronous engine on the database at `url` (async or sync URL), disposed afterwards."""
    engine = create_sync_engine(url, foreign_keys=foreign_keys)
    try:
        yield engine
    finally:
        engine.dispose()


def create_sync_engine(url: str, *, foreign_keys: bool = True) -> Engine:
    engine = sa.create_engine(to_sync(url), poolclass=NullPool)
    if engine.dialect.name == "sqlite":
        sqlite_transactions_as_declared(engine, foreign_keys=foreign_keys)
    return engine


def schema_snapshot(engine: Engine) -> dict[str, Any]:
    """Everything reflection tells about the schema, in a form that compares with ==.

    Per table: columns in order (name, type as the engine spells it, nullability, server default),
    primary key, foreign keys (with their ON DELETE/UPDATE), unique and check constraints, indexes.
    On PostgreSQL also the enum types with their labels, which no table shows once unused.
    """
    snapshot: dict[str, Any] = {}
    with engine.connect() as connection:
        inspector = sa.inspect(connection)
        dialect = connection.dialect
        for table in sorted(inspector.get_table_names()):
            snapshot[table] = {
                "columns": [
                    (
                        column["name"],
                        column["type"].compile(dialect=dialect),
                        column["nullable"],
                        column.get("default"),
                    )
                    for column in inspector.get_columns(table)
                ],
                "primary_key": inspector.get_pk_constraint(table),
                "foreign_keys": _by_name(inspector.get_foreign_keys(table)),
                "unique": _by_name(inspector.get_unique_constraints(table)),
                "checks": _by_name(inspector.get_check_constraints(table)),
                "indexes": _by_name(inspector.get_indexes(table)),
            }
        if dialect.name == "postgresql":
            rows = connection.execute(
                sa.text(
                    "SELECT t.typname, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) "
                    "FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid "
                    "JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public' "
                    "GROUP BY t.typname"
                )
            )
            snapshot["<enum types>"] = {name: list(labels) for name, labels in rows}
    return snapshot


def _by_name(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: str(item.get("name")))
