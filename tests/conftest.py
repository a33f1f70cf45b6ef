"""Every test that asks for `backend` runs twice: on SQLite and on PostgreSQL.

Tests marked `postgres_only` run on PostgreSQL alone. PostgreSQL is required: the run fails when it
cannot be reached, rather than passing on SQLite alone. On PostgreSQL the API under test connects as
the app role `mobility_app` (tests/support/app.py), so row-level security applies to every API test.
Tests marked `each_wall_alone` run a third time, on PostgreSQL as the owner (a superuser, not bound by
row-level security), so the application's own tenant filters are proven without RLS behind them.
The order of the tests is random (pytest-randomly); the seed is printed, `--randomly-seed=N` replays it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

# Stored secrets are encrypted with MOBILITY_SECRET_KEY, which a configured database needs (core/crypto.py):
# one fresh key per run, in the environment before any Settings is read, so the app, the workers and the
# processes the tests start (which inherit it) all have the same.
os.environ.setdefault("MOBILITY_SECRET_KEY", Fernet.generate_key().decode())

from tests.support.app import api_client  # noqa: E402
from tests.support.databases import BACKENDS, DatabaseFactory, ensure_app_role, postgres_reachable
from tests.support.per_backend import PER_BACKEND, PerBackend
from tests.support.s3 import running_s3_server
from tests.support.sessions import Db


def pytest_sessionstart(session: pytest.Session) -> None:
    problem = postgres_reachable()
    if problem is not None:
        raise pytest.UsageError(f"PostgreSQL is required for the test suite and cannot be reached: {problem}")
    ensure_app_role()


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """The order is random (pytest-randomly); the seed goes at the end too, where -q and CI logs show it."""
    seed = getattr(config.option, "randomly_seed", None)
    if seed is not None and config.getoption("randomly_reorganize", True):
        terminalreporter.write_line(f"test order: random, replay it with --randomly-seed={seed}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        only_pg = metafunc.definition.get_closest_marker("postgres_only") is not None
        params = ["postgresql"] if only_pg else list(BACKENDS)
        if metafunc.definition.get_closest_marker("each_wall_alone") and "row_level_security" in (
            metafunc.fixturenames
        ):
            # PostgreSQL twice: as the app role (both walls), and as the owner, a superuser whom
            # row-level security does not bind, so the application's own filters are proven alone.
            cases = [(backend, True) for backend in params] + [("postgresql", False)]
            ids = [*params, "postgresql-without-rls"]
            metafunc.parametrize(("backend", "row_level_security"), cases, ids=ids, scope="session")
        else:
            metafunc.parametrize("backend", params, scope="session")


@pytest.fixture(scope="session")
def row_level_security() -> bool:
    """Whether `db.acting(...)` is bound by row-level security on PostgreSQL (tests marked
    `each_wall_alone` also run without it)."""
    return True


@pytest.fixture(scope="session")
def database_factory(tmp_path_factory: pytest.TempPathFactory):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    factory = DatabaseFactory(tmp_path_factory.mktemp("databases"), f"{worker}_{secrets.token_hex(3)}")
    yield factory
    factory.drop_all()


@pytest.fixture
def empty_database_url(backend: str, database_factory: DatabaseFactory):
    """An async URL of a brand-new empty database on the test's backend, dropped after the test."""
    url = database_factory.create(backend)
    yield url
    database_factory.drop(url)


@pytest.fixture(scope="session")
async def migrated_database_url(per_backend: PerBackend, backend: str, database_factory) -> str:
    """An async URL of a database at the head revision, shared by the run's tests on `backend` (made
    once per backend; not `db`'s: the suites on `db` set up tables and rows of their own there).

    Tests that write to it clean up after themselves, or make rows of their own (new tenants, unique
    codes and e-mails: tests/support/factories.py), or use their own `empty_database_url`.
    """
    return (await per_backend.db(backend, database_factory, "migrated")).url


# The data layer as the app uses it (tests/support/sessions.py), for every suite that acts as someone.
@pytest.fixture(scope="session")
async def per_backend(database_factory) -> PerBackend:
    """Set-ups kept for the whole run, per backend (see tests/support/per_backend.py for why)."""
    yield PER_BACKEND
    await PER_BACKEND.close()


@pytest.fixture
async def db(per_backend: PerBackend, backend: str, database_factory, row_level_security: bool) -> Db:
    """A migrated database of the backend, of the data-layer and route-by-route suites' own, acted on as
    the API does: `db.acting(scope)` (tests/support/sessions.py)."""
    database = await per_backend.db(backend, database_factory)
    return database if row_level_security else await database.without_row_level_security()


@pytest.fixture
async def client(
    db: Db, per_backend: PerBackend, backend: str, row_level_security: bool
) -> httpx.AsyncClient:
    """An API client on `db`'s database, kept for the whole run (one per backend). On PostgreSQL the API
    connects as the app role; where `db` leaves row-level security out (`each_wall_alone`), as the owner."""
    if row_level_security:
        return await per_backend.enter("api-client", backend, lambda: api_client(db.url))
    return await per_backend.enter(
        "api-client-without-rls", backend, lambda: api_client(db.url, app_database_url=db.url)
    )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """A real S3-compatible server (moto's server mode, its own process on a loopback port) with an empty
    bucket, for the run; started only when a test asks for it (tests/support/s3.py)."""
    with running_s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(params=["local", "s3"])
async def file_storage(request: pytest.FixtureRequest, tmp_path: Path):
    """Each file storage the settings can choose (core/storage.py): a directory under the test's
    tmp_path, and a key prefix of its own in the S3 server's bucket."""
    from mobility.core.storage import LocalDiskStorage

    if request.param == "local":
        storage = LocalDiskStorage(tmp_path / "files")
    else:
        server = request.getfixturevalue("s3_server")
        storage = server.storage(tmp_path / "staging", prefix=f"test-{secrets.token_hex(6)}")
    yield storage
    await storage.close()
