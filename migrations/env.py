"""Alembic environment: runs the revisions on SQLite or PostgreSQL, online or as offline SQL."""

from __future__ import annotations

import asyncio
import logging.config

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from mobility.core.config import get_settings
from mobility.models import metadata

config = context.config
if config.config_file_name and config.attributes.get("configure_logging", True):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def _database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().effective_database_url


def _configure(connection: Connection | None = None, **kwargs) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # Each revision commits on its own: a failure leaves the database at the last good revision,
        # and a retry picks up from there.
        transaction_per_migration=True,
        compare_type=True,
        # SQLite cannot ALTER constraints: batch operations rebuild the table there (a no-op elsewhere).
        render_as_batch=True,
        **kwargs,
    )


def do_run_migrations(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Wait this long for a lock, then fail cleanly instead of queueing every query behind us.
        timeout = config.attributes.get("lock_timeout") or get_settings().migration_lock_timeout
        connection.exec_driver_sql(f"SET lock_timeout = '{timeout}'")
    elif connection.dialect.name == "sqlite":
        # A batch rebuild drops and recreates a table: with foreign keys on, dropping a parent would
        # cascade into its children. Must be set outside a transaction, which is why it is here.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    if connection.in_transaction():
        # End the implicit transaction the settings above opened, so each revision gets its own.
        connection.commit()
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()
    if connection.dialect.name == "sqlite":
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"foreign keys broken after migrating: {broken[:5]}")
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    # Tests and the CLI may hand us a connection (pytest-alembic does); otherwise open our own.
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
        return
    asyncio.run(_run_async(_database_url()))


def run_migrations_offline() -> None:
    """`alembic upgrade A:B --sql`: emit the SQL instead of running it."""
    _configure(url=_database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
