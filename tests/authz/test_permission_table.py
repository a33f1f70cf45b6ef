"""The API answers each caller as the hand-written permission table says (tests/authz/permission_table.py).

Every route is found from the app and must have a row. Then, through the API:
- each system role calls every operation that needs a login, about objects of its own tenant: a cell
  `-` must be refused by the role check (403 `forbidden`), a cell `y` must reach the endpoint;
- for each permission the table names, a custom role granting only that permission reaches every
  operation whose row needs it, and a custom role granting every other permission of the table is
  refused there: so a route guarded by the wrong permission fails even when the system roles hold
  both (the right one and the wrong one);
- a custom role with no permission reaches the `login` operations only;
- anyone reaches the public operations without logging in (that every other route demands a login
  is tests/core/test_authentication.py).
The object rule column names the rule and the test that proves it; they must exist.
"""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
import pytest

from mobility.core.config import Settings
from mobility.main import create_app
from tests.authz.permission_table import OBJECT_RULES, PERMISSION_TABLE, ROLES
from tests.support.callers import (
    Caller,
    call,
    custom_role_caller,
    problem_code,
    reached_the_endpoint,
    refused_as_anonymous,
    refused_by_role,
    system_role_caller,
)
from tests.support.factories import make_tenant
from tests.support.routes import Route, app_routes
from tests.support.sessions import Db, system_session

TESTS = Path(__file__).resolve().parents[1]
ROUTES = app_routes(create_app(Settings(database_url="sqlite+aiosqlite://")))
TABLED = [route for route in ROUTES if route.key in PERMISSION_TABLE]
_METHOD_ORDER = {"GET": 0, "POST": 1, "PUT": 2, "PATCH": 3, "DELETE": 4}


def _call_order(route: Route) -> tuple:
    """Reads first, removals last, logging out at the very end: a caller's calls must not remove what
    its later calls name (deactivating the tenant is followed by activating it again)."""
    return (
        route.path.endswith("/logout"),
        _METHOD_ORDER.get(route.method, 5),
        "/activate" in route.path,
        route.path,
    )


WITH_LOGIN = sorted((route for route in TABLED if not PERMISSION_TABLE[route.key].anyone), key=_call_order)
PERMISSIONS = sorted({row.permission for row in PERMISSION_TABLE.values() if row.permission})


def test_every_route_has_a_row() -> None:
    routes = {route.key for route in ROUTES}
    missing = sorted(f"{method} {path}" for method, path in routes - PERMISSION_TABLE.keys())
    assert not missing, (
        "Routes without a row in tests/authz/permission_table.py. Write each one's row: which system "
        "roles may call it, the permission a custom role needs (or `login` / `-`), whether anyone may "
        "call it without logging in, and its object rule. Take the answers from the design and the "
        "issue, not from the route's require(...):\n  " + "\n  ".join(missing)
    )
    gone = sorted(row.id for key, row in PERMISSION_TABLE.items() if key not in routes)
    assert not gone, f"Rows of tests/authz/permission_table.py for routes that no longer exist: {gone}"


def test_rows_are_well_formed() -> None:
    wrong = []
    for row in PERMISSION_TABLE.values():
        if row.object_rule not in OBJECT_RULES:
            wrong.append(f"{row.id}: unknown object rule {row.object_rule!r} (add it to OBJECT_RULES)")
        if row.anyone != (row.needs == "-"):
            wrong.append(f"{row.id}: `-` in needs exactly when anyone may call it")
        if row.needs in ("-", "login") and row.roles != set(ROLES):
            wrong.append(f"{row.id}: what anyone or any login may call, every role may")
        if row.permission and (row.permission.count(":") != 1 or not all(row.permission.split(":"))):
            wrong.append(f"{row.id}: needs {row.needs!r}, not resource:action")
        if row.permission and "System Admin" not in row.roles:
            wrong.append(f"{row.id}: the System Admin holds every permission")
    assert not wrong, "\n".join(wrong)


def test_each_object_rule_names_a_test_that_exists() -> None:
    missing = []
    for name, (_meaning, proof) in OBJECT_RULES.items():
        if not proof:
            continue
        file, _, function = proof.partition("::")
        path = TESTS.parent / file
        defined = (
            {
                node.name
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            }
            if path.is_file()
            else set()
        )
        if function not in defined:
            missing.append(f"{name}: {proof}")
    assert not missing, f"object rules whose proof is gone (rename it here if it moved): {missing}"


def _answer(response: httpx.Response) -> str:
    return f"{response.status_code} {problem_code(response) or ''} {response.text[:200]}"


async def _wrong_answers(
    client: httpx.AsyncClient, caller: Caller, routes: list[Route], allowed
) -> list[str]:
    wrong = []
    for route in routes:
        response = await call(client, caller, route)
        expected_allowed = allowed(PERMISSION_TABLE[route.key])
        if expected_allowed and not reached_the_endpoint(response):
            wrong.append(f"{route.id}: the table allows it, got {_answer(response)}")
        elif not expected_allowed and not refused_by_role(response):
            wrong.append(f"{route.id}: the table refuses it (403 forbidden), got {_answer(response)}")
    return wrong


@pytest.mark.parametrize("role", ROLES)
async def test_each_system_role_gets_the_answers_of_the_table(
    db: Db, client: httpx.AsyncClient, role: str
) -> None:
    caller = await system_role_caller(db, client, role)
    wrong = await _wrong_answers(client, caller, WITH_LOGIN, lambda row: role in row.roles)
    assert not wrong, f"{role}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("permission", PERMISSIONS)
async def test_each_permission_opens_exactly_its_operations(
    db: Db, client: httpx.AsyncClient, permission: str
) -> None:
    routes = [route for route in WITH_LOGIN if PERMISSION_TABLE[route.key].permission == permission]
    assert routes, f"no route needs {permission}"
    only = await custom_role_caller(db, client, {permission}, f"Only {permission}")
    # Tenant operations act on a bystander tenant: deactivating the caller's own would end its session.
    async with system_session(db.url) as session:
        only.objects.name("tenant_id", (await make_tenant(session)).id)
    wrong = await _wrong_answers(client, only, routes, lambda row: True)
    others = await custom_role_caller(db, client, set(PERMISSIONS) - {permission}, f"All but {permission}")
    wrong += await _wrong_answers(client, others, routes, lambda row: False)
    assert not wrong, f"{permission}:\n" + "\n".join(wrong)


async def test_a_role_without_permissions_reaches_only_what_any_login_may(
    db: Db, client: httpx.AsyncClient
) -> None:
    caller = await custom_role_caller(db, client, set(), "No permission")
    wrong = await _wrong_answers(client, caller, WITH_LOGIN, lambda row: row.needs == "login")
    assert not wrong, "\n".join(wrong)


async def test_anyone_reaches_the_public_operations(db: Db, client: httpx.AsyncClient) -> None:
    public = [route for route in TABLED if PERMISSION_TABLE[route.key].anyone]
    assert public, "no public operation found"
    anyone = await system_role_caller(db, client, "Admin")  # only for objects to name
    wrong = []
    for route in public:
        response = await call(client, None, route, anyone.objects)
        if refused_as_anonymous(response) or response.status_code >= 500 or refused_by_role(response):
            wrong.append(f"{route.id}: {_answer(response)}")
    assert not wrong, "public operations refused without a login:\n" + "\n".join(wrong)
