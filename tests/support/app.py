"""An app on a given database, driven in-process over ASGI (with its lifespan, so the engine is real)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from mobility.core.config import Settings
from mobility.main import create_app


@asynccontextmanager
async def api_client(database_url: str, **settings: object) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(database_url=database_url, **settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def login(
    client: httpx.AsyncClient, email: str, password: str, tenant_code: str | None = None, **extra
):
    """Log in; returns the Authorization header of the new session (fails the test on any error)."""
    body = {"email": email, "password": password, **extra}
    if tenant_code:
        body["tenantCode"] = tenant_code
    response = await client.post("/api/v1/auth/login", json=body)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}
