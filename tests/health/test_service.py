"""The health service, called directly: "ok" with the migration revision when the database answers and
is migrated; ServiceUnavailable saying which of the two failed otherwise (a load balancer takes the
process out of rotation on it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.core.errors import ServiceUnavailable
from mobility.health import service
from tests.health.support import head_revision
from tests.support.sessions import Db
from tests.support.tcp_proxy import free_port


@asynccontextmanager
async def unit_of_work(url: str) -> AsyncIterator[AsyncSession]:
    """A session as the API opens one for /health: no scope, nobody is logged in."""
    database = Db(url)
    try:
        async with database.unscoped() as session:
            yield session
    finally:
        await database.dispose()


async def test_a_migrated_database_is_ok_at_the_head_revision(db: Db) -> None:
    async with db.unscoped() as session:
        health = await service.check(session)
    assert health == {"status": "ok", "database": "ok", "revision": head_revision()}


async def test_an_unmigrated_database_is_unavailable(empty_database_url: str) -> None:
    async with unit_of_work(empty_database_url) as session:
        with pytest.raises(ServiceUnavailable) as unavailable:
            await service.check(session)
    assert unavailable.value.extra == {"database": "ok", "revision": None}


async def test_an_unreachable_database_is_unavailable(backend: str, tmp_path) -> None:
    url = {
        "postgresql": f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere",
        "sqlite": f"sqlite+aiosqlite:///{tmp_path}",  # a "database file" that is a directory
    }[backend]
    async with unit_of_work(url) as session:
        with pytest.raises(ServiceUnavailable) as unavailable:
            await service.check(session)
    assert unavailable.value.extra == {"database": "unreachable"}
