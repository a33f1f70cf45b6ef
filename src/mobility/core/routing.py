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
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope


class ApiRoute(APIRoute):
    def __init__(self, path: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(path, *args, **kwargs)
        self.literal_head = self.path.partition("{")[0]

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # Behind a root path, the path requested is not the route's path: FastAPI's matching decides.
        if not scope.get("root_path") and not scope["path"].startswith(self.literal_head):
            return Match.NONE, {}
        return super().matches(scope)


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """The router's routes, added to the app's own route list (see the module doc)."""
    for route in router.routes:
        if not isinstance(route, ApiRoute):
            raise TypeError(f"Routes of the API are ApiRoutes (route_class=ApiRoute), not {route!r}")
    app.router.routes.extend(router.routes)
