"""Alembic environment: runs the revisions on SQLite or PostgreSQL, online or as offline SQL."""

from __future__ import annotations

import asyncio
import logging.config

from alembic import context
from sqlalchemy import Enum, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from mobility.core.config import get_settings
from mobility.models import metadata
from mobility.users.models import EMAIL_INDEX

config = context.config
if config.config_file_name and config.attributes.get("configure_logging", True):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def _database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().effective_database_url


def _compare_type(
    _context, _inspected_column, _metadata_column, inspected_type, metadata_type
) -> bool | None:
    """Autogenerate's type comparison, plus the labels of PostgreSQL enum types.

    Alembic compares an enum column's type but not its labels; the reflected PostgreSQL type carries
    them, so a label added to (or reordered in) a model without a migration shows up as a difference.
    None leaves every other comparison to alembic.
    """
    if isinstance(inspected_type, Enum) and isinstance(metadata_type, Enum) and inspected_type.native_enum:
        inspected = (inspected_type.name, list(inspected_type.enums))
        return True if inspected != (metadata_type.name, list(metadata_type.enums)) else None
    return None


# Reflection cannot see this index as it is: SQLAlchemy reflects PostgreSQL's unique index on
# `(email COLLATE mobility_email_ci)` (0013) as one on plain `email`, and skips SQLite's on
# `lower(email)`, so a comparison would report a difference that is not there. It is in the model
# (users.models); tests/migrations/test_email_unique.py checks its definition in the database instead.
INDEXES_NOT_REFLECTED_FAITHFULLY = {EMAIL_INDEX}


def _include_object(obj, name, type_, _reflected, _compare_to) -> bool:
    return not (type_ == "index" and name in INDEXES_NOT_REFLECTED_FAITHFULLY)


def _configure(connection: Connection | None = None, **kwargs) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # Each revision commits on its own: a failure leaves the database at the last good revision,
        # and a retry picks up from there.
        transaction_per_migration=True,
        compare_type=_compare_type,
        compare_server_default=True,
        include_object=_include_object,
        # SQLite cannot ALTER constraints: batch operations rebuild the table there (a no-op elsewhere).
        render_as_batch=True,
        **kwargs,
    )


def do_run_migrations(connection: Connection) -> None:
    # A connection handed over inside its caller's transaction (pytest-alembic's
    # downgrade-leaves-no-trace test runs each step in a savepoint it then rolls back) is the caller's
    # to commit or roll back: alembic runs inside it (it sees an "external" transaction) and so do we.
    external = connection.in_transaction()
    if connection.dialect.name == "postgresql":
        # Wait this long for a lock, then fail cleanly instead of queueing every query behind us.
        timeout = config.attributes.get("lock_timeout") or get_settings().migration_lock_timeout
        connection.exec_driver_sql(f"SET lock_timeout = '{timeout}'")
        # Revisions act on every tenant's rows: past row-level security (0009), which also binds the
        # owner when it is not a superuser.
        connection.exec_driver_sql("SET mobility.system = 'on'")
    elif connection.dialect.name == "sqlite" and not external:
        # A batch rebuild drops and recreates a table: with foreign keys on, dropping a parent would
        # cascade into its children. Must be set outside a transaction, which is why it is here.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    if connection.in_transaction() and not external:
        # End the implicit transaction the settings above opened, so each revision gets its own.
        connection.commit()
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()
    if external:
        return
    if connection.dialect.name == "sqlite":
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"foreign keys broken after migrating: {broken[:5]}")
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
    if connection.in_transaction():
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
    # Tests and the CLI may hand us a connection, or an engine (pytest-alembic passes its
    # `alembic_engine`, or a wrapper whose connect() returns the connection it holds open).
    connectable = config.attributes.get("connection")
    if connectable is None:
        asyncio.run(_run_async(_database_url()))
    elif isinstance(connectable, Connection):
        do_run_migrations(connectable)
    else:
        with connectable.connect() as connection:
            do_run_migrations(connection)


def run_migrations_offline() -> None:
    """`alembic upgrade A:B --sql`: emit the SQL instead of running it."""
    _configure(url=_database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
