"""Endpoint (b) of `bench/auth.py`: the project's own app with authentication switched off.

    MOBILITY_BENCH_SCOPES=scopes.json uvicorn --app-dir bench --factory scoped_app:create_app

The app is `mobility.main.create_app()` itself (or the factory named by `MOBILITY_BENCH_APP_FACTORY`):
the same settings, engine and pool, middleware, routes and dependencies, request-scoped session and
transaction (`get_db_session`), `current_scope` reading the Bearer token, `require(...)` checking the
permission, data-layer tenancy and row rules, ORM queries, response model and error handlers.

One function differs: `mobility.auth.service.authenticate`, which `current_scope` calls to turn the
token into a `Scope`. Here it does not hash the token nor look it up (the system scope set first, then
session + user + tenant + membership + role in one query, the session touched once a minute, the
tenant's 2FA setting read); it takes the `Scope` of the token's admin from a dict built once at start-up
from `MOBILITY_BENCH_SCOPES` (a JSON object `{token: {"tenant_id", "actor_id", "role"}}`) and binds it
exactly as `authenticate` ends: `apply_to_database` (the scope on the ORM session, and `set_config` of
the tenant for row-level security in the request's transaction). The same rows are read under the same
tenant and row rules. A token that is not in the file is answered 401 without touching the database.

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

from mobility.auth import service as auth_service
from mobility.core.permissions import permissions_for_role
from mobility.core.tenancy import Scope, apply_to_database

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
            raise auth_service.SessionInvalid("Not one of the bench's tokens.")
        await apply_to_database(session, scope)
        return scope

    auth_service.authenticate = fixed_scope
    module, _, name = os.environ.get(FACTORY_ENV, DEFAULT_FACTORY).partition(":")
    return getattr(importlib.import_module(module), name)()
