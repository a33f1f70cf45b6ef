"""An unreachable database is a 503, not a 500 (PostgreSQL, the API as the app role).

The app talks to PostgreSQL through a loopback proxy that the test cuts (every connection dropped, new
ones refused, as when the server is down) and restores: the shared server itself is never stopped.
While cut, every API request is answered 503 problem+json with Retry-After, one log line says the
database is unavailable (not a stack trace per request); once restored, service resumes by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.admin_api import make_world
from tests.support.app import api_client
from tests.support.databases import APP_ROLE, PG_ADMIN_URL, app_role_url
from tests.support.tcp_proxy import CuttableProxy

pytestmark = pytest.mark.postgres_only
KEY = "placements.passportValidityMonths"


def _through(proxy: CuttableProxy, url: str) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


@asynccontextmanager
async def _app_behind(proxy: CuttableProxy, url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API as the app role, reaching PostgreSQL through `proxy` (closed afterwards)."""
    try:
        async with api_client(
            url, app_database_url=_through(proxy, app_role_url(url)), database_connect_timeout=2
        ) as client:
            yield client
    finally:
        await proxy.close()


async def _requests(client, world) -> dict[str, object]:
    """One of each kind: the read path, the ORM's writes, a login, and an unauthenticated one."""
    headers = world.auth(world.admin)
    return {
        "read": await client.get(f"/api/v1/users/{world.trainer.id}", headers=headers),
        "me": await client.get("/api/v1/me", headers=headers),
        # Names are account-wide: the System Admin's to change.
        "write": await client.patch(
            f"/api/v1/users/{world.trainer.id}", headers=world.auth(world.system_admin), json={"name": "Cut"}
        ),
        "upsert": await client.put(f"/api/v1/settings/{KEY}", headers=headers, json={"value": 7}),
        "login": await client.post(
            "/api/v1/auth/login", json={"email": world.trainer.email, "password": "x" * 12}
        ),
        "audit": await client.get("/api/v1/audit-logs", headers=headers),
    }


async def _until_served(client, world, attempts: int = 100):
    """The first 200 of the read path once the database is back (each try a fresh request)."""
    for _ in range(attempts):
        response = await client.get(f"/api/v1/users/{world.trainer.id}", headers=world.auth(world.admin))
        if response.status_code == 200:
            return response
        assert response.status_code == 503, response.text
        await asyncio.sleep(0.1)
    raise AssertionError("service did not resume")


def _unavailable(response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["code"] == "database_unavailable"


def _problems(caplog) -> list[logging.LogRecord]:
    """Records that would be a stack trace or an error in the server's log."""
    return [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_requests_while_the_database_is_down_are_503_and_service_resumes(
    backend, migrated_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = migrated_database_url
    world = await make_world(url)
    pg = make_url(url)
    proxy = await CuttableProxy(pg.host, pg.port).start()
    caplog.set_level(logging.INFO)
    async with _app_behind(proxy, url) as client:
        before = await _requests(client, world)
        assert {name: r.status_code for name, r in before.items()} == {
            "read": 200, "me": 200, "write": 200, "upsert": 200, "login": 401, "audit": 200,
        }  # fmt: skip
        await proxy.cut()  # pooled connections dropped, new ones refused
        during = [await _requests(client, world) for _ in range(3)]
        for responses in during:
            for response in responses.values():
                _unavailable(response)
        await proxy.restore()
        await _until_served(client, world)
        after = await _requests(client, world)
        await _until_logged_back(caplog)
    assert {name: r.status_code for name, r in after.items()} == {
        "read": 200, "me": 200, "write": 200, "upsert": 200, "login": 401, "audit": 200,
    }  # fmt: skip
    assert _problems(caplog) == []
    _one_episode_logged(caplog)


def _outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every log line, from any logger, that speaks of the database being unavailable or back."""
    return [
        r.getMessage()
        for r in caplog.records
        if "unavailable" in r.getMessage() or "available again" in r.getMessage()
    ]


def _one_episode_logged(caplog: pytest.LogCaptureFixture) -> None:
    lines = _outage_lines(caplog)
    assert len(lines) == 2, lines
    assert "database unavailable" in lines[0] and "available again" in lines[1]


async def _until_logged_back(caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(50):  # the outage's closing line comes from its probe, once a second
        if any("available again" in r.getMessage() for r in caplog.records):
            return
        await asyncio.sleep(0.1)


async def test_a_database_restart_is_one_logged_episode_of_503s(
    backend, migrated_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A restart as PostgreSQL does it: every backend ended with FATAL 57P01 (pg_terminate_backend,
    the same message a shutdown sends), then new connections refused with FATAL 57P03 "starting up"
    (the proxy answers that, the shared server is not restarted), then served again. Every request in
    between is a 503, and the whole episode is two log lines, whatever error each request met."""
    url = migrated_database_url
    world = await make_world(url)
    pg = make_url(url)
    proxy = await CuttableProxy(pg.host, pg.port).start()
    caplog.set_level(logging.INFO)
    async with _app_behind(proxy, url) as client:
        before = await _requests(client, world)
        assert all(r.status_code in (200, 401) for r in before.values())
        _terminate_app_backends(pg.database)
        await proxy.starting()
        during = [await _requests(client, world) for _ in range(3)]
        await proxy.restore()
        await _until_served(client, world)
        after = await _requests(client, world)
        await _until_logged_back(caplog)
    for responses in during:
        for response in responses.values():
            _unavailable(response)
    assert proxy.connections > 0
    assert {name: r.status_code for name, r in after.items()} == {
        name: r.status_code for name, r in before.items()
    }
    assert _problems(caplog) == []
    _one_episode_logged(caplog)


def _terminate_app_backends(dbname: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND usename = %s",
            (dbname, APP_ROLE),
        )


async def test_an_app_started_while_the_database_is_down_answers_503_then_serves(
    backend, migrated_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = migrated_database_url
    world = await make_world(url)
    pg = make_url(url)
    proxy = CuttableProxy(pg.host, pg.port)  # never started yet: nothing listens on its port
    caplog.set_level(logging.INFO)
    async with _app_behind(proxy, url) as client:
        health = await client.get("/health")
        for response in (await _requests(client, world)).values():
            _unavailable(response)
        await proxy.start()
        await _until_served(client, world)
        after = await _requests(client, world)
    assert health.status_code == 503
    assert after["write"].status_code == 200 and after["upsert"].status_code == 200
    assert _problems(caplog) == []


async def test_a_second_outage_soon_after_the_first_is_logged_as_its_own_episode(
    backend, migrated_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Refusals just after recovery (pooled connections that died with the database) belong to the
    episode that ended; a database that goes down again soon after, even briefly, is a new outage:
    two lines each."""
    url = migrated_database_url
    world = await make_world(url)
    pg = make_url(url)
    proxy = await CuttableProxy(pg.host, pg.port).start()
    caplog.set_level(logging.INFO)
    async with _app_behind(proxy, url) as client:
        for episode in (1, 2):
            await _requests(client, world)
            await proxy.cut()
            for response in (await _requests(client, world)).values():
                _unavailable(response)
            # However short: a restart is often over within the probe's interval. The second one
            # is logged all the same (a fresh connection is tried at once, and refused).
            await asyncio.sleep(0.2)
            await proxy.restore()
            await _until_served(client, world)
            for _ in range(50):  # the closing line comes from the probe, once a second
                if sum("available again" in line for line in _outage_lines(caplog)) == episode:
                    break
                await asyncio.sleep(0.1)
    lines = _outage_lines(caplog)
    assert [line.split(" (")[0].split(" after")[0] for line in lines] == [
        "database unavailable",
        "database available again",
        "database unavailable",
        "database available again",
    ], lines
