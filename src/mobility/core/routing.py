"""The API's routes: listed on the app itself, and each ruled out cheaply when it cannot match.

FastAPI tries an app's routes in order until one matches, so every request pays for each route listed
before its own: about 0.7 us each here (a regex and FastAPI's bookkeeping), and the list grows with
every domain. Two changes keep that small:

- `ApiRoute` first checks that the path begins with the route's literal part (everything before its
  first `{`), which any path it matches must; only then does it run FastAPI's matching.
- `add_routes` lists a router's routes on the app directly. `include_router` keeps each router as one
  entry that FastAPI opens on every request, route by route (0.2-0.3 ms per request here), and the
  routes' own paths would no longer be the paths requested.

Every domain's router is `APIRouter(..., route_class=ApiRoute)`; `add_routes` refuses any other route.

An `ApiRoute` also:
- is named in the OpenAPI document by its endpoint function, in camelCase (`list_users` ->
  `listUsers`): short and stable operation ids for generated clients;
- answers a method it does not take with 405 and an `Allow` header listing every method of its path
  (each method of a path is a route of its own, and the router asks only the first one);
- answers 415 to a body that is not JSON (`refuse_other_than_json`), or, on a route taking a file,
  not multipart/form-data (`refuse_other_than_multipart`);
- refuses a query string or path that is not UTF-8 or carries NUL with 422
  naming the parameter, before any of it reaches the database (see `refuse_unreadable_input`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import APIRouter, FastAPI, params
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic.alias_generators import to_camel
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from mobility.core.schemas import unstorable_reason


def operation_id(route: APIRoute) -> str:
    """The OpenAPI operation id of a route: its endpoint's name in camelCase."""
    return to_camel(route.name)


class ApiRoute(APIRoute):
    def __init__(self, path: str, *args: Any, **kwargs: Any) -> None:
        kwargs["generate_unique_id_function"] = operation_id
        super().__init__(path, *args, **kwargs)
        self.literal_head = self.path.partition("{")[0]
        # Every method served at this path, by any route (filled in by add_routes).
        self.allowed_methods: tuple[str, ...] = tuple(sorted(self.methods or ()))

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # Behind a root path, the path requested is not the route's path: FastAPI's matching decides.
        if not scope.get("root_path") and not scope["path"].startswith(self.literal_head):
            return Match.NONE, {}
        return super().matches(scope)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in self.methods:
            raise HTTPException(status_code=405, headers={"Allow": ", ".join(self.allowed_methods)})
        refuse_unreadable_input(scope)
        if self.body_field is not None:
            if isinstance(self.body_field.field_info, params.Form):  # File is a Form
                refuse_other_than_multipart(scope)
            else:
                refuse_other_than_json(scope)
        await super().handle(scope, receive, send)


def refuse_other_than_json(scope: Scope) -> None:
    """415 for a body sent as anything but JSON (`application/json`, `application/*+json`). Without
    this FastAPI would hand the raw bytes to the body model, and the answer would be a puzzling 422."""
    content_type = b""
    has_body = False
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
        elif name == b"content-length":
            has_body = value.strip() not in (b"", b"0")
        elif name == b"transfer-encoding":
            has_body = True
    if not has_body and not content_type:
        return  # no body: the body model says whether one was required
    media_type = content_type.partition(b";")[0].strip().lower()
    main, _, sub = media_type.partition(b"/")
    if main != b"application" or not (sub == b"json" or sub.endswith(b"+json")):
        raise HTTPException(415, "The body must be JSON (Content-Type: application/json).")


def refuse_other_than_multipart(scope: Scope) -> None:
    """415 for a body sent to an upload route (a form with a file) as anything but multipart/form-data."""
    content_type = b""
    has_body = False
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
        elif name == b"content-length":
            has_body = value.strip() not in (b"", b"0")
        elif name == b"transfer-encoding":
            has_body = True
    if not has_body and not content_type:
        return  # no body: the form says what was required
    if content_type.partition(b";")[0].strip().lower() != b"multipart/form-data":
        raise HTTPException(415, "Send the file as multipart/form-data.")


def refuse_unreadable_input(scope: Scope) -> None:
    """RequestValidationError (422) for a query string or path that is not UTF-8 or carries NUL.
    Servers decode percent-escapes leniently (an invalid byte becomes U+FFFD), so the raw bytes are
    what is checked. (Header values are bytes, and a declared header parameter is `core.schemas.Text`.)

    Cost on the hot path (no query string, an ASCII path): a dict lookup and two `in` tests on the
    path, about 0.1 us (measured with timeit: 1 us under a fully loaded machine, whose empty function
    call took 0.4-0.8 us).
    """
    errors = []
    query = scope.get("query_string")
    if query and (b"%" in query or b"\x00" in query or not query.isascii()):
        errors.extend(_query_errors(query))
    path = scope["path"]
    if "\x00" in path or "\ufffd" in path:
        errors.extend(_path_errors(scope))
    if errors:
        raise RequestValidationError(errors)


def _error(loc: tuple, reason: str) -> dict[str, Any]:
    return {"loc": loc, "msg": f"Text {reason}", "type": "unstorable_text"}


def _query_errors(query: bytes) -> list[dict[str, Any]]:
    errors = []
    for pair in query.split(b"&"):
        raw_name, _, raw_value = pair.partition(b"=")
        texts = []
        for raw in (raw_name, raw_value):
            try:
                texts.append(unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8"))
            except UnicodeDecodeError:
                texts.append("\ud800")  # reported below as not valid Unicode
        name, value = texts
        reason = unstorable_reason(name) or unstorable_reason(value)
        if reason is not None:
            shown = name if unstorable_reason(name) is None else name.encode("utf-8", "replace").decode()
            errors.append(_error(("query", shown), reason))
    return errors


def _path_errors(scope: Scope) -> list[dict[str, Any]]:
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogatepass")
    try:
        unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        reason = "is not valid Unicode text"
    else:
        if "\x00" not in scope["path"]:
            return []  # a real U+FFFD, sent as such
        reason = "must not contain NUL characters"
    params = scope.get("path_params") or {}
    bad = [
        name
        for name, value in params.items()
        if isinstance(value, str) and ("\x00" in value or "\ufffd" in value)
    ]
    return [_error(("path", name), reason) for name in bad] or [_error(("path",), reason)]


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """The router's routes, added to the app's own route list (see the module doc)."""
    for route in router.routes:
        if not isinstance(route, ApiRoute):
            raise TypeError(f"Routes of the API are ApiRoutes (route_class=ApiRoute), not {route!r}")
    app.router.routes.extend(router.routes)
    methods_of_path: dict[str, set[str]] = {}
    api_routes = [route for route in app.router.routes if isinstance(route, ApiRoute)]
    for route in api_routes:
        methods_of_path.setdefault(route.path, set()).update(route.methods)
    for route in api_routes:
        allowed = set(methods_of_path[route.path])
        if "{" not in route.path:
            # A literal path (`/invitations/accept`) that a template beside it also fits
            # (`/invitations/{invitation_id}`): that template's methods are served here too.
            for other in api_routes:
                if other.path != route.path and other.path_regex.match(route.path):
                    allowed |= other.methods
        route.allowed_methods = tuple(sorted(allowed))
