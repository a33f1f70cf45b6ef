"""FORCE ROW LEVEL SECURITY binds the tables' owner too when it is not a superuser (as in production):
the owner's own tools (migrations, seed, backup and restore) work under the system setting, and without
it the owner sees nothing either."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from mobility.ops import backup, migrations
from mobility.ops.seed import seed
from tests.support.databases import PG_ADMIN_URL, DatabaseFactory, libpq_url
from tests.support.sessions import system_session

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def owned_database_url(backend: str, database_factory: DatabaseFactory) -> Iterator[str]:
    """A new database owned by a new role that is not a superuser, migrated to head by that role."""
    owner = f"mobility_test_owner_{secrets.token_hex(4)}"
    url = database_factory.create(backend, "owned")
    name = make_url(url).database
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {owner} LOGIN NOSUPERUSER NOBYPASSRLS")
        conn.execute(f'ALTER DATABASE "{name}" OWNER TO {owner}')
    owned = make_url(url).set(username=owner).render_as_string(hide_password=False)
    try:
        migrations.upgrade(owned)
        yield owned
    finally:
        database_factory.drop(url)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {owner}")


def _count(url: str, table: str, *, system: bool) -> int:
    """Rows the owner sees, raw: with or without the system setting, the policies alone decide."""
    with psycopg.connect(libpq_url(url)) as conn:
        if system:
            conn.execute("SELECT set_config('mobility.system', 'on', true)")
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


async def test_the_owner_seeds_backs_up_and_restores_under_forced_rls(
    owned_database_url: str, tmp_path: Path
) -> None:
    url = owned_database_url
    async with system_session(url) as session:  # as the owner, who is not a superuser here
        await seed(session, admin_email="admin@wti.example", admin_password=secrets.token_urlsafe(16))
    seeded = {table: _count(url, table, system=True) for table in ("candidates", "users", "audit_logs")}
    assert all(seeded.values()), seeded
    # The owner without the system setting: FORCE applies, nothing is visible.
    assert {table: _count(url, table, system=False) for table in seeded} == dict.fromkeys(seeded, 0)

    dump = backup.backup(url, directory=tmp_path)
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("SELECT set_config('mobility.system', 'on', true)")
        conn.execute('UPDATE candidates SET "firstName" = %s', ("after the backup",))
        conn.commit()
    backup.restore(url, dump)
    assert {table: _count(url, table, system=True) for table in seeded} == seeded
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("SELECT set_config('mobility.system', 'on', true)")
        names = conn.execute('SELECT DISTINCT "firstName" FROM candidates').fetchall()
    assert ("after the backup",) not in names
    with psycopg.connect(libpq_url(url)) as conn:
        protected = conn.execute(
            "SELECT bool_and(relrowsecurity AND relforcerowsecurity) FROM pg_class WHERE relname = ANY(%s)",
            (list(seeded),),
        ).fetchone()[0]
        triggers = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'audit_logs'::regclass AND NOT tgisinternal"
        ).fetchone()[0]
    assert protected and triggers == 2, "the restore brought the tables back without their protection"
