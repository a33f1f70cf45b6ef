"""The OpenAPI document tells the truth about errors: every operation lists each error status it can
answer, all with the one `Problem` shape (core.errors) as `application/problem+json`.

The statuses are derived from what each route has, so a new route is documented without edits:

| the route has                                   | it may answer                                   |
| ----------------------------------------------- | ----------------------------------------------- |
| authentication (`CurrentScope`, `require(...)`) | 401; 403 (permission, 2FA set-up, tenancy)      |
| path parameters                                 | 404 (no such object, or not yours), 422         |
| query, header or cookie parameters              | 422                                             |
| a body                                          | 408 (too slow), 413 (too large), 415 (not JSON), 422 |
| the database (a session, or authentication)     | 503 (the database cannot be reached)            |
| ... and a writing method (POST, PUT, PATCH, DELETE) | 409 (a concurrent change met this one, core.db) |

A route adds the statuses only it knows of (409 on a duplicate name, 429 on login, ...) with
`responses=problem_responses(409, ...)`; FastAPI's default 422 (`HTTPValidationError`, which is not
what is sent) is replaced.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from mobility.core.auth import document_security
from mobility.core.deps import get_db_session
from mobility.core.errors import PROBLEM_JSON, Problem

DESCRIPTIONS = {
    400: "Bad request",
    401: "Not logged in, or the session has ended",
    403: "Not allowed: the role lacks the permission, two-factor set-up is required, or another rule",
    404: "No such object (or not visible to the caller)",
    409: "Conflicts with the current state (a duplicate, the last Admin, a concurrent change, ...)",
    408: "The body did not arrive in time (core.http); the connection is closed",
    410: "No longer usable",
    413: "The body is too large",
    415: "The body is not JSON (send Content-Type: application/json)",
    422: "Invalid input: `errors` names each field refused",
    429: "Too many attempts: wait `Retry-After` seconds",
    503: "The database cannot be reached; retry later",
}
_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    429: {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}},
    503: {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}},
}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route's own error statuses (the content is filled in by `document_api`)."""
    return {
        status: {"description": DESCRIPTIONS.get(status, HTTPStatus(status).phrase)} for status in statuses
    }


def _walk(dependant: Dependant):
    yield dependant
    for dependency in dependant.dependencies:
        yield from _walk(dependency)


WRITING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def derived_statuses(route: APIRoute, method: str) -> set[int]:
    """The error statuses a route can answer by what it has (the table of the module doc)."""
    dependants = list(_walk(route.dependant))
    statuses: set[int] = set()
    authenticates = any(getattr(d.call, "authenticates", False) for d in dependants)
    if authenticates:
        statuses |= {401, 403}
    if route.dependant.path_params:
        statuses |= {404, 422}
    if any(d.query_params or d.header_params or d.cookie_params for d in dependants):
        statuses.add(422)
    if route.body_field is not None:
        statuses |= {408, 413, 415, 422}
    if authenticates or any(d.call is get_db_session for d in dependants):
        statuses.add(503)
        if method in WRITING_METHODS:
            statuses.add(409)
    return statuses


def _problem_response(status: int, description: str | None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description or DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
        "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
    }
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response


def document_api(app: FastAPI) -> None:
    """The app's OpenAPI document: security (core.auth) and every error response (module doc)."""
    document_security(app)
    secured_openapi = app.openapi
    documented: dict[str, Any] | None = None

    def openapi() -> dict[str, Any]:
        nonlocal documented
        if documented is not None:
            return documented
        schema = secured_openapi()  # made once, and kept, by core.auth
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(problem.pop("$defs", {}))
        components["Problem"] = problem
        for route in app.routes:
            if not isinstance(route, APIRoute) or not route.include_in_schema:
                continue
            for method in route.methods:
                operation = schema["paths"][route.path_format].get(method.lower())
                if operation is None:
                    continue
                responses = operation.setdefault("responses", {})
                declared = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
                for status in sorted(derived_statuses(route, method) | declared):
                    given = responses.get(str(status), {})
                    # FastAPI's own 422 description is "Validation Error"; ours says what is in it.
                    description = None if status == 422 else given.get("description")
                    responses[str(status)] = _problem_response(status, description)
                operation["responses"] = dict(sorted(responses.items()))
        # FastAPI's validation error shapes are no longer referred to.
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        documented = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
