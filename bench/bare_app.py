"""Endpoint (c) of `bench/auth.py`: the same read, bare. FastAPI + asyncpg, nothing else.

    MOBILITY_BENCH_DSN=postgresql://postgres@127.0.0.1:5432/db MOBILITY_BENCH_SCOPES=scopes.json \
        uvicorn --app-dir bench bare_app:app

No ORM, no authentication, no session or tenant scope, no middleware, no transaction: one pooled asyncpg
connection runs one prepared SELECT (autocommit) and the row goes back as a dict with the same JSON keys
and values as the app's `GET /api/v1/users/{id}` (`UserRead`: the account, its membership in the
tenant and that membership's role). bench/auth.py checks that the bodies are equal before any load.

The membership is the one in the caller's tenant, so the tenant is needed: as in bench/scoped_app.py it
comes from the Bearer token's entry in `MOBILITY_BENCH_SCOPES`, a dict lookup in memory. Nothing is
verified: an unknown token reads nothing (404), and nobody is checked for permission. Connects as the
owner, so row-level security does not apply. The pool holds at most 15 connections, as many as the
app's SQLAlchemy pool (5 + 10 overflow), and asyncpg resets a connection when it goes back to the pool,
as it does by default.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC

import asyncpg
from fastapi import FastAPI, HTTPException, Request

DSN_ENV = "MOBILITY_BENCH_DSN"
SCOPES_ENV = "MOBILITY_BENCH_SCOPES"
POOL_MAX = 15

# One statement: the user, the membership in the tenant ($2) and its role; System Admin is the global
# system role of that name held as the account's role (as mobility.users.service does it).
SQL = """
SELECT u.id, u.email, u.name, u.status, u."twoFactorEnabled", r.id AS "roleId", r.name AS "roleName",
       m."isPrimary",
       u."roleId" IS NOT NULL AND u."roleId" = (
           SELECT id FROM roles WHERE name = 'System Admin' AND "tenantId" IS NULL AND "systemRole"
       ) AS "isSystemAdmin",
       u."lastLoginAt", u."createdAt", u."updatedAt"
FROM users u
JOIN user_tenants m ON m."userId" = u.id AND m."tenantId" = $2
JOIN roles r ON r.id = m."roleId"
WHERE u.id = $1
"""
# JSON keys, in the order of the app's response model (mobility.users.schemas.UserRead).
KEYS = ["id", "email", "name", "status", "twoFactorEnabled", "roleId", "roleName", "isPrimary",
        "isSystemAdmin", "lastLoginAt", "createdAt", "updatedAt"]  # fmt: skip
# Columns of type timestamp without time zone (the legacy Prisma ones) hold UTC.
NAIVE_UTC = ("lastLoginAt", "createdAt", "updatedAt")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    with open(os.environ[SCOPES_ENV]) as scopes:
        app.state.tenants = {token: uuid.UUID(s["tenant_id"]) for token, s in json.load(scopes).items()}
    # Idle connections close after 10 s: bench/auth.py keeps the three servers up at once.
    app.state.pool = await asyncpg.create_pool(
        os.environ[DSN_ENV], min_size=5, max_size=POOL_MAX, max_inactive_connection_lifetime=10
    )
    try:
        yield
    finally:
        await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/api/v1/users/{user_id}")
async def get_user(user_id: uuid.UUID, request: Request) -> dict:
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    row = await app.state.pool.fetchrow(SQL, user_id, app.state.tenants.get(token))
    if row is None:
        raise HTTPException(404, "No such user.")
    body = dict(zip(KEYS, row.values(), strict=True))
    for key in NAIVE_UTC:
        if body[key] is not None and body[key].tzinfo is None:
            body[key] = body[key].replace(tzinfo=UTC)
    return body
