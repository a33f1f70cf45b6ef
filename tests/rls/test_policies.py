"""Raw SQL as the app role against two tenants' rows: nothing without a tenant, only the tenant's own
with one, and no way to write a row into another tenant."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from psycopg import errors, sql

from tests.rls.support import TwoTenants, app_sql, ident
from tests.support.databases import libpq_url

pytestmark = pytest.mark.postgres_only

# Global roles (no tenant) are everyone's: the built-in ones every tenant uses.
SHARED_WHEN_NULL = {"roles"}


def _ids(db, table: str, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    rows = db.all(sql.SQL("SELECT id FROM {} WHERE id = ANY(%s)").format(ident(table)), (ids,))
    return {row[0] for row in rows}


def test_every_tenant_table_holds_rows_of_both_tenants(tenants: TwoTenants) -> None:
    """The premise of the tests below, checked as the owner (a superuser here, so no policy applies)."""
    with psycopg.connect(libpq_url(tenants.url)) as conn:
        for table in tenants.tables:
            found = conn.execute(
                sql.SQL('SELECT DISTINCT "tenantId" FROM {} WHERE "tenantId" = ANY(%s)').format(ident(table)),
                ([tenants.a.id, tenants.b.id],),
            ).fetchall()
            assert {row[0] for row in found} == {tenants.a.id, tenants.b.id}, table


@pytest.mark.parametrize("settings", [False, True], ids=["nothing-set", "set-empty"])
def test_without_a_tenant_the_app_role_sees_no_tenant_row(tenants: TwoTenants, settings: bool) -> None:
    with app_sql(tenants.url, settings=settings) as db:
        seen = {
            table: db.one(
                sql.SQL('SELECT count(*) FROM {} WHERE "tenantId" IS NOT NULL').format(ident(table))
            )
            for table in tenants.tables
        }
        unowned = {
            table: db.one(sql.SQL('SELECT count(*) FROM {} WHERE "tenantId" IS NULL').format(ident(table)))
            for table in tenants.tables
            if table not in SHARED_WHEN_NULL
        }
    assert not {table: n for table, n in seen.items() if n}, "rows of some tenant are visible without one"
    assert not {table: n for table, n in unowned.items() if n}, "rows without a tenant are visible"


def test_with_a_tenant_the_app_role_sees_exactly_that_tenants_rows(tenants: TwoTenants) -> None:
    a, b = tenants.a.id, tenants.b.id
    with app_sql(tenants.url, tenant=a) as db:
        for table in tenants.tables:
            own, other = tenants.rows[table][a], tenants.rows[table][b]
            assert _ids(db, table, [own, other]) == {own}, table
            visible = db.all(sql.SQL('SELECT DISTINCT "tenantId" FROM {}').format(ident(table)))
            allowed = {a, None} if table in SHARED_WHEN_NULL else {a}
            assert {row[0] for row in visible} <= allowed, table


def test_the_system_setting_sees_every_tenant(tenants: TwoTenants) -> None:
    with app_sql(tenants.url, system=True) as db:
        for table in tenants.tables:
            both = list(tenants.rows[table].values())
            assert _ids(db, table, both) == set(both), table


def _copy_into(table: str, source: uuid.UUID, changes: dict[str, object]) -> sql.Composed:
    """INSERT a copy of row `source` of `table` with a new id and `changes` (as a JSON object)."""
    return sql.SQL(
        "INSERT INTO {table} SELECT (jsonb_populate_record(NULL::{table}, to_jsonb(x) || %s::jsonb)).*"
        " FROM {table} x WHERE id = {source}"
    ).format(table=ident(table), source=sql.Literal(source))


def test_inserting_a_row_of_another_tenant_is_refused(tenants: TwoTenants) -> None:
    a, b = tenants.a, tenants.b
    b_member = tenants.members[b.id].id
    with app_sql(tenants.url, tenant=a.id) as db:
        for table in tenants.tables:
            changes = {"id": str(uuid.uuid4()), "tenantId": str(b.id)}
            if table == "sessions":  # a session belongs to its user: one of tenant B's
                changes |= {"userId": str(b_member), "token": uuid.uuid4().hex}
            if table == "users":
                changes |= {"email": f"{uuid.uuid4().hex}@example.org"}
            statement = _copy_into(table, tenants.row(table, a), changes)
            error = db.refused(statement, (json.dumps(changes),))
            assert isinstance(error, errors.InsufficientPrivilege), (table, error)
            assert "row-level security" in str(error), (table, error)


def test_moving_a_row_to_another_tenant_is_refused(tenants: TwoTenants) -> None:
    a, b = tenants.a, tenants.b
    with app_sql(tenants.url, tenant=a.id) as db:
        for table in tenants.tables:
            row = tenants.row(table, a)
            if table == "users":
                continue  # a user's tenantId is only their primary tenant; memberships decide (below)
            if table == "sessions":  # a session belongs to its user: hand it to one of tenant B's
                statement = sql.SQL('UPDATE sessions SET "userId" = %s WHERE id = %s')
                params: tuple = (tenants.members[b.id].id, row)
            else:
                statement = sql.SQL('UPDATE {} SET "tenantId" = %s WHERE id = %s').format(ident(table))
                params = (b.id, row)
            error = db.refused(statement, params)
            assert isinstance(error, errors.InsufficientPrivilege), (table, error)
            if table != "audit_logs":  # which the app role may not update at all
                assert "row-level security" in str(error), (table, error)


def test_another_tenants_rows_cannot_be_updated_or_deleted(tenants: TwoTenants) -> None:
    a, b = tenants.a, tenants.b
    with app_sql(tenants.url, tenant=a.id) as db:
        for table in tenants.tables:
            if table == "audit_logs":
                continue  # no UPDATE or DELETE for the app role at all (test_audit_trail)
            row = tenants.row(table, b)
            touch = sql.SQL('UPDATE {} SET "tenantId" = "tenantId" WHERE id = %s').format(ident(table))
            assert db.rowcount(touch, (row,)) == 0, table
            delete = sql.SQL("DELETE FROM {} WHERE id = %s").format(ident(table))
            assert db.rowcount(delete, (row,)) == 0, table
    with app_sql(tenants.url, tenant=b.id) as db:
        for table in tenants.tables:
            assert _ids(db, table, [tenants.row(table, b)]) == {tenants.row(table, b)}, table
