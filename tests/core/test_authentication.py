"""Authentication on every route, and the routes' guards name real permissions.

Who may call what (BFLA, role by role) is tests/authz/test_permission_table.py, against a table written
by hand; this file checks that every route outside the table's public operations demands a login.
Routes are found from the app when the tests run: a new route is covered without editing this file.
"""

from __future__ import annotations

import httpx

from mobility.authz.permissions import ALL_PERMISSIONS
from mobility.core.config import Settings
from mobility.main import create_app
from tests.authz.permission_table import PUBLIC_OPERATIONS
from tests.support.callers import refused_as_anonymous, system_role_caller
from tests.support.routes import app_routes, path_for, request_body
from tests.support.sessions import Db

ROUTES = app_routes(create_app(Settings(database_url="sqlite+aiosqlite://")))
GUARDED = [route for route in ROUTES if route.permissions]


def test_routes_are_found_and_name_real_permissions() -> None:
    assert GUARDED, "no route with require(...) found: is the route walk broken?"
    unknown = {route.id: sorted(route.permissions - set(ALL_PERMISSIONS)) for route in GUARDED}
    assert not {k: v for k, v in unknown.items() if v}, f"routes requiring unknown permissions: {unknown}"
    assert all(len(route.permissions) == 1 for route in GUARDED), "one permission per route expected"


def test_the_public_routes_are_exactly_the_listed_ones() -> None:
    unauthenticated = {route.key for route in ROUTES if not route.authenticated and not route.permissions}
    assert unauthenticated == PUBLIC_OPERATIONS, (
        "Routes that do not authenticate the caller must be `anyone: y` in tests/authz/permission_table.py "
        f"(and be meant to be public). Not so: {sorted(unauthenticated - PUBLIC_OPERATIONS)}; "
        f"public there but authenticated: {sorted(PUBLIC_OPERATIONS - unauthenticated)}"
    )


async def test_every_other_route_demands_authentication(db: Db, client: httpx.AsyncClient) -> None:
    anyone = await system_role_caller(db, client, "Admin")  # only for objects to name
    wrong = []
    for route in ROUTES:
        if route.key in PUBLIC_OPERATIONS:
            continue
        path = await path_for(route, anyone.objects.id_for)
        body = await request_body(route, anyone.objects.id_for)
        for headers in ({}, {"Authorization": "Bearer not-a-session-token"}):
            response = await client.request(route.method, path, headers=headers, **body)
            if not refused_as_anonymous(response):
                wrong.append(
                    f"{route.id} {'with a bad token' if headers else 'without a token'}: "
                    f"{response.status_code} {response.text[:200]}"
                )
    assert not wrong, "\n".join(wrong)
