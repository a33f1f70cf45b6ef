"""The contract suites: the API against its own OpenAPI document, as outside clients see it."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from mobility.ops import migrations
from tests.support.admin_api import World, make_world
from tests.support.routes import Objects
from tests.support.sessions import Db


@pytest.fixture(scope="session")
async def contract_world(database_factory) -> World:
    """A PostgreSQL database of the contract suites' own (fuzzing writes freely), with two tenants."""
    url = database_factory.create("postgresql", "contract")
    await asyncio.to_thread(migrations.upgrade, url)
    return await make_world(url)


@pytest.fixture
async def admin(
    db: Db, client: httpx.AsyncClient, per_backend, backend: str
) -> tuple[httpx.AsyncClient, dict[str, str]]:
    """The run's API client on `db`, and the headers of a System Admin acting in a tenant of these
    suites' own (made once per backend)."""

    client, headers, _world = await _admin_world(db, client, per_backend, backend)
    return client, headers


@pytest.fixture
async def admin_objects(db: Db, client: httpx.AsyncClient, per_backend, backend: str) -> Objects:
    """Objects of `admin`'s tenant, made on first use, to put in the paths of routes that name one."""
    _client, _headers, world = await _admin_world(db, client, per_backend, backend)
    return Objects(world.tenant, db.url)


async def _admin_world(db: Db, client: httpx.AsyncClient, per_backend, backend: str):
    async def make():
        world = await make_world(db.url)
        return client, world.auth(world.system_admin), world

    return await per_backend.get("contract-admin", backend, make)
