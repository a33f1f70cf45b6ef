"""Fresh, empty databases for tests: SQLite files and PostgreSQL databases made and dropped per run."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

BACKENDS = ("sqlite", "postgresql")
# The server every developer and CI machine has (trust auth); override to point elsewhere.
PG_ADMIN_URL = os.environ.get("MOBILITY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def to_sync(url: str) -> str:
    """The same database through a synchronous driver (pytest-alembic, psql-style checks)."""
    parsed = make_url(url)
    driver = {"postgresql": "postgresql+psycopg", "sqlite": "sqlite+pysqlite"}[parsed.get_backend_name()]
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def to_async(url: str) -> str:
    parsed = make_url(url)
    driver = {"postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}[parsed.get_backend_name()]
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """For psql, pg_dump and psycopg.connect."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# The role the API connects as on PostgreSQL (created by revision 0009; see docs/security.md).
APP_ROLE = "mobility_app"


def app_role_url(url: str) -> str:
    """The same database as the app role (no password: the test server trusts local connections)."""
    return make_url(url).set(username=APP_ROLE, password=None).render_as_string(hide_password=False)


def ensure_app_role() -> None:
    """Create the app role before any test migrates, with revision 0009's attributes.

    Revision 0009 creates it when missing, but on a fresh server two workers would race for it, and the
    loser waits for the winner's transaction: pytest-alembic's no-trace test holds one open through a
    whole up-and-down run, longer than a migration's lock_timeout.
    """
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        exists = conn.execute("SELECT FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone()
        # Another worker may make it meanwhile.
        if exists is None:
            with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
                conn.execute(f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE")


def postgres_reachable() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip()


class DatabaseFactory:
    """Makes empty databases on demand and drops every one it made at the end of the run."""

    def __init__(self, tmp_dir: Path, run_tag: str) -> None:
        self.tmp_dir = tmp_dir
        self.run_tag = run_tag
        self._pg_names: list[str] = []

    def create(self, backend: str, label: str = "db") -> str:
        """An async URL of a new empty database."""
        suffix = f"{label}_{secrets.token_hex(4)}"
        if backend == "sqlite":
            return f"sqlite+aiosqlite:///{self.tmp_dir / (suffix + '.db')}"
        name = f"mobility_test_{self.run_tag}_{suffix}"[:63].lower()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self._pg_names.append(name)
        return (
            make_url(PG_ADMIN_URL)
            .set(drivername="postgresql+asyncpg", database=name)
            .render_as_string(hide_password=False)
        )

    def drop(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            Path(parsed.database).unlink(missing_ok=True)
            return
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        if parsed.database in self._pg_names:
            self._pg_names.remove(parsed.database)

    def drop_all(self) -> None:
        if not self._pg_names:
            return
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            for name in self._pg_names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._pg_names.clear()
