"""Sessions of the application's session class (mobility.app_session.AppSession) for tests: the row
rules, the tenant guard and the audit trail apply to them as in production.

- `system_session(url)`: THE way to a system session (installation-wide, no tenant) in the tests, for
  arranging data and reading it back behind the API's back. One committed unit of work, like the
  CLI's, as the database's owner. On a database kept for the run (`Db`: `db`'s and
  `migrated_database_url`'s) it reuses that database's engine; on any other it makes an engine for the
  one unit of work (so it works from any event loop,
  also inside `asyncio.run` in a synchronous test).
- `Db.acting(scope)`: a unit of work as someone, the way the API opens it (on PostgreSQL as the app
  role, so row-level security is the second wall), always rolled back: for attacks and reads, and for
  calling a domain's service directly (tests/<domain>/test_service.py). `Db.unscoped()`: the same
  before anyone is authenticated (login, authentication and /health bind their own scope).

Deliberate exceptions open a raw connection instead (psycopg as the app role to prove row-level
security alone, tests/rls; a background worker's own sessionmaker, tests/core/test_app_session.py);
each says why where it does.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mobility.app_session import create_sessionmaker
from mobility.authz.permissions import MATRIX, SystemRole
from mobility.core.db import create_engine, is_sqlite, transaction
from mobility.core.scope import Scope, TenancyViolation, apply_to_database
from tests.support.databases import app_role_url

# What "refused" means for a write at the data layer: the scoped session says no before any SQL, or
# the database does (a composite same-tenant foreign key, a NOT NULL, row-level security on PostgreSQL).
REFUSED = (TenancyViolation, DBAPIError)


# The owner's engines of the databases kept for the whole run (`Db`), with the event loop they run on:
# a new engine costs a connection (~10 ms on PostgreSQL) and the suite opens thousands of units of work.
_KEPT: dict[str, tuple[AsyncEngine, asyncio.AbstractEventLoop]] = {}


@asynccontextmanager
async def system_session(database_url: str) -> AsyncIterator[AsyncSession]:
    """A committed unit of work under the system scope (across tenants), as the database's owner."""
    engine, loop = _KEPT.get(database_url, (None, None))
    own_engine = engine is None or loop is not asyncio.get_running_loop()
    if own_engine:
        engine = create_engine(database_url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            await apply_to_database(session, Scope.for_system())
            yield session
    finally:
        if own_engine:
            await engine.dispose()


async def get_row(url: str, model: type, row_id: Any):
    """The row of `model` with id `row_id` (None when there is none), read afresh behind the API's back."""
    async with system_session(url) as session:
        row_id = uuid.UUID(str(row_id))
        return (await session.execute(select(model).where(model.id == row_id))).scalar_one_or_none()


class Db:
    """A migrated test database, acted on as the API does: `acting()` connects, on PostgreSQL, as the
    app role, which owns no table, so row-level security is the second wall there (SQLite shows the
    ORM layer alone). Arrange its data with `system_session(db.url)`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.owner_engine = create_engine(url)
        self.app_engine = create_engine(app_role_url(url)) if not is_sqlite(url) else self.owner_engine
        # The API's own session factory on this database: for the tests of what happens before a
        # transaction begins (the read path, tests/core/test_reads.py); others take `unscoped()`.
        self.app_sessionmaker = create_sessionmaker(self.app_engine)
        _KEPT[url] = (self.owner_engine, asyncio.get_running_loop())

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

    @asynccontextmanager
    async def unscoped(self) -> AsyncIterator[AsyncSession]:
        """A unit of work as the API opens one before anyone is authenticated (no scope bound yet: login,
        authentication, /health bind their own), always rolled back."""
        async with self.app_sessionmaker() as session:
            await session.begin()
            try:
                yield session
            finally:
                await session.rollback()

    async def without_row_level_security(self) -> Db:
        """The same database, `acting()` as its owner, a superuser: PostgreSQL's row-level security does
        not bind it (FORCE or not), so only the application's own filters stand between tenants."""
        async with self.owner_engine.connect() as connection:
            bypasses = await connection.scalar(
                text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
            )
        assert bypasses, "the owner's connection is bound by row-level security: no wall is tested alone"
        alone = copy.copy(self)
        alone.app_engine, alone.app_sessionmaker = self.owner_engine, create_sessionmaker(self.owner_engine)
        return alone

    async def dispose(self) -> None:
        _KEPT.pop(self.url, None)
        await self.owner_engine.dispose()
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
