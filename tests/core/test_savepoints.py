"""A savepoint is part of its transaction on both backends: what it wrote goes when the transaction
rolls back. On SQLite the driver (pysqlite) begins a transaction only before a write: a SAVEPOINT
emitted before any write began one of its own, whose RELEASE committed it (core.db begins the
transaction first)."""

from __future__ import annotations

from sqlalchemy import select

from mobility.settings.models import Setting
from tests.support.factories import make_tenant
from tests.support.sessions import system_session


async def test_what_a_released_savepoint_wrote_goes_with_its_transaction(migrated_database_url: str) -> None:
    url = migrated_database_url
    async with system_session(url) as session:
        tenant = await make_tenant(session)

    class Abandoned(Exception):
        pass

    try:
        async with system_session(url) as session:
            # Only reads before the savepoint: the transaction has written nothing yet.
            await session.execute(select(Setting.id).where(Setting.tenant_id == tenant.id))
            async with session.begin_nested():
                session.add(Setting(tenant_id=tenant.id, key="test.savepoint", value=1))
            raise Abandoned  # the unit of work fails after the savepoint was released
    except Abandoned:
        pass

    async with system_session(url) as session:
        left = (
            (await session.execute(select(Setting.key).where(Setting.tenant_id == tenant.id))).scalars().all()
        )
    assert left == []
