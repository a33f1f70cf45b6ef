"""The application factory."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mobility.audit.api import router as audit_router
from mobility.auth.api import router as auth_router
from mobility.core.config import Settings, get_settings
from mobility.core.db import create_engine, create_sessionmaker
from mobility.core.errors import install_error_handlers
from mobility.core.requests import RequestIdMiddleware
from mobility.health.api import router as health_router
from mobility.roles.api import router as roles_router
from mobility.settings.api import router as settings_router
from mobility.tenants.api import router as tenants_router
from mobility.users.api import router as users_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # On PostgreSQL, as the role that owns no table (row-level security applies to it), when
        # configured; migrations and the CLI connect as the owner (database_url).
        engine = create_engine(settings.effective_app_database_url, settings=settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="WTI Labour Mobility platform",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health_router)
    app.include_router(auth_router)
    for router in (tenants_router, users_router, roles_router, settings_router, audit_router):
        app.include_router(router)
    return app
