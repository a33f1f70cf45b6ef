"""The audit trail is append-only in the database itself: UPDATE, DELETE and TRUNCATE fail for every
role, the owner (a superuser here) included; the app role may only read and add."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from tests.rls.conftest import TwoTenants, app_sql
from tests.support.databases import libpq_url

pytestmark = pytest.mark.postgres_only

CHANGES = [
    "UPDATE audit_logs SET action = 'rewritten' WHERE \"tenantId\" = %(tenant)s",
    'DELETE FROM audit_logs WHERE "tenantId" = %(tenant)s',
    "TRUNCATE audit_logs",
]


@pytest.mark.parametrize("statement", CHANGES, ids=["update", "delete", "truncate"])
def test_the_owner_cannot_change_the_audit_trail(tenants: TwoTenants, statement: str) -> None:
    with psycopg.connect(libpq_url(tenants.url)) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
        before = conn.execute(
            'SELECT count(*) FROM audit_logs WHERE "tenantId" = %s', (tenants.a.id,)
        ).fetchone()
        assert before[0] > 0
        with pytest.raises(errors.InsufficientPrivilege, match="audit_logs is append-only"):
            conn.execute(statement, {"tenant": tenants.a.id})
        conn.rollback()
        after = conn.execute(
            'SELECT count(*) FROM audit_logs WHERE "tenantId" = %s', (tenants.a.id,)
        ).fetchone()
    assert after == before


@pytest.mark.parametrize("statement", CHANGES, ids=["update", "delete", "truncate"])
def test_the_app_role_may_not_change_the_audit_trail_at_all(tenants: TwoTenants, statement: str) -> None:
    with app_sql(tenants.url, system=True) as db:
        error = db.refused(statement, {"tenant": tenants.a.id})
    assert isinstance(error, errors.InsufficientPrivilege)
    assert "permission denied" in str(error)


def test_the_app_role_reads_and_adds_to_its_tenants_trail(tenants: TwoTenants) -> None:
    with app_sql(tenants.url, tenant=tenants.a.id) as db:
        assert db.one("SELECT count(*) FROM audit_logs") > 0
        added = db.rowcount(
            'INSERT INTO audit_logs (id, "tenantId", action, "entityType")'
            " VALUES (gen_random_uuid(), %s, %s, %s)",
            (tenants.a.id, "probe.create", "probe"),
        )
    assert added == 1


SYSTEM_TRAIL_CHANGES = [
    "UPDATE system_audit_logs SET action = 'rewritten'",
    "DELETE FROM system_audit_logs",
    "TRUNCATE system_audit_logs",
]


@pytest.mark.parametrize("statement", SYSTEM_TRAIL_CHANGES, ids=["update", "delete", "truncate"])
def test_the_owner_cannot_change_the_installations_trail(tenants: TwoTenants, statement: str) -> None:
    """system_audit_logs (0015: changes without a tenant) is append-only as audit_logs is."""
    with psycopg.connect(libpq_url(tenants.url)) as conn:
        conn.execute(
            'INSERT INTO system_audit_logs (id, action, "entityType") VALUES (gen_random_uuid(), %s, %s)',
            ("system.probe", "probe"),
        )
        with pytest.raises(errors.InsufficientPrivilege, match="system_audit_logs is append-only"):
            conn.execute(statement)
        conn.rollback()
