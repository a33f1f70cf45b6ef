"""`SELECT ... FOR UPDATE` makes a second unit of work wait for the first to end, on both backends: on
PostgreSQL as a row lock, on SQLite as the database's write lock (core.db.install_sqlite_row_locks).
Without it, SQLite let both read first and the later write went over what it never saw."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from mobility.settings.models import Setting
from tests.support.factories import make_tenant
from tests.support.sessions import system_session


async def test_a_locking_read_waits_for_the_unit_that_holds_the_lock(migrated_database_url: str) -> None:
    url = migrated_database_url
    async with system_session(url) as session:
        tenant = await make_tenant(session)
        session.add(Setting(tenant_id=tenant.id, key="test.counter", value=0))

    def locking_read():
        return (
            select(Setting)
            .where(Setting.tenant_id == tenant.id, Setting.key == "test.counter")
            .with_for_update()
        )

    first_holds, release = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with system_session(url) as session:
            row = (await session.execute(locking_read())).scalar_one()
            first_holds.set()
            await release.wait()
            row.value = row.value + 1

    async def second() -> int:
        await first_holds.wait()
        async with system_session(url) as session:
            row = (await session.execute(locking_read())).scalar_one()
            row.value = row.value + 1
            return row.value

    first_task = asyncio.create_task(first())
    second_task = asyncio.create_task(second())
    await first_holds.wait()
    await asyncio.sleep(0.5)
    assert not second_task.done(), "the second unit read while the first held the lock"
    release.set()
    await first_task
    # The second read what the first wrote: neither increment is lost.
    assert await second_task == 2
