"""An unreachable database is a 503, not a 500 (PostgreSQL, the API as the app role).

The app talks to PostgreSQL through a loopback proxy that the test cuts (every connection dropped, new
ones refused, as when the server is down) and restores: the shared server itself is never stopped.
While cut, every API request is answered 503 problem+json with Retry-After, one log line says the
database is unavailable (not a stack trace per request); once restored, service resumes by itself.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy.engine import make_url

from tests.support.admin_api import make_world
from tests.support.app import api_client
from tests.support.databases import app_role_url
from tests.support.tcp_proxy import CuttableProxy

pytestmark = pytest.mark.postgres_only
KEY = "placements.passportValidityMonths"


def _through(proxy: CuttableProxy, url: str) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


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
    try:
        async with api_client(
            url, app_database_url=_through(proxy, app_role_url(url)), database_connect_timeout=2
        ) as client:
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
            for _ in range(50):  # the outage's closing line comes from its probe, once a second
                if any("available again" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.1)
    finally:
        await proxy.close()
    assert {name: r.status_code for name, r in after.items()} == {
        "read": 200, "me": 200, "write": 200, "upsert": 200, "login": 401, "audit": 200,
    }  # fmt: skip
    assert _problems(caplog) == []
    outage_lines = [r.getMessage() for r in caplog.records if r.name == "mobility.core.db"]
    assert len(outage_lines) == 2, outage_lines
    assert "database unavailable" in outage_lines[0] and "available again" in outage_lines[1]


async def test_an_app_started_while_the_database_is_down_answers_503_then_serves(
    backend, migrated_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = migrated_database_url
    world = await make_world(url)
    pg = make_url(url)
    proxy = CuttableProxy(pg.host, pg.port)  # never started yet: nothing listens on its port
    caplog.set_level(logging.INFO)
    try:
        async with api_client(
            url, app_database_url=_through(proxy, app_role_url(url)), database_connect_timeout=2
        ) as client:
            health = await client.get("/health")
            for response in (await _requests(client, world)).values():
                _unavailable(response)
            await proxy.start()
            await _until_served(client, world)
            after = await _requests(client, world)
    finally:
        await proxy.close()
    assert health.status_code == 503
    assert after["write"].status_code == 200 and after["upsert"].status_code == 200
    assert _problems(caplog) == []
