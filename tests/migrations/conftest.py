"""pytest-alembic's fixtures, on both backends: a fresh database per test, reached synchronously."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.config import Config
from sqlalchemy import Engine

from mobility.ops.migrations import alembic_config as make_alembic_config
from tests.migrations.support import create_sync_engine
from tests.support.databases import DatabaseFactory


@pytest.fixture
def alembic_engine(backend: str, database_factory: DatabaseFactory) -> Iterator[Engine]:
    url = database_factory.create(backend, "alembic")
    # Foreign keys stay off on SQLite, as env.py has them while migrating (batch rebuilds drop and
    # recreate referenced tables); the no-trace test runs everything inside one transaction, where
    # SQLite cannot switch them.
    engine = create_sync_engine(url, foreign_keys=False)
    yield engine
    engine.dispose()
    database_factory.drop(url)


@pytest.fixture
def alembic_config(alembic_engine: Engine) -> Config:
    # The project's own configuration (script location, quiet logging); env.py takes the engine that
    # pytest-alembic hands it through `config.attributes["connection"]`.
    return make_alembic_config(alembic_engine.url.render_as_string(hide_password=False))
