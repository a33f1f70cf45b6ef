"""Logged-in callers for the route-by-route suites (tests/authz, tests/core/test_authentication.py).

A caller is one user in a tenant of their own (what one caller's calls change cannot affect another's),
logged in once, with `Objects` of that tenant to put in paths and bodies. `call` sends a route's
generic request (tests/support/routes.py) as the caller, and the predicates below read the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from mobility.agents.models import Agent, Broker
from mobility.authz.permissions import SystemRole
from mobility.candidates.models import Candidate
from mobility.roles.models import Role
from mobility.tenants.models import Tenant
from tests.support.app import login
from tests.support.factories import PASSWORD, make_tenant, make_user, unique
from tests.support.routes import Objects, Route, path_for, request_body
from tests.support.sessions import Db, system_session


@dataclass
class Caller:
    name: str
    tenant: Tenant
    headers: dict[str, str]
    objects: Objects


async def system_role_caller(db: Db, client: httpx.AsyncClient, role: str) -> Caller:
    """A user holding the system role named `role`, with the record a partner or candidate login
    stands for (row rules need it)."""
    async with system_session(db.url) as session:
        tenant = await make_tenant(session)
        member = await make_user(session, tenant, SystemRole(role))
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
    return Caller(role, tenant, headers, Objects(tenant, db.url))


async def custom_role_caller(db: Db, client: httpx.AsyncClient, permissions: set[str], name: str) -> Caller:
    """A user holding a custom role of their tenant that grants exactly `permissions`. The role row is
    written directly: through the API a tenant's role cannot grant tenants:* or accounts:update, and
    these callers must isolate every permission a route may ask for."""
    async with system_session(db.url) as session:
        tenant = await make_tenant(session)
        role = Role(
            tenant_id=tenant.id, name=unique(f"{name} "), system_role=False, permissions=sorted(permissions)
        )
        session.add(role)
        await session.flush()
        member = await make_user(session, tenant, role)
    headers = await login(client, member.email, PASSWORD, tenant.code)
    return Caller(name, tenant, headers, Objects(tenant, db.url))


async def call(
    client: httpx.AsyncClient, caller: Caller | None, route: Route, objects: Objects | None = None
):
    """The route's generic request, as `caller` (None: with no credentials) about `objects` (by default
    the caller's own)."""
    objects = objects or caller.objects
    path = await path_for(route, objects.id_for)
    body = await request_body(route, objects.id_for)
    headers = caller.headers if caller else {}
    return await client.request(route.method, path, headers=headers, **body)


def problem_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def refused_by_role(response: httpx.Response) -> bool:
    """403 `forbidden`: what `require(permission)` answers a role without the permission (other 403
    codes are object rules: a member whose rights the caller lacks, a tenant-wide setting, ...)."""
    return response.status_code == 403 and problem_code(response) == "forbidden"


def refused_as_anonymous(response: httpx.Response) -> bool:
    """401 for a request without (valid) credentials."""
    return response.status_code == 401 and problem_code(response) in ("unauthorized", "session_invalid")


def reached_the_endpoint(response: httpx.Response) -> bool:
    """Neither authentication nor the role refused it, and the request was good enough for the
    endpoint to decide (no validation error, no server error)."""
    return (
        response.status_code != 401
        and not refused_by_role(response)
        and response.status_code < 500
        and problem_code(response) != "validation_error"
    )
