"""An app on a given database, driven in-process over ASGI (with its lifespan, so the engine is real)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy.engine import make_url

from mobility.core.config import Settings
from mobility.main import create_app
from tests.support.databases import app_role_url


@asynccontextmanager
async def api_client(database_url: str, **settings: object) -> AsyncIterator[httpx.AsyncClient]:
    """On PostgreSQL the API connects as the app role (row-level security applies), as in production;
    pass `app_database_url` to choose otherwise."""
    if make_url(database_url).get_backend_name() == "postgresql":
        settings.setdefault("app_database_url", app_role_url(database_url))
    app = create_app(Settings(database_url=database_url, **settings))
    async with app.router.lifespan_context(app):
        # Each client its own loopback address: login throttling counts failures per address, and
        # the suite's clients must not add up into one.
        address = (
            f"127.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}"
        )
        transport = httpx.ASGITransport(app=app, client=(address, 50000))
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
