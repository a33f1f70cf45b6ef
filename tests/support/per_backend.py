"""What the suites set up once per backend for the whole run: the migrated databases (`Db`: the one
behind `db`, the one behind `migrated_database_url`), logged-in API clients, the tenants of a suite.

Session-scoped fixtures that depend on the `backend` parameter would not do: pytest tears them down and
makes them again whenever the next test has the other backend, which under xdist happens all the time
(a migration, seconds, every time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

from tests.support.sessions import Db


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

    async def db(self, backend: str, database_factory: Any, name: str = "db") -> Db:
        """The migrated database `name` of the backend, made (and migrated) on first use."""

        async def make() -> Db:
            from mobility.ops import migrations

            url = database_factory.create(backend, name)
            # upgrade() runs its own event loop: not on this one.
            await asyncio.to_thread(migrations.upgrade, url)
            database = Db(url)
            self._exit.push_async_callback(database.dispose)
            return database

        return await self.get(name, backend, make)

    async def close(self) -> None:
        await self._exit.aclose()
        self._values.clear()


# One per test process, shared by every suite that uses the `db` fixture.
PER_BACKEND = PerBackend()
