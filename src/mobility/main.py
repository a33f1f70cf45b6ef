"""The application factory."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mobility.agents.api import agents_router, brokers_router
from mobility.app_session import create_sessionmaker
from mobility.audit.api import router as audit_router
from mobility.auth import authentication
from mobility.auth.api import router as auth_router
from mobility.candidates.api import router as candidates_router
from mobility.core.config import Settings, get_settings
from mobility.core.crypto import secret_box
from mobility.core.db import OutageLog, create_engine, create_read_pool
from mobility.core.deps import UnitOfWorkMiddleware, install_database_error_handlers
from mobility.core.docs import install_docs
from mobility.core.errors import install_error_handlers
from mobility.core.http import HardenedFastAPI, RequestBodyMiddleware
from mobility.core.openapi import document_api
from mobility.core.requests import RequestIdMiddleware
from mobility.core.routing import add_routes
from mobility.core.storage import open_storage
from mobility.health.api import router as health_router
from mobility.notifications.api import router as notifications_router
from mobility.roles.api import router as roles_router
from mobility.settings.api import router as settings_router
from mobility.tenants.api import router as tenants_router
from mobility.users.api import router as users_router
from mobility.webhooks.api import deliveries as webhook_deliveries_router
from mobility.webhooks.api import router as webhooks_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Where uploaded files live (core/storage.py): a directory here, or an S3-compatible bucket.
        app.state.storage = open_storage(settings)
        # The key of the secrets stored encrypted (core/crypto.py): none to use, the app does not start.
        secret_box(settings)
        # On PostgreSQL, as the role that owns no table (row-level security applies to it), when
        # configured; migrations and the CLI connect as the owner (database_url).
        engine = create_engine(settings.effective_app_database_url, settings=settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.read_pool = await create_read_pool(settings.effective_app_database_url, settings)
        app.state.outage = OutageLog(engine)
        _settle_garbage_collector()
        try:
            yield
        finally:
            await app.state.storage.close()
            await app.state.outage.close()
            if app.state.read_pool is not None:
                await app.state.read_pool.close()
            await engine.dispose()

    app = HardenedFastAPI(
        title="WTI Labour Mobility platform",
        version="0.1.0",
        lifespan=lifespan,
        # Served with local files and a Content-Security-Policy of their own (core/docs.py).
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.authenticate = authentication.authenticate
    install_error_handlers(app)
    install_database_error_handlers(app)
    document_api(app)
    app.add_middleware(UnitOfWorkMiddleware)
    app.add_middleware(
        RequestBodyMiddleware,
        max_json_body_bytes=settings.max_json_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        body_timeout=settings.body_timeout_seconds,
    )
    app.add_middleware(RequestIdMiddleware)
    for router in (
        health_router,
        auth_router,
        tenants_router,
        users_router,
        roles_router,
        settings_router,
        audit_router,
        agents_router,
        brokers_router,
        candidates_router,
        notifications_router,
        webhooks_router,
        webhook_deliveries_router,
    ):
        add_routes(app, router)
    install_docs(app)  # after the API's routes: no API request pays for matching these
    return app


def _settle_garbage_collector() -> None:
    """A request allocates a few thousand objects, nearly all freed by reference counting; with the
    default thresholds (700) the cyclic collector ran every few requests, and now and then walked the
    whole model graph (bench/auth.py: ~5-10 % of a request's CPU). Collections are made rarer, not
    stopped: cycles are still collected. Process-wide: the API owns its process."""
    gc.set_threshold(50_000, 20, 20)
