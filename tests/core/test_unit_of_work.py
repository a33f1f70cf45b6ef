"""One transaction per request (core.deps): committed on success, rolled back on an error (unless the
error keeps its writes), and a commit that fails is answered as an error, never as a success."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy import event, select

from mobility.core.config import Settings
from mobility.core.deps import DbSession
from mobility.core.errors import AppError, InvalidInput
from mobility.core.scope import Scope, apply_to_database
from mobility.main import create_app
from mobility.settings.models import Setting
from tests.support.app import app_role_url
from tests.support.factories import make_tenant, unique
from tests.support.sessions import system_session


class KeptFailure(AppError):
    status, code, title, keeps_writes = 409, "kept", "Failed, with its record kept", True


@asynccontextmanager
async def _client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = {"app_database_url": app_role_url(url)} if url.startswith("postgresql") else {}
    app = create_app(Settings(database_url=url, **settings))

    @app.post("/test/write/{tenant_id}/{key}/{outcome}")
    async def write(tenant_id: uuid.UUID, key: str, outcome: str, session: DbSession) -> dict:
        await apply_to_database(session, Scope.for_system())
        session.add(Setting(tenant_id=tenant_id, key=key, value=1))
        await session.flush()
        if outcome == "invalid":
            raise InvalidInput("no")
        if outcome == "kept":
            raise KeptFailure("kept")
        if outcome == "crash":
            raise RuntimeError("a bug")
        if outcome == "commit-fails":

            def refuse(_session) -> None:
                raise RuntimeError("the database went away at commit")

            event.listen(session.sync_session, "before_commit", refuse)
        return {"ok": True}

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def test_a_request_commits_only_what_succeeded(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        tenant = await make_tenant(session)
    keys = {
        outcome: unique(f"uow.{outcome}.") for outcome in ("ok", "invalid", "kept", "crash", "commit-fails")
    }
    statuses = {}
    async with _client(migrated_database_url) as client:
        for outcome, key in keys.items():
            response = await client.post(f"/test/write/{tenant.id}/{key}/{outcome}")
            statuses[outcome] = response.status_code
            if outcome == "commit-fails":
                assert response.headers["content-type"] == "application/problem+json"
    async with system_session(migrated_database_url) as session:
        stored = set(
            (await session.execute(select(Setting.key).where(Setting.key.in_(keys.values())))).scalars()
        )
    assert statuses == {"ok": 200, "invalid": 422, "kept": 409, "crash": 500, "commit-fails": 500}
    assert stored == {keys["ok"], keys["kept"]}
