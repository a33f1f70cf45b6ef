"""Who is calling: the session token (Bearer header or HttpOnly cookie) turned into a `Scope`.

`CurrentScope` authenticates the request and binds the scope to the request's database session (and,
on PostgreSQL, to row-level security) before any endpoint code runs. `require(...)` does the same and
adds the coarse permission check of the matrix on top; row rules then apply in the data layer.

Both are single dependencies that read the token and take the request's session themselves: every
nested FastAPI dependency costs ~10 us per request even when its value is cached (bench/auth.py), so
neither `HTTPBearer` nor `DbSession` is one of them; the OpenAPI document gets the two security
schemes from `document_security` instead.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from mobility.core.deps import request_session
from mobility.core.errors import Forbidden, Unauthorized
from mobility.core.tenancy import Scope

_SCOPE_KEY = "mobility.scope"  # the request's ASGI scope: the Scope, once authenticated


def session_token(request: Request) -> str | None:
    """The Bearer token if the Authorization header has one (a bad one is not rescued by the cookie),
    else the session cookie."""
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return request.cookies.get(request.app.state.settings.session_cookie_name)


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _authenticated(request: Request) -> Scope:
    scope = request.scope.get(_SCOPE_KEY)
    if scope is not None:
        return scope
    from mobility.auth import authentication

    token = session_token(request)
    if not token:
        raise Unauthorized("Log in first: send the session token as a Bearer token or cookie.")
    scope = await authentication.authenticate(
        request_session(request),
        token,
        settings=request.app.state.settings,
        ip=client_address(request),
        request_id=getattr(request.state, "request_id", None),
    )
    request.scope[_SCOPE_KEY] = scope
    request.state.scope = scope
    return scope


async def current_scope(request: Request) -> Scope:
    return await _authenticated(request)


current_scope.authenticates = True  # type: ignore[attr-defined]
CurrentScope = Annotated[Scope, Depends(current_scope)]


class TwoFactorEnrollmentRequired(Forbidden):
    code, title = "two_factor_enrollment_required", "Set up two-factor authentication first"


def require(permission: str):
    """A route dependency: the caller is logged in and their role grants `permission` (core.permissions)."""

    async def check(request: Request) -> Scope:
        scope = await _authenticated(request)
        if scope.two_factor_enrollment_required:
            raise TwoFactorEnrollmentRequired(
                "This tenant requires two-factor authentication; set it up at /api/v1/me/2fa."
            )
        if not scope.can(permission):
            raise Forbidden(f"Your role may not do this ({permission}).", permission=permission)
        return scope

    # Read by the permission-matrix tests and docs: which routes need which permission.
    check.permission = permission  # type: ignore[attr-defined]
    check.authenticates = True  # type: ignore[attr-defined]
    return Depends(check)


SECURITY_SCHEMES = {
    "sessionToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The session token from POST /api/v1/auth/login",
    },
    "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "mobility_session"},
}


def _authenticates(route: APIRoute) -> bool:
    stack = list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        if getattr(dependency.call, "authenticates", False):
            return True
        stack.extend(dependency.dependencies)
    return False


def document_security(app: FastAPI) -> None:
    """The OpenAPI document says which operations need the session token, and how to send it."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schemes = dict(SECURITY_SCHEMES)
            schemes["sessionCookie"] = {
                **schemes["sessionCookie"],
                "name": app.state.settings.session_cookie_name,
            }
            schema.setdefault("components", {})["securitySchemes"] = schemes
            for route in app.routes:
                if isinstance(route, APIRoute) and _authenticates(route):
                    for method in route.methods:
                        operation = schema["paths"][route.path_format].get(method.lower())
                        if operation is not None:
                            operation["security"] = [{"sessionToken": []}, {"sessionCookie": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
