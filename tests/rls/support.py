"""Helpers of the row-level security tests: raw SQL as the app role, on PostgreSQL only.

`make_two_tenants` gives two tenants with a row of their own in EVERY table that has a `tenantId` column
(the tables are read from the catalog and their rows built generically, so a new table is covered
without editing these tests). `app_sql` runs statements as `mobility_app` with the settings
`mobility.core.scope.apply_to_database` would make, in a transaction that is always rolled back: a raw
connection on purpose, so that row-level security is proven alone, without the application's filters.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from mobility.tenants.models import Tenant
from mobility.users.models import User
from tests.support.databases import app_role_url, libpq_url
from tests.support.factories import make_tenant
from tests.support.rows import RowBuilder, model_for
from tests.support.sessions import system_session


def tenant_tables(url: str) -> list[str]:
    """Every table of the schema with a `tenantId` column, from the catalog."""
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute(
            """
            SELECT c.relname FROM pg_attribute a
            JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attname = 'tenantId'
              AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY 1
            """
        ).fetchall()
    return [name for (name,) in rows]


@dataclass
class TwoTenants:
    url: str
    a: Tenant
    b: Tenant
    tables: list[str]
    # table -> tenant id -> the id of that tenant's row
    rows: dict[str, dict[uuid.UUID, uuid.UUID]] = field(default_factory=dict)
    # tenant id -> a user who is a member of it (and of no other tenant)
    members: dict[uuid.UUID, User] = field(default_factory=dict)

    def row(self, table: str, tenant: Tenant) -> uuid.UUID:
        return self.rows[table][tenant.id]


async def make_two_tenants(url: str) -> TwoTenants:
    tables = tenant_tables(url)
    assert len(tables) >= 20, f"tables with a tenantId: {tables}"
    async with system_session(url) as session:
        a, b = await make_tenant(session), await make_tenant(session)
        two = TwoTenants(url, a, b, tables)
        for tenant in (a, b):
            builder = RowBuilder(session, tenant)
            two.members[tenant.id] = await builder.user()
            for table in tables:
                row = await builder.build(model_for(table))
                two.rows.setdefault(table, {})[tenant.id] = row.id
    return two


class AppSql:
    """One transaction as mobility_app (rolled back at the end)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def all(self, query: str | sql.Composable, params: tuple | dict = ()) -> list[tuple]:
        return self.conn.execute(query, params).fetchall()

    def one(self, query: str | sql.Composable, params: tuple | dict = ()):
        return self.conn.execute(query, params).fetchone()[0]

    def rowcount(self, query: str | sql.Composable, params: tuple | dict = ()) -> int:
        with self.conn.transaction():  # a savepoint: a refused statement leaves the rest usable
            return self.conn.execute(query, params).rowcount

    def refused(self, query: str | sql.Composable, params: tuple | dict = ()) -> psycopg.Error:
        """The error of a statement that must fail (its savepoint rolled back); fails the test if not."""
        try:
            with self.conn.transaction():
                self.conn.execute(query, params)
        except psycopg.Error as exc:
            return exc
        raise AssertionError(
            f"not refused: {query if isinstance(query, str) else query.as_string(self.conn)}"
        )


@contextmanager
def app_sql(
    url: str,
    *,
    tenant: uuid.UUID | None = None,
    actor: uuid.UUID | None = None,
    system: bool = False,
    settings: bool = True,
    as_owner: bool = False,
) -> Iterator[AppSql]:
    """A transaction as the app role (or, `as_owner`, as the owner of the test database) with the
    settings of a scope; `settings=False` sets none at all."""
    with psycopg.connect(libpq_url(url if as_owner else app_role_url(url))) as conn:
        if settings:
            conn.execute(
                "SELECT set_config('mobility.tenant_id', %s, true), set_config('mobility.system', %s, true),"
                " set_config('mobility.actor_id', %s, true)",
                (str(tenant) if tenant else "", "on" if system else "off", str(actor) if actor else ""),
            )
        try:
            yield AppSql(conn)
        finally:
            conn.rollback()


def ident(name: str) -> sql.Identifier:
    return sql.Identifier(name)
