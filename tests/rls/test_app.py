"""The application under row-level security: the API connects as the app role, leaves nothing of a
request's tenant on a pooled connection, and its own flows pass the policies."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy import event, select, text

from mobility.app_session import create_sessionmaker
from mobility.audit.models import AuditLog
from mobility.authz.permissions import SystemRole
from mobility.core.config import Settings
from mobility.core.db import create_engine
from mobility.main import create_app
from mobility.roles.models import Role
from mobility.users.models import User, UserTenant
from tests.support.app import api_client, login, new_address
from tests.support.databases import app_role_url
from tests.support.factories import PASSWORD, add_membership, make_tenant, make_user, system_role, unique
from tests.support.sessions import Db, scope_of, system_session

pytestmark = pytest.mark.postgres_only

SETTINGS = (
    "SELECT current_setting('mobility.tenant_id', true), current_setting('mobility.system', true),"
    " current_setting('mobility.actor_id', true)"
)


async def test_the_api_connects_as_the_app_role(migrated_database_url: str) -> None:
    app = create_app(
        Settings(database_url=migrated_database_url, app_database_url=app_role_url(migrated_database_url))
    )
    async with app.router.lifespan_context(app), app.state.engine.connect() as connection:
        user = (await connection.execute(text("SELECT current_user"))).scalar()
    assert user == "mobility_app"


@asynccontextmanager
async def _app_on_one_connection(url: str) -> AsyncIterator[tuple[httpx.AsyncClient, object, list[int]]]:
    """The API with pools of exactly one connection each (as the app role: the ORM's and the read
    path's, core/db.py), and the ids of the ORM pool's checkouts."""
    app = create_app(Settings(database_url=url, app_database_url=app_role_url(url), read_pool_size=1))
    async with app.router.lifespan_context(app):
        # Not a test session: the app's own engine, replaced by one of a single watched connection.
        engine = create_engine(app_role_url(url), pool_size=1, max_overflow=0)
        checkouts: list[int] = []
        event.listen(
            engine.sync_engine, "checkout", lambda dbapi, _record, _proxy: checkouts.append(id(dbapi))
        )
        app.state.engine, app.state.sessionmaker = engine, create_sessionmaker(engine)
        try:
            transport = httpx.ASGITransport(app=app, client=(new_address(), 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield client, engine, checkouts
        finally:
            await engine.dispose()


async def test_a_pooled_connection_reused_after_a_request_carries_no_tenant(
    migrated_database_url: str,
) -> None:
    async with system_session(migrated_database_url) as session:
        tenant = await make_tenant(session)
        admin = await make_user(session, tenant)
    async with _app_on_one_connection(migrated_database_url) as (client, engine, checkouts):
        headers = await login(client, admin.email, PASSWORD)
        me = await client.get("/api/v1/me", headers=headers)
        # The read path alone (session lookup and core.reads), on the read pool's connection.
        user = await client.get(f"/api/v1/users/{admin.id}", headers=headers)
        # A request that fails half-way (unknown session) and one that is refused.
        assert (await client.get("/api/v1/me", headers={"Authorization": "Bearer nope"})).status_code == 401
        async with engine.connect() as connection:
            left = (await connection.execute(text(SETTINGS))).one()
        async with client._transport.app.state.read_pool.acquire() as connection:  # type: ignore[attr-defined]
            left_on_reads = tuple(await connection.fetchrow(SETTINGS))
            # In the next request's transaction, begun and empty (core/db.py).
            begun = connection.is_begun()
    # /me read the user, their memberships and roles under row-level security: the tenant was set.
    assert me.status_code == 200, me.text
    assert me.json()["tenantId"] == str(tenant.id)
    assert user.status_code == 200, user.text
    assert len(checkouts) >= 2 and len(set(checkouts)) == 1, "expected one connection, reused"
    assert all(value in ("", None) for value in left), f"a request's settings outlived it: {left}"
    assert all(value in ("", None) for value in left_on_reads), f"settings outlived it: {left_on_reads}"
    assert begun


async def test_me_lists_every_membership_with_its_role(migrated_database_url: str) -> None:
    """A custom role held in another tenant is visible to its holder (the roles policy), so /me lists it."""
    async with system_session(migrated_database_url) as session:
        home, other = await make_tenant(session), await make_tenant(session)
        custom = Role(name=unique("Coordinator "), tenant_id=other.id, system_role=False)
        session.add(custom)
        await session.flush()
        member = await make_user(session, home, SystemRole.recruiter)
        session.add(UserTenant(user_id=member.id, tenant_id=other.id, role_id=custom.id, is_primary=False))
    async with api_client(migrated_database_url) as client:
        headers = await login(client, member.email, PASSWORD, home.code)
        me = await client.get("/api/v1/me", headers=headers)
        switched = await client.post(
            "/api/v1/auth/switch-tenant", json={"tenantCode": other.code}, headers=headers
        )
    assert me.status_code == 200, me.text
    assert {(t["tenantCode"], t["role"]) for t in me.json()["tenants"]} == {
        (home.code, SystemRole.recruiter.value),
        (other.code, custom.name),
    }
    assert switched.status_code == 200, switched.text
    assert switched.json()["tenantId"] == str(other.id)


async def test_a_password_change_in_a_second_tenant_is_audited_there(migrated_database_url: str) -> None:
    """The user row's tenantId is the primary tenant; the change is made (and audited) in the other."""
    async with system_session(migrated_database_url) as session:
        home, other = await make_tenant(session), await make_tenant(session)
        member = await make_user(session, home, SystemRole.recruiter)
        await add_membership(session, member, other, SystemRole.recruiter)
    new_password = secrets.token_urlsafe(16)
    async with api_client(migrated_database_url) as client:
        headers = await login(client, member.email, PASSWORD, other.code)
        changed = await client.post(
            "/api/v1/me/password",
            json={"currentPassword": PASSWORD, "newPassword": new_password},
            headers=headers,
        )
    assert changed.status_code == 200, changed.text
    async with system_session(migrated_database_url) as session:
        trail = (
            (
                await session.execute(
                    select(AuditLog.tenant_id).where(
                        AuditLog.entity_id == member.id, AuditLog.actor_id == member.id
                    )
                )
            )
            .scalars()
            .all()
        )
    assert other.id in trail


async def test_an_invitation_through_the_data_layer_passes_the_policies(db: Db) -> None:
    """The ORM's own statements (RETURNING included) as the app role: user first, then the membership,
    and the audit trail of both in the tenant."""
    async with system_session(db.url) as session:
        tenant = await make_tenant(session)
        admin = await make_user(session, tenant)
        recruiter = (await system_role(session, SystemRole.recruiter)).id
    async with db.acting(scope_of(tenant.id, admin.id, SystemRole.admin)) as session:
        user = User(email=f"{unique()}@example.org", tenant_id=tenant.id, status="invited")
        session.add(user)
        await session.flush()
        session.add(UserTenant(user_id=user.id, tenant_id=tenant.id, role_id=recruiter))
        await session.flush()
        found = (await session.execute(select(User).where(User.id == user.id))).scalar_one()
        trail = (
            (await session.execute(select(AuditLog.entity_type).where(AuditLog.tenant_id == tenant.id)))
            .scalars()
            .all()
        )
    assert found.id == user.id
    assert {"users", "user_tenants"} <= set(trail)


async def test_a_pooled_connection_the_server_closed_is_replaced_not_failed(
    migrated_database_url: str,
) -> None:
    """No pre-ping (a round trip per request): a connection the server ended while it sat in the
    pool is swapped at checkout (core/db.py) instead of failing the next request."""
    async with system_session(migrated_database_url) as session:
        tenant = await make_tenant(session)
        admin = await make_user(session, tenant)
    async with _app_on_one_connection(migrated_database_url) as (client, engine, checkouts):
        headers = await login(client, admin.email, PASSWORD)  # the ORM's connection, now pooled
        assert (await client.get(f"/api/v1/users/{admin.id}", headers=headers)).status_code == 200
        async with engine.connect() as connection:
            pids = [(await connection.execute(text("SELECT pg_backend_pid()"))).scalar()]
        async with client._transport.app.state.read_pool.acquire() as connection:  # type: ignore[attr-defined]
            pids.append(connection.get_server_pid())
        async with system_session(migrated_database_url) as session:
            for pid in pids:  # the ORM's connection and the read path's
                ended = await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                assert ended.scalar()
        await asyncio.sleep(0.3)  # the event loop sees the sockets close
        assert (await client.get(f"/api/v1/users/{admin.id}", headers=headers)).status_code == 200
        renamed = await client.patch("/api/v1/me", headers=headers, json={"name": "Renamed after a restart"})
        assert renamed.status_code == 204, renamed.text
