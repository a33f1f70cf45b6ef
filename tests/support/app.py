"""An app on a given database, driven in-process over ASGI (with its lifespan, so the engine is real),
and what every API test reads its answers with.

Each client calls from an address of its own (`client.address`): login throttling counts failures per
address, and the suite's clients must not add up into one (nor one test's failures slow another's
logins).
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from mobility.core.config import Settings
from mobility.core.errors import PROBLEM_JSON
from mobility.main import create_app
from tests.support.databases import app_role_url


def new_address() -> str:
    """A client address no other client of the run uses (TEST-NET ranges would collide too easily)."""
    return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{1 + secrets.randbelow(254)}"


@asynccontextmanager
async def api_client(
    database_url: str, *, address: str | None = None, **settings: object
) -> AsyncIterator[httpx.AsyncClient]:
    """On PostgreSQL the API connects as the app role (row-level security applies), as in production;
    pass `app_database_url` to choose otherwise. Requests come from `address` (by default a new one),
    kept as `client.address`."""
    if make_url(database_url).get_backend_name() == "postgresql":
        settings.setdefault("app_database_url", app_role_url(database_url))
    # Uploaded files in a directory of the client's own (not the working directory's data/), unless the
    # test chooses where (or S3).
    own_files = None if "files_dir" in settings else tempfile.mkdtemp(prefix="mobility-files-")
    if own_files is not None:
        settings["files_dir"] = Path(own_files)
    app = create_app(Settings(database_url=database_url, **settings))
    try:
        async with app.router.lifespan_context(app):
            address = address or new_address()
            # ASGITransport hands this to the app as request.client.
            transport = httpx.ASGITransport(app=app, client=(address, 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                client.address = address  # type: ignore[attr-defined]
                client.app = app  # type: ignore[attr-defined]  (its storage: app.state.storage)
                yield client
    finally:
        if own_files is not None:
            shutil.rmtree(own_files, ignore_errors=True)


async def login(
    client: httpx.AsyncClient, email: str, password: str, tenant_code: str | None = None, **extra
):
    """Log in; returns the Authorization header of the new session (fails the test on any error)."""
    body = {"email": email, "password": password, **extra}
    if tenant_code:
        body["tenantCode"] = tenant_code
    response = await client.post("/api/v1/auth/login", json=body)
    assert response.status_code == 200, response.text
    return bearer(response.json()["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """The answer is RFC 9457 problem+json with this status (and `code`); its body. A 401 also carries
    the Bearer challenge a 401 must have."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON, response.headers
    body = response.json()
    assert body["status"] == status, body
    if code is not None:
        assert body["code"] == code, body
    if status == 401:
        assert response.headers["www-authenticate"].lower().startswith("bearer"), response.headers
    return body
