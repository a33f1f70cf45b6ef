"""The permission matrix, cell by cell, through the API (BFLA), and authentication on every route.

Every route guarded by `require(permission)` is called once by a user of each of the seven system roles,
with a syntactically valid request about objects of the caller's own tenant: a role whose cell of the
matrix lacks the permission gets 403 `forbidden`; a role that has it gets anything but 401/403 (and no
5xx, and no request-validation error, which would mean the request never reached the endpoint).
Each role acts in a tenant of its own, so what one role's calls change cannot affect another's.
Routes are found from the app when the tests run: a new route is covered without editing this file.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from mobility.agents.models import Agent, Broker
from mobility.authz.permissions import ALL_PERMISSIONS, MATRIX, SystemRole
from mobility.candidates.models import Candidate
from mobility.core.config import Settings
from mobility.main import create_app
from mobility.tenants.models import Tenant
from tests.core.routes import PUBLIC_ROUTES, Objects, Route, app_routes, body_for, path_for
from tests.core.scoped import Db
from tests.factories import PASSWORD, make_tenant, make_user, unique
from tests.support.app import api_client, login

ROUTES = app_routes(create_app(Settings(database_url="sqlite+aiosqlite://")))
GUARDED = [route for route in ROUTES if route.permissions]
# Reads first, removals last: a role's own calls must not remove what its later calls name.
_ORDER = {"GET": 0, "POST": 1, "PUT": 2, "PATCH": 3, "DELETE": 4}
GUARDED.sort(key=lambda route: (_ORDER.get(route.method, 5), "/activate" in route.path, route.path))


def test_routes_are_found_and_name_real_permissions() -> None:
    assert GUARDED, "no route with require(...) found: is the route walk broken?"
    unknown = {route.id: sorted(route.permissions - set(ALL_PERMISSIONS)) for route in GUARDED}
    assert not {k: v for k, v in unknown.items() if v}, f"routes requiring unknown permissions: {unknown}"
    assert all(len(route.permissions) == 1 for route in GUARDED), "one permission per route expected"


@pytest.fixture
async def client(db: Db, per_backend, backend: str) -> httpx.AsyncClient:
    return await per_backend.enter("api-client", backend, lambda: api_client(db.url))


@dataclass
class Caller:
    role: SystemRole
    tenant: Tenant
    headers: dict[str, str]
    objects: Objects


@pytest.fixture
async def callers(db: Db, client: httpx.AsyncClient, per_backend, backend: str) -> dict[SystemRole, Caller]:
    return await per_backend.get("matrix-callers", backend, lambda: _make_callers(db, client))


async def _make_callers(db: Db, client: httpx.AsyncClient) -> dict[SystemRole, Caller]:
    """One user per system role, each in a tenant of their own, logged in once."""
    found = {}
    for role in SystemRole:
        async with db.system() as session:
            tenant = await make_tenant(session)
            member = await make_user(session, tenant, role)
            # The records a partner or candidate login stands for (row rules need them).
            if role == SystemRole.agent:
                session.add(Agent(tenant_id=tenant.id, code=unique("AG"), name="Agent", user_id=member.id))
            elif role == SystemRole.broker:
                session.add(Broker(tenant_id=tenant.id, code=unique("BR"), name="Broker", user_id=member.id))
            elif role == SystemRole.candidate:
                session.add(
                    Candidate(
                        tenant_id=tenant.id,
                        reference_number=unique("C-"),
                        first_name="Mere",
                        last_name="Naivalu",
                        user_id=member.id,
                    )
                )
        headers = await login(client, member.email, PASSWORD, tenant.code)
        found[role] = Caller(role, tenant, headers, Objects(tenant, db.system))
    return found


def _problem_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


async def call(client: httpx.AsyncClient, caller: Caller, route: Route) -> httpx.Response:
    path = await path_for(route, caller.objects.id_for)
    body = await body_for(route, caller.objects.id_for)
    return await client.request(route.method, path, json=body, headers=caller.headers)


@pytest.mark.parametrize("role", list(SystemRole), ids=[role.name for role in SystemRole])
async def test_each_route_answers_the_role_as_the_matrix_says(
    client: httpx.AsyncClient, callers: dict[SystemRole, Caller], role: SystemRole
) -> None:
    caller = callers[role]
    wrong = []
    for route in GUARDED:
        allowed = route.permissions <= MATRIX[role]
        response = await call(client, caller, route)
        status, code = response.status_code, _problem_code(response)
        if allowed:
            ok = status not in (401, 403) and status < 500 and code != "validation_error"
        else:
            ok = status == 403 and code == "forbidden"
        if not ok:
            expected = "allowed (not 401/403/5xx/validation_error)" if allowed else "403 forbidden"
            wrong.append(
                f"{route.id} [{', '.join(sorted(route.permissions))}]: expected {expected}, "
                f"got {status} {response.text[:300]}"
            )
    assert not wrong, f"{role.value}:\n" + "\n".join(wrong)


def test_the_public_routes_are_exactly_the_listed_ones() -> None:
    unauthenticated = {route.key for route in ROUTES if not route.authenticated and not route.permissions}
    assert unauthenticated == PUBLIC_ROUTES, (
        "Routes that do not authenticate the caller must be listed in tests/core/routes.py PUBLIC_ROUTES "
        f"(and be meant to be public). Unlisted: {sorted(unauthenticated - PUBLIC_ROUTES)}; "
        f"listed but gone or authenticated: {sorted(PUBLIC_ROUTES - unauthenticated)}"
    )


async def test_every_other_route_demands_authentication(client: httpx.AsyncClient, callers) -> None:
    anyone = callers[SystemRole.admin]
    wrong = []
    for route in ROUTES:
        if route.key in PUBLIC_ROUTES:
            continue
        path = await path_for(route, anyone.objects.id_for)
        body = await body_for(route, anyone.objects.id_for)
        for headers in ({}, {"Authorization": "Bearer not-a-session-token"}):
            response = await client.request(route.method, path, json=body, headers=headers)
            if response.status_code != 401 or _problem_code(response) not in (
                "unauthorized",
                "session_invalid",
            ):
                wrong.append(
                    f"{route.id} {'with a bad token' if headers else 'without a token'}: "
                    f"{response.status_code} {response.text[:200]}"
                )
    assert not wrong, "\n".join(wrong)
