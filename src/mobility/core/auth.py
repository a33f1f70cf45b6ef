"""Who is calling: the session token (Bearer header or HttpOnly cookie) turned into a `Scope`.

`CurrentScope` authenticates the request and binds the scope to the request's database session (and,
on PostgreSQL, to row-level security) before any endpoint code runs. `require(...)` adds the coarse
permission check of the matrix on top; row rules then apply in the data layer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mobility.core.deps import DbSession
from mobility.core.errors import Forbidden, Unauthorized
from mobility.core.tenancy import Scope

_bearer = HTTPBearer(auto_error=False, description="The session token from POST /api/v1/auth/login")


def session_token(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    if credentials is not None and credentials.scheme.lower() == "bearer":
        return credentials.credentials
    return request.cookies.get(request.app.state.settings.session_cookie_name)


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


async def current_scope(
    request: Request,
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Scope:
    from mobility.auth import service as auth_service

    token = session_token(request, credentials)
    if not token:
        raise Unauthorized("Log in first: send the session token as a Bearer token or cookie.")
    scope = await auth_service.authenticate(
        session,
        token,
        settings=request.app.state.settings,
        ip=client_address(request),
        request_id=getattr(request.state, "request_id", None),
    )
    request.state.scope = scope
    return scope


CurrentScope = Annotated[Scope, Depends(current_scope)]


class TwoFactorEnrollmentRequired(Forbidden):
    code, title = "two_factor_enrollment_required", "Set up two-factor authentication first"


def require(permission: str):
    """A route dependency: the caller's role must grant `permission` (see core.permissions)."""

    async def check(scope: CurrentScope) -> Scope:
        if scope.two_factor_enrollment_required:
            raise TwoFactorEnrollmentRequired(
                "This tenant requires two-factor authentication; set it up at /api/v1/me/2fa."
            )
        if not scope.can(permission):
            raise Forbidden(f"Your role may not do this ({permission}).", permission=permission)
        return scope

    # Read by the permission-matrix tests and docs: which routes need which permission.
    check.permission = permission  # type: ignore[attr-defined]
    return Depends(check)
