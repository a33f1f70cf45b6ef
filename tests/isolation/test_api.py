"""Tenant isolation through the API, for every route that names an object by id, found from the app.

An Admin of tenant B asks for (reads, changes, acts on, deletes) objects of tenant A by their ids: the
answer is 404, exactly as for an id that does not exist (403 only where B's Admin may not use the route
at all, whatever the id). Bodies referring to A's objects (e.g. an invitation with A's role) are
refused as invalid input (422) or not found (404). A's objects, and everything that refers to them,
are unchanged afterwards.
"""

from __future__ import annotations

import typing
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from mobility.authz.permissions import SystemRole
from mobility.core.config import Settings
from mobility.main import create_app
from mobility.roles.models import Role
from mobility.tenants.models import Tenant
from mobility.users.models import UserTenant
from tests.authz.permission_table import PERMISSION_TABLE
from tests.support.app import login
from tests.support.factories import PASSWORD, make_tenant, make_user
from tests.support.routes import Objects, Route, app_routes, body_for, model_for_param, path_for, request_body
from tests.support.rows import RowBuilder, references_to, snapshot
from tests.support.sessions import Db, system_session

ROUTES = app_routes(create_app(Settings(database_url="sqlite+aiosqlite://")))
BY_ID = [route for route in ROUTES if route.id_params]

# On PostgreSQL also with the API connected as the owner, whom row-level security does not bind: the
# application's filters alone.
pytestmark = pytest.mark.each_wall_alone


def _uuid_fields(route: Route) -> list[str]:
    """Top-level body fields that refer to an object by id (`roleId`, `candidateId`, ...)."""
    if route.body is None:
        return []
    found = []
    for name, info in route.body.model_fields.items():
        options = typing.get_args(info.annotation) or (info.annotation,)
        if uuid.UUID in options and model_for_param(name) is not None:
            found.append(name)
    return found


BODY_REFERENCES = [(route, name) for route in ROUTES for name in _uuid_fields(route)]


def test_there_are_routes_to_check() -> None:
    assert BY_ID, "no route with an id in its path found: is the route walk broken?"


@dataclass
class World:
    client: httpx.AsyncClient
    tenant_a: Tenant
    tenant_b: Tenant
    headers_b: dict[str, str]
    objects_b: Objects
    # B's Admin also belongs to A, holding this custom role of A there (what their /me shows).
    role_held_in_a: uuid.UUID


@pytest.fixture
async def world(
    db: Db, client: httpx.AsyncClient, per_backend, backend: str, row_level_security: bool
) -> World:
    name = "isolation-api" if row_level_security else "isolation-api-without-rls"

    async def make() -> World:
        async with system_session(db.url) as session:
            tenant_a, tenant_b = await make_tenant(session), await make_tenant(session)
            admin_b = await make_user(session, tenant_b, SystemRole.admin)
            role_a = await RowBuilder(session, tenant_a).build(Role, permissions=["users:read"])
            session.add(UserTenant(user_id=admin_b.id, tenant_id=tenant_a.id, role_id=role_a.id))
        headers = await login(client, admin_b.email, PASSWORD, tenant_b.code)
        return World(client, tenant_a, tenant_b, headers, Objects(tenant_b, db.url), role_a.id)

    return await per_backend.get(name, backend, make)


async def state_of(db: Db, objects: dict[str, Any]) -> dict[str, Any]:
    """Each object's row, and how many rows of each table refer to it."""
    state = {}
    async with system_session(db.url) as session:
        for name, object_id in objects.items():
            model = model_for_param(name)
            state[name] = await snapshot(session, model, object_id)
            for source, column in references_to(model.__tablename__):
                count = select(func.count()).select_from(source.__table__).where(column == object_id)
                state[f"{name} <- {source.__tablename__}.{column.name}"] = (
                    await session.execute(count)
                ).scalar()
    return state


def _may(route: Route) -> bool:
    """Whether B's Admin may use the route at all (tests/authz/permission_table.py)."""
    return "Admin" in PERMISSION_TABLE[route.key].roles


@pytest.mark.parametrize("route", BY_ID, ids=[route.id for route in BY_ID])
async def test_another_tenants_object_is_not_found(db: Db, world: World, route: Route) -> None:
    # Fresh objects of A for each route: what an earlier route did (if it wrongly could) does not matter.
    objects_a = Objects(world.tenant_a, db.url)
    mine = {name: await objects_a.id_for(name) for name in route.id_params}
    before = await state_of(db, mine)

    async def value_of(name: str) -> Any:
        return mine[name] if name in mine else await world.objects_b.id_for(name)

    path = await path_for(route, value_of)
    body = await request_body(route, world.objects_b.id_for)
    response = await world.client.request(route.method, path, headers=world.headers_b, **body)

    expected = {404} if _may(route) else {403, 404}
    assert response.status_code in expected, (
        f"{route.id} on A's object: {response.status_code} {response.text}"
    )
    assert response.json()["code"] in ("not_found", "forbidden")
    assert await state_of(db, mine) == before, f"{route.id} changed tenant A's data"


@pytest.mark.parametrize(
    ("route", "field"), BODY_REFERENCES, ids=[f"{route.id} {field}" for route, field in BODY_REFERENCES]
)
async def test_a_body_cannot_refer_to_another_tenants_object(
    db: Db, world: World, route: Route, field: str
) -> None:
    objects_a = Objects(world.tenant_a, db.url)
    theirs = {field: await objects_a.id_for(field)}
    before = await state_of(db, theirs)

    path = await path_for(route, world.objects_b.id_for)
    body = await body_for(route, world.objects_b.id_for)
    info = route.body.model_fields[field]
    body[info.alias or field] = str(theirs[field])
    response = await world.client.request(route.method, path, json=body, headers=world.headers_b)

    expected = {404, 422} if _may(route) else {403}
    assert response.status_code in expected, (
        f"{route.id} with A's {field}: {response.status_code} {response.text}"
    )
    assert await state_of(db, theirs) == before, f"{route.id} made tenant B's data refer to tenant A's"


ROLE_REFERENCES = [(route, field) for route, field in BODY_REFERENCES if model_for_param(field) is Role]


@pytest.mark.parametrize(
    ("route", "field"), ROLE_REFERENCES, ids=[f"{route.id} {field}" for route, field in ROLE_REFERENCES]
)
async def test_a_role_the_caller_holds_in_another_tenant_cannot_be_granted_here(
    db: Db, world: World, route: Route, field: str
) -> None:
    """The row rules show a caller the roles they hold elsewhere (for /me); granting one is still refused."""
    theirs = {field: world.role_held_in_a}
    before = await state_of(db, theirs)
    path = await path_for(route, world.objects_b.id_for)
    body = await body_for(route, world.objects_b.id_for)
    body[route.body.model_fields[field].alias or field] = str(world.role_held_in_a)
    response = await world.client.request(route.method, path, json=body, headers=world.headers_b)
    assert response.status_code in ({404, 422} if _may(route) else {403}), response.text
    assert await state_of(db, theirs) == before
