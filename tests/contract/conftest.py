"""The contract suites: the API against its own OpenAPI document, as outside clients see it."""

from __future__ import annotations

import asyncio

import pytest

from mobility.ops import migrations
from tests.support.admin_api import World, make_world


@pytest.fixture(scope="session")
async def contract_world(database_factory) -> World:
    """A PostgreSQL database of the contract suites' own (fuzzing writes freely), with two tenants."""
    url = database_factory.create("postgresql", "contract")
    await asyncio.to_thread(migrations.upgrade, url)
    return await make_world(url)
