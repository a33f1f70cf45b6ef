from __future__ import annotations

import pytest

from tests.core.scoped import PER_BACKEND, Db, PerBackend


@pytest.fixture(scope="session")
async def per_backend(database_factory) -> PerBackend:
    """Set-ups kept for the whole run, per backend (see tests/core/scoped.py for why)."""
    yield PER_BACKEND
    await PER_BACKEND.close()


@pytest.fixture
async def db(per_backend: PerBackend, backend: str, database_factory, row_level_security: bool) -> Db:
    """A migrated database of the backend, of these suites' own, through the application's session class."""
    database = await per_backend.db(backend, database_factory)
    return database if row_level_security else await database.without_row_level_security()
