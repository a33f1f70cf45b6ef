"""The one place that knows how to reach the database: metadata, engines and sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import MetaData, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from mobility.core.config import Settings, get_settings

# Constraint names as Prisma creates them, so a database made by the legacy Prisma app, by our
# migrations and by `prisma migrate` agree on every name.
NAMING_CONVENTION = {
    "pk": "%(table_name)s_pkey",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ix": "%(table_name)s_%(column_0_N_name)s_idx",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "ck": "%(table_name)s_%(constraint_name)s_check",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # SQLite ignores foreign keys (and so ON DELETE CASCADE) unless asked, per connection.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def create_engine(url: str | None = None, settings: Settings | None = None, **kwargs) -> AsyncEngine:
    settings = settings or get_settings()
    url = url or settings.effective_database_url
    if is_sqlite(url):
        path = make_url(url).database
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
    # No pre-ping on PostgreSQL: it cost three round trips (BEGIN, ping, ROLLBACK) on every request.
    # Connections are recycled instead, and a dropped connection (a database restart) invalidates the
    # pool when it is first used: that one request fails, the next get fresh connections.
    pooling = {"pool_recycle": 1800} if not is_sqlite(url) else {"pool_pre_ping": True}
    engine = create_async_engine(url, echo=settings.sql_echo, **pooling, **kwargs)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions of the application's session class: tenant-scoped and audited (see core.tenancy)."""
    from mobility.core import audit  # noqa: F401  (registers the audit trail on ScopedSession)
    from mobility.core.tenancy import ScopedSession

    return async_sessionmaker(
        engine, sync_session_class=ScopedSession, expire_on_commit=False, autoflush=False
    )


@asynccontextmanager
async def transaction(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits when the block ends cleanly, rolls back on any error."""
    async with sessionmaker() as session, session.begin():
        yield session
