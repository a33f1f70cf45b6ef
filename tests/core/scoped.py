"""Acting as someone at the data layer: the application's ScopedSession with a given `Scope` bound.

`Db` keeps one engine per test database (built once per backend) and hands out units of work:
`system()` commits (for arranging data), `acting(scope)` is rolled back at the end (for attacks and
reads), so tests never leave their attempts behind.

`PerBackend` keeps what these suites set up once (a migrated database, logged-in API clients, the
tenants of a suite) for the whole run, per backend. Session-scoped fixtures that depend on the `backend`
parameter would not do: pytest tears them down and makes them again whenever the next test has the
other backend, which under xdist happens all the time (a migration, seconds, every time).
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.app_session import create_sessionmaker
from mobility.authz.permissions import MATRIX, SystemRole
from mobility.core.db import create_engine, is_sqlite
from mobility.core.scope import Scope, TenancyViolation, apply_to_database
from tests.support.databases import app_role_url

# What "refused" means for a write at the data layer: the scoped session says no before any SQL, or
# the database does (a composite same-tenant foreign key, a NOT NULL, row-level security on PostgreSQL).
REFUSED = (TenancyViolation, DBAPIError)


class Db:
    """`system()` connects as the owner; `acting()` as the API does: on PostgreSQL the app role, which
    owns no table, so row-level security is the second wall there (SQLite shows the ORM layer alone)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessionmaker = create_sessionmaker(self.engine)
        self.app_engine = create_engine(app_role_url(url)) if not is_sqlite(url) else self.engine
        self.app_sessionmaker = create_sessionmaker(self.app_engine)

    @asynccontextmanager
    async def system(self) -> AsyncIterator[AsyncSession]:
        """A committed unit of work across tenants, for arranging test data."""
        async with self.sessionmaker() as session, session.begin():
            await apply_to_database(session, Scope.for_system())
            yield session

    @asynccontextmanager
    async def acting(self, scope: Scope) -> AsyncIterator[AsyncSession]:
        """A unit of work as `scope`, always rolled back."""
        async with self.app_sessionmaker() as session:
            await session.begin()
            try:
                await apply_to_database(session, scope)
                yield session
            finally:
                await session.rollback()

    async def without_row_level_security(self) -> Db:
        """The same database, `acting()` as its owner, a superuser: PostgreSQL's row-level security does
        not bind it (FORCE or not), so only the application's own filters stand between tenants."""
        async with self.engine.connect() as connection:
            bypasses = await connection.scalar(
                text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
            )
        assert bypasses, "the owner's connection is bound by row-level security: no wall is tested alone"
        alone = copy.copy(self)
        alone.app_engine, alone.app_sessionmaker = self.engine, self.sessionmaker
        return alone

    async def dispose(self) -> None:
        await self.engine.dispose()
        await self.app_engine.dispose()


def scope_of(
    tenant_id: uuid.UUID,
    actor_id: uuid.UUID,
    role: SystemRole,
    *,
    candidate_id: uuid.UUID | None = None,
    agent_id: uuid.UUID | None = None,
    broker_id: uuid.UUID | None = None,
) -> Scope:
    """The scope authentication would bind for a member of `tenant_id` holding a system role."""
    return Scope(
        tenant_id=tenant_id,
        actor_id=actor_id,
        role=role.value,
        permissions=MATRIX[role],
        is_system_admin=role == SystemRole.system_admin,
        candidate_id=candidate_id,
        agent_id=agent_id,
        broker_id=broker_id,
    )


class PerBackend:
    """Values made once per (name, backend) for the whole run, closed at its end."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str], Any] = {}
        self._exit = AsyncExitStack()

    async def get(self, name: str, backend: str, make: Callable[[], Awaitable[Any]]) -> Any:
        key = (name, backend)
        if key not in self._values:
            self._values[key] = await make()
        return self._values[key]

    async def enter(self, name: str, backend: str, context: Callable[[], AbstractAsyncContextManager]) -> Any:
        """The value of an async context (e.g. an API client) kept open until the run ends."""

        async def make() -> Any:
            return await self._exit.enter_async_context(context())

        return await self.get(name, backend, make)

    async def db(self, backend: str, database_factory: Any) -> Db:
        async def make() -> Db:
            from mobility.ops import migrations

            url = database_factory.create(backend, "head")
            # upgrade() runs its own event loop: not on this one.
            await asyncio.to_thread(migrations.upgrade, url)
            database = Db(url)
            self._exit.push_async_callback(database.dispose)
            return database

        return await self.get("db", backend, make)

    async def close(self) -> None:
        await self._exit.aclose()
        self._values.clear()


# One per test process, shared by tests/core and tests/isolation.
PER_BACKEND = PerBackend()
