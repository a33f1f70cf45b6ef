"""core.reads: compiled, row-filtered reads of the hot path, and the request's read connection.

A `Read` is compiled once per shape of scope with the ids as parameters: two callers of the same shape
must each see their own rows (a value compiled in would show the first caller's to the second).
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import make_url

from mobility.authz.permissions import SystemRole
from mobility.candidates.models import Candidate
from mobility.core.config import Settings
from mobility.core.db import READ_POOL, create_read_pool, read_connection, release_read_connection
from mobility.core.reads import Read
from mobility.core.scope import Scope, TenancyViolation, apply_to_database, scoped_driver_connection
from mobility.settings.models import Setting
from tests.support.databases import app_role_url
from tests.support.factories import make_candidate, make_tenant, make_user, unique
from tests.support.sessions import Db, scope_of, system_session

# On PostgreSQL also as a role that bypasses row-level security: the compiled reads' own filters alone.
pytestmark = pytest.mark.each_wall_alone

SETTINGS_BY_KEY = Read(
    lambda: select(Setting.id, Setting.key).where(Setting.key.startswith(bindparam("prefix")))
)
CANDIDATES = Read(lambda: select(Candidate.id, Candidate.first_name))


@pytest.fixture
async def world(db: Db):
    async with system_session(db.url) as session:
        tenant_a, tenant_b = await make_tenant(session), await make_tenant(session)
        admin_a = await make_user(session, tenant_a, SystemRole.admin)
        admin_b = await make_user(session, tenant_b, SystemRole.admin)
        prefix = unique("reads.")
        setting_a = Setting(tenant_id=tenant_a.id, key=f"{prefix}a", value=1)
        setting_b = Setting(tenant_id=tenant_b.id, key=f"{prefix}b", value=2)
        session.add_all([setting_a, setting_b])
        pupils = []
        for name in ("Ana", "Ben"):
            user = await make_user(session, tenant_a, SystemRole.candidate)
            pupils.append(
                (user, await make_candidate(session, tenant_a, user_id=user.user.id, first_name=name))
            )
    return {
        "a": scope_of(tenant_a.id, admin_a.id, SystemRole.admin),
        "b": scope_of(tenant_b.id, admin_b.id, SystemRole.admin),
        "prefix": prefix,
        "settings": {"a": setting_a.id, "b": setting_b.id},
        "pupils": [
            (scope_of(tenant_a.id, user.id, SystemRole.candidate, candidate_id=candidate.id), candidate)
            for user, candidate in pupils
        ],
    }


async def test_each_tenant_reads_its_own_rows_through_one_compiled_statement(db: Db, world) -> None:
    for tenant in ("a", "b"):
        async with db.acting(world[tenant]) as session:
            rows = await SETTINGS_BY_KEY.all(session, prefix=world["prefix"])
        assert [row["id"] for row in rows] == [world["settings"][tenant]]
        assert rows[0]["key"] == world["prefix"] + tenant


async def test_object_rules_take_the_callers_own_ids(db: Db, world) -> None:
    """Two candidates, the same shape of scope: each reads only their own record."""
    for scope, candidate in world["pupils"]:
        async with db.acting(scope) as session:
            rows = await CANDIDATES.all(session)
        assert rows == [{"id": candidate.id, "first_name": candidate.first_name}]


async def test_a_read_sees_the_transactions_own_writes(db: Db, world) -> None:
    async with db.acting(world["a"]) as session:
        session.add(Setting(key=world["prefix"] + "new", value=3))
        await session.flush()
        keys = {row["key"] for row in await SETTINGS_BY_KEY.all(session, prefix=world["prefix"])}
    assert keys == {world["prefix"] + "a", world["prefix"] + "new"}


async def test_reads_need_a_scope_and_models_not_tables(db: Db) -> None:
    by_table = Read(lambda: select(Setting.__table__.c.id))
    async with db.app_sessionmaker() as session:
        with pytest.raises(TenancyViolation):
            await SETTINGS_BY_KEY.all(session, prefix="x")
        await apply_to_database(session, scope_of(*(await _any_ids(db)), SystemRole.admin))
        if session.bind.dialect.name == "postgresql":
            with pytest.raises(TenancyViolation):
                await by_table.all(session)
        await session.rollback()
    with pytest.raises(ValueError, match="distinct keys"):
        Read(lambda: select(Setting.id, Candidate.id))


async def _any_ids(db: Db):
    async with system_session(db.url) as session:
        tenant = await make_tenant(session)
        return tenant.id, (await make_user(session, tenant, SystemRole.admin)).id


@pytest.mark.postgres_only
async def test_the_read_connection_serves_until_the_orm_begins(db: Db, world) -> None:
    """An API request's reads go to its read connection (READ ONLY, with the scope's settings) until
    the ORM session begins a transaction; from then on to the ORM's, which sees the request's writes."""
    settings = Settings(database_url=db.url, read_pool_size=1)
    pool = await create_read_pool(app_role_url(db.url), settings)
    try:
        async with db.app_sessionmaker() as session:
            session.sync_session.info[READ_POOL] = pool
            await apply_to_database(session, world["a"])
            first = await SETTINGS_BY_KEY.all(session, prefix=world["prefix"])
            reads = read_connection(session)
            assert reads is not None and reads.is_in_transaction()
            assert await reads.fetchval("SHOW transaction_read_only") == "on"
            assert await reads.fetchval("SELECT current_setting('mobility.tenant_id')") == str(
                world["a"].tenant_id
            )
            # A change of scope reaches the open read connection too.
            await apply_to_database(session, world["b"])
            tenant_now = await reads.fetchval("SELECT current_setting('mobility.tenant_id')")
            assert tenant_now == str(world["b"].tenant_id)
            await apply_to_database(session, world["a"])
            session.add(Setting(key=world["prefix"] + "written", value=4))
            await session.flush()
            after = {row["key"] for row in await SETTINGS_BY_KEY.all(session, prefix=world["prefix"])}
            await session.rollback()
            await release_read_connection(session)
        assert [row["key"] for row in first] == [world["prefix"] + "a"]
        assert after == {world["prefix"] + "a", world["prefix"] + "written"}
        async with pool.acquire() as connection:
            # Given back in the next request's transaction, begun and empty: no tenant in it.
            assert connection.is_begun()
            assert await connection.fetchval("SELECT current_setting('mobility.tenant_id', true)") in (
                "",
                None,
            )
    finally:
        await pool.close()


@pytest.mark.postgres_only
async def test_a_read_connection_waiting_in_the_pool_holds_nothing(db: Db, world) -> None:
    """Between requests the read connection waits in a begun, empty transaction (core/db.py): it must
    hold no lock and no snapshot, so DDL and CREATE INDEX CONCURRENTLY go through."""
    settings = Settings(database_url=db.url, read_pool_size=1)
    pool = await create_read_pool(app_role_url(db.url), settings)
    try:
        async with db.app_sessionmaker() as session:
            session.sync_session.info[READ_POOL] = pool
            await apply_to_database(session, world["a"])
            assert await SETTINGS_BY_KEY.all(session, prefix=world["prefix"])
            pid = read_connection(session).get_server_pid()
            await release_read_connection(session)
        owner = await asyncpg.connect(make_url(db.url).set(drivername="postgresql").render_as_string(False))
        try:
            await owner.execute("SET lock_timeout = '2s'; SET statement_timeout = '20s'")
            async with owner.transaction():
                await owner.execute("LOCK TABLE settings IN ACCESS EXCLUSIVE MODE")
            index = unique("ix_reads_").replace(".", "_").lower()
            await owner.execute(f'CREATE INDEX CONCURRENTLY "{index}" ON settings ("updatedAt")')
            await owner.execute(f'DROP INDEX "{index}"')
            waiting = await owner.fetchrow(
                "SELECT state, backend_xmin, backend_xid FROM pg_stat_activity WHERE pid = $1", pid
            )
        finally:
            await owner.close()
        assert waiting["state"] == "idle in transaction"
        assert waiting["backend_xmin"] is None and waiting["backend_xid"] is None
    finally:
        await pool.close()


@pytest.mark.postgres_only
async def test_a_failed_read_leaves_the_read_connection_usable(db: Db, world) -> None:
    settings = Settings(database_url=db.url, read_pool_size=1)
    pool = await create_read_pool(app_role_url(db.url), settings)
    try:
        async with db.app_sessionmaker() as session:
            session.sync_session.info[READ_POOL] = pool
            await apply_to_database(session, world["a"])
            reads = await scoped_driver_connection(session)
            with pytest.raises(Exception, match="division by zero"):
                await reads.fetchval("SELECT 1 / 0")
            await release_read_connection(session)
        async with db.app_sessionmaker() as session:
            session.sync_session.info[READ_POOL] = pool
            await apply_to_database(session, world["b"])
            rows = await SETTINGS_BY_KEY.all(session, prefix=world["prefix"])
            await release_read_connection(session)
        assert [row["id"] for row in rows] == [world["settings"]["b"]]
    finally:
        await pool.close()


def test_a_read_cannot_use_the_transaction_start_time() -> None:
    """The read connection's transaction may have begun when the previous request ended."""
    with pytest.raises(ValueError, match="now"):
        Read(lambda: select(Setting.id).where(Setting.updated_at < func.now()))
    with pytest.raises(ValueError, match="now"):
        Read(lambda: select(Setting.id).where(Setting.updated_at < func.current_timestamp()))
    Read(lambda: select(Setting.id).where(Setting.updated_at < bindparam("moment")))


@pytest.mark.postgres_only
async def test_a_system_scope_reads_across_tenants(db: Db, world) -> None:
    async with db.acting(Scope.for_system()) as session:
        rows = await SETTINGS_BY_KEY.all(session, prefix=world["prefix"])
    assert {row["id"] for row in rows} == set(world["settings"].values())


@pytest.mark.postgres_only
async def test_read_connections_are_handed_out_in_the_order_asked(db: Db) -> None:
    """Requests waiting for a read connection get one in the order they asked: none is overtaken by a
    request that asked after it (asyncpg's own queue let one that asked just as a connection came back
    take it from the waiter woken for it, and a few requests lost many turns under load)."""
    settings = Settings(database_url=db.url, read_pool_size=2)
    pool = await create_read_pool(app_role_url(db.url), settings)
    asked: list[int] = []
    granted: list[int] = []
    try:
        # Both connections opened first: from then on a connection is handed out without a wait.
        warm = [await pool.acquire_in_turn() for _ in range(2)]
        for connection in warm:
            await pool.release_in_turn(connection)

        async def request(worker: int) -> None:
            for round_ in range(8):
                ticket = worker * 100 + round_
                asked.append(ticket)
                connection = await pool.acquire_in_turn()
                granted.append(ticket)
                await connection.fetchval("SELECT 1")
                await pool.release_in_turn(connection)

        await asyncio.gather(*(request(worker) for worker in range(12)))
    finally:
        await pool.close()
    assert len(granted) == 12 * 8
    assert granted == asked


@pytest.mark.postgres_only
async def test_a_request_cancelled_while_giving_its_read_connection_back_still_gives_it_back(
    db: Db, world
) -> None:
    """A request's task cancelled while its read connection ends its transaction (a client gone, a
    server shutting down) still gives the connection and its turn back: the next request gets one."""
    settings = Settings(database_url=db.url, read_pool_size=1)
    pool = await create_read_pool(app_role_url(db.url), settings)
    try:
        async with db.app_sessionmaker() as session:
            session.sync_session.info[READ_POOL] = pool
            await apply_to_database(session, world["a"])
            assert await SETTINGS_BY_KEY.all(session, prefix=world["prefix"])
            giving_back = asyncio.create_task(release_read_connection(session))
            await asyncio.sleep(0)  # it has sent the end of its transaction, and waits for the answer
            giving_back.cancel()
            with pytest.raises(asyncio.CancelledError):
                await giving_back
        # The one connection of the pool, and its turn, are free again (a leak waits here for ever).
        connection = await asyncio.wait_for(pool.acquire_in_turn(), timeout=10)
        await pool.release_in_turn(connection)
    finally:
        pool.terminate()  # not close(): that waits for a leaked connection for ever
