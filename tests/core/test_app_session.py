"""STYLE rule 18: nothing safety-critical is installed by an import side effect.

The tenant guard knows every table whatever was imported first; the audit trail and the row rules hang
on the application's one session class (mobility.app_session.AppSession), which every caller opens, a
background worker included; a ScopedSession made any other way refuses to act rather than act unguarded."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import pytest
from sqlalchemy import select

from mobility.app_session import create_sessionmaker
from mobility.audit.models import AuditLog
from mobility.authz.permissions import SystemRole
from mobility.core.db import create_engine, transaction
from mobility.core.scope import Scope, TenancyViolation, apply_to_database, tenant_view
from mobility.core.tenancy import ScopedSession
from mobility.settings.models import Setting
from mobility.tenants.models import Tenant
from tests.support.factories import make_tenant, make_user
from tests.support.sessions import Db, scope_of, system_session

# The reproduction of issue 10: the first scoped statement names a table, not a model.
_STATEMENT_BY_TABLE = """
import asyncio, uuid
{imports}
from sqlalchemy import select
from mobility.app_session import create_sessionmaker
from mobility.core.db import create_engine
from mobility.core.scope import Scope, TenancyViolation, bind_scope
from mobility.tenants.models import Tenant
from mobility.training.models import Course

async def main():
    # Its own engine: the reproduction runs in a fresh interpreter, on an empty in-memory database.
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    results = []
    async with create_sessionmaker(engine)() as session:
        bind_scope(session, Scope(tenant_id=uuid.uuid4(), actor_id=uuid.uuid4(), role="Admin"))
        for table in {order}:
            try:
                await session.execute(select(table))
                results.append("executed")
            except TenancyViolation:
                results.append("refused")
            except Exception as exc:  # no such table: it ran
                results.append("executed: " + type(exc).__name__)
    await engine.dispose()
    print(results)

asyncio.run(main())
"""


@pytest.mark.parametrize(
    "order", ["[Tenant.__table__, Course.__table__]", "[Course.__table__, Tenant.__table__]"]
)
def test_a_statement_by_table_is_refused_whatever_was_imported_first(order: str) -> None:
    script = _STATEMENT_BY_TABLE.format(imports="import mobility.main", order=order)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    # Tenant is row-filtered (by rule) and Course is tenant-scoped: both refused, in either order.
    assert result.stdout.strip() == "['refused', 'refused']", result.stdout + result.stderr


async def test_a_worker_session_writes_its_audit_trail(migrated_database_url: str) -> None:
    """A background job opens sessions the way the API does, from the same factory, and its writes
    are in the trail."""
    async with system_session(migrated_database_url) as session:
        tenant = await make_tenant(session)
        admin = await make_user(session, tenant)
    # Deliberately not system_session: the worker's own engine and sessions, as a worker would open them.
    engine = create_engine(migrated_database_url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            await apply_to_database(session, Scope(tenant_id=tenant.id, actor_id=admin.id, role="Admin"))
            setting = Setting(key=f"worker.{uuid.uuid4().hex[:8]}", value={"ran": True})
            session.add(setting)
        async with transaction(create_sessionmaker(engine)) as session:
            await apply_to_database(session, Scope.for_system())
            rows = (
                (await session.execute(select(AuditLog).where(AuditLog.entity_id == setting.id)))
                .scalars()
                .all()
            )
    finally:
        await engine.dispose()
    assert [(row.actor_id, row.tenant_id, row.before) for row in rows] == [(admin.id, tenant.id, None)]


async def test_a_session_class_without_rules_or_trail_refuses(migrated_database_url: str) -> None:
    from mobility.core.db import create_sessionmaker as bare_sessionmaker

    # Deliberately a session class other than AppSession, made by hand: the one that must refuse.
    engine = create_engine(migrated_database_url)
    try:
        async with bare_sessionmaker(engine, ScopedSession)() as session:
            await apply_to_database(
                session, Scope(tenant_id=uuid.uuid4(), actor_id=uuid.uuid4(), role="Admin")
            )
            with pytest.raises(TenancyViolation, match="no row rules"):
                await session.execute(select(Tenant))
            await apply_to_database(session, Scope.for_system())
            session.add(
                Tenant(name=f"Unaudited {uuid.uuid4().hex[:6]}", code=f"U{uuid.uuid4().hex[:6].upper()}")
            )
            with pytest.raises(TenancyViolation, match="no audit trail"):
                await session.flush()
    finally:
        await engine.dispose()


async def test_no_flush_inside_tenant_view(db: Db) -> None:
    async with system_session(db.url) as session:
        tenant = await make_tenant(session)
        admin = await make_user(session, tenant)
    async with db.acting(scope_of(tenant.id, admin.id, SystemRole.admin)) as session:
        session.add(Setting(key="inside.view", value=1))
        with tenant_view(session), pytest.raises(TenancyViolation, match="tenant_view"):
            await session.flush()
