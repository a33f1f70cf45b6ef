"""Connections the server closes (pg_terminate_backend) while requests are in flight, on both pools:
each request is served (200) or answered 503 problem+json with Retry-After, no exception escapes the
app, nothing is logged as an error, no connection serves two requests at once, and afterwards every
request gets a fresh connection (PostgreSQL, the API as the app role).

Only the app role's backends of this test's own database are terminated: other runs share the server.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from mobility.core.db import driver_connection
from mobility.core.deps import DbSession
from tests.support.admin_api import make_world
from tests.support.app import api_client
from tests.support.databases import APP_ROLE, PG_ADMIN_URL

pytestmark = pytest.mark.postgres_only

CLIENTS = 12
ROUNDS_OF_KILLS = 6


def _kill_app_backends(dbname: str) -> int:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND usename = %s) AS ended",
            (dbname, APP_ROLE),
        ).fetchone()[0]


def _add_probe_routes(app, intervals: list) -> None:
    """Two routes that hold their connection across an await and record which server backend served
    them when: the read path's connection, and the ORM's. Two requests on one connection at once would
    show one backend in two overlapping intervals."""

    @app.get("/test/hold/read")
    async def hold_read(session: DbSession) -> dict:
        from mobility.core.scope import Scope, bind_scope

        bind_scope(session, Scope.for_system())
        connection = await driver_connection(session)
        started = time.monotonic()
        pid = await connection.fetchval("SELECT pg_backend_pid()")
        await asyncio.sleep(0.005)
        assert await connection.fetchval("SELECT pg_backend_pid()") == pid
        intervals.append(("read", pid, started, time.monotonic()))
        return {"pid": pid}

    @app.post("/test/hold/orm")
    async def hold_orm(session: DbSession) -> dict:
        started = time.monotonic()
        pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar()
        await asyncio.sleep(0.005)
        assert (await session.execute(text("SELECT pg_backend_pid()"))).scalar() == pid
        intervals.append(("orm", pid, started, time.monotonic()))
        return {"pid": pid}


def _overlaps(intervals: list) -> list:
    found = []
    by_backend = sorted(intervals, key=lambda i: (i[0], i[1], i[2]))
    for (kind, pid, _start, end), (kind2, pid2, start2, _end2) in itertools.pairwise(by_backend):
        if (kind, pid) == (kind2, pid2) and start2 < end:
            found.append((kind, pid))
    return found


async def test_backends_killed_under_load_on_both_pools(
    backend, migrated_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = migrated_database_url
    dbname = make_url(url).database
    world = await make_world(url)
    headers = world.auth(world.admin)
    caplog.set_level(logging.INFO)
    intervals: list = []
    statuses: list[int] = []
    stop = asyncio.Event()

    # A guard, not a measure: a connection never given back would hang the pool's shutdown for ever.
    async with asyncio.timeout(120), api_client(url) as client:
        _add_probe_routes(client._transport.app, intervals)  # type: ignore[attr-defined]

        async def load(worker: int) -> None:
            try:
                await requests(worker)
            except BaseException:
                stop.set()  # the others stop too, so the failure is reported rather than waited on
                raise

        async def requests(worker: int) -> None:
            for step in itertools.count():
                if stop.is_set():
                    return
                kind = (worker + step) % 5
                if kind == 0:
                    response = await client.get(f"/api/v1/users/{world.trainer.id}", headers=headers)
                elif kind == 1:
                    response = await client.patch(
                        f"/api/v1/users/{world.trainer.id}",
                        headers=world.auth(world.system_admin),
                        json={"name": f"N {worker} {step}"},
                    )
                elif kind == 2:
                    response = await client.put(
                        "/api/v1/settings/placements.passportValidityMonths",
                        headers=headers,
                        json={"value": step % 100},
                    )
                elif kind == 3:
                    response = await client.get("/test/hold/read")
                else:
                    response = await client.post("/test/hold/orm")
                statuses.append(response.status_code)
                if response.status_code != 200:
                    assert response.status_code == 503, response.text
                    assert response.headers["content-type"].startswith("application/problem+json")
                    assert response.headers["retry-after"]

        async def killer() -> None:
            try:
                for _ in range(ROUNDS_OF_KILLS):
                    await asyncio.sleep(0.3)
                    await asyncio.to_thread(_kill_app_backends, dbname)
                await asyncio.sleep(0.3)
            finally:
                stop.set()

        # Any exception escaping the app is raised here by httpx's ASGI transport.
        await asyncio.gather(killer(), *(load(worker) for worker in range(CLIENTS)))

        # Afterwards: fresh connections, every request served.
        settled = [await client.get(f"/api/v1/users/{world.trainer.id}", headers=headers) for _ in range(3)]
        await asyncio.sleep(0.2)  # the last kills' sockets are seen to close
        after = [
            (await client.get(f"/api/v1/users/{world.trainer.id}", headers=headers)).status_code
            for _ in range(10)
        ] + [
            (
                await client.patch(
                    f"/api/v1/users/{world.trainer.id}",
                    headers=world.auth(world.system_admin),
                    json={"name": "After"},
                )
            ).status_code
            for _ in range(10)
        ]

    assert set(statuses) <= {200, 503}
    assert statuses.count(200) > 0
    assert all(r.status_code in (200, 503) for r in settled)
    assert after == [200] * 20
    assert _overlaps(intervals) == []
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
