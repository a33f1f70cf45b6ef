"""Endpoint (b) of `bench/auth.py`: the project's own app with authentication switched off.

    MOBILITY_BENCH_SCOPES=scopes.json uvicorn --app-dir bench --factory scoped_app:create_app

The app is `mobility.main.create_app()` itself (or the factory named by `MOBILITY_BENCH_APP_FACTORY`):
the same settings, engine and pools, middleware, routes and dependencies, the request's unit of work
(`core.deps`) and read connection (`core.db`), `require(...)` reading the Bearer token and checking
the permission, data-layer tenancy and row rules, the route's read, response model and error handlers.

One function differs: `app.state.authenticate` (mobility.auth.authentication.authenticate), which `require(...)` calls to turn the
token into a `Scope`. Here it does not hash the token nor look it up (mobility_session_scope: session,
user, tenant, membership, role, the tenant's 2FA setting, and the transaction's RLS settings in one
call; the session touched once a minute); it takes the `Scope` of the token's admin from a dict built
once at start-up from `MOBILITY_BENCH_SCOPES` (a JSON object `{token: {"tenant_id", "actor_id",
"role"}}`) and binds it with `apply_to_database` (no transaction is open yet, so the request's read
connection then opens with the tenant's settings, in the same round trip as its BEGIN). The same rows
are read under the same tenant and row rules. A token not in the file is answered 401 without touching
the database.

The function is replaced in its module rather than through FastAPI's `dependency_overrides`: FastAPI
analyses an override's signature again on every request, which would make (b) slower than the app.
"""

from __future__ import annotations

import importlib
import json
import os
import uuid
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.auth import authentication
from mobility.authz.permissions import permissions_for_role
from mobility.core.scope import Scope, apply_to_database

SCOPES_ENV = "MOBILITY_BENCH_SCOPES"
# The app under test, module:function; bench/auth.py --app sets it for (a) and (b) alike.
FACTORY_ENV, DEFAULT_FACTORY = "MOBILITY_BENCH_APP_FACTORY", "mobility.main:create_app"


def load_scopes(path: str | Path) -> dict[str, Scope]:
    """The fixed scope of each token, as `authenticate` would build it for that admin."""
    scopes = {}
    for token, spec in json.loads(Path(path).read_text()).items():
        scopes[token] = Scope(
            tenant_id=uuid.UUID(spec["tenant_id"]),
            actor_id=uuid.UUID(spec["actor_id"]),
            role=spec["role"],
            permissions=permissions_for_role(spec["role"]),
        )
    return scopes


def create_app() -> FastAPI:
    scopes = load_scopes(os.environ[SCOPES_ENV])

    async def fixed_scope(session: AsyncSession, token: str, **_: object) -> Scope:
        scope = scopes.get(token)
        if scope is None:
            raise authentication.SessionInvalid("Not one of the bench's tokens.")
        await apply_to_database(session, scope)
        return scope

    module, _, name = os.environ.get(FACTORY_ENV, DEFAULT_FACTORY).partition(":")
    app = getattr(importlib.import_module(module), name)()
    app.state.authenticate = fixed_scope  # in place of the session lookup
    return app
