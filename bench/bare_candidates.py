"""Endpoint (b) of `bench/candidates.py`: the candidates list, bare. FastAPI + asyncpg, nothing else.

    MOBILITY_BENCH_DSN=postgresql://postgres@127.0.0.1:5432/db MOBILITY_BENCH_SCOPES=scopes.json \
        uvicorn --app-dir bench bare_candidates:app

`GET /api/v1/candidates?status=...&limit=50[&cursor=...]`: one prepared SELECT of the tenant's
candidates of that status, newest first, keyset by (createdAt, id) as the app's list pages, answered
with the same JSON as the app's (`Page[CandidateStaffRead]`: items and nextCursor, the cursor encoded
as the app encodes it); bench/candidates.py checks the bodies are equal before any load. No ORM, no
authentication (the tenant comes from the Bearer token's entry in MOBILITY_BENCH_SCOPES, a dict
lookup), no row rules, no transaction; connects as the owner, so row-level security does not apply.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg
from fastapi import FastAPI, HTTPException, Request

DSN_ENV = "MOBILITY_BENCH_DSN"
SCOPES_ENV = "MOBILITY_BENCH_SCOPES"
POOL_MAX = 15

# The response model's fields (CandidateStaffRead), in its order, by column.
KEYS = ["id", "referenceNumber", "firstName", "middleName", "lastName", "dateOfBirth", "gender", "nationality",
        "nationalId", "passportNumber", "passportExpiry", "email", "phone", "address", "emergencyContact",
        "skills", "languages", "education", "workHistory", "photoUrl", "cvUrl", "status", "agentId",
        "brokerId", "userId", "createdAt", "updatedAt", "notes"]  # fmt: skip
COLUMNS = ", ".join(f'"{key}"' for key in KEYS)
FIRST = f"""SELECT {COLUMNS} FROM candidates WHERE "tenantId" = $1 AND status = $2
            ORDER BY "createdAt" DESC, id DESC LIMIT $3"""
AFTER = f"""SELECT {COLUMNS} FROM candidates WHERE "tenantId" = $1 AND status = $2
            AND ("createdAt", id) < ($4, $5)
            ORDER BY "createdAt" DESC, id DESC LIMIT $3"""
JSON_KEYS = ("address", "emergencyContact", "skills", "languages", "education", "workHistory")


def encode(values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode(cursor: str) -> list:
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    with open(os.environ[SCOPES_ENV]) as scopes:
        app.state.tenants = {token: uuid.UUID(s["tenant_id"]) for token, s in json.load(scopes).items()}
    app.state.pool = await asyncpg.create_pool(
        os.environ[DSN_ENV], min_size=5, max_size=POOL_MAX, max_inactive_connection_lifetime=10
    )
    try:
        yield
    finally:
        await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/api/v1/candidates")
async def list_candidates(request: Request, status: str, limit: int = 25, cursor: str | None = None) -> dict:
    tenant = app.state.tenants.get(request.headers.get("authorization", "").removeprefix("Bearer "))
    if tenant is None:
        raise HTTPException(401)
    if cursor:
        moment, last_id = decode(cursor)
        rows = await app.state.pool.fetch(
            AFTER, tenant, status, limit + 1, datetime.fromisoformat(moment), uuid.UUID(last_id)
        )
    else:
        rows = await app.state.pool.fetch(FIRST, tenant, status, limit + 1)
    items = []
    for row in rows[:limit]:
        item = dict(zip(KEYS, row.values(), strict=True))
        for key in JSON_KEYS:
            if isinstance(item[key], str):
                item[key] = json.loads(item[key])
        items.append(item)
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode([last["createdAt"].isoformat(), str(last["id"])])
    return {"items": items, "nextCursor": next_cursor}
