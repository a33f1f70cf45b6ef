"""core.routing: the cheap test that rules a route out must never rule out a path the route matches."""

from __future__ import annotations

import uuid

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute

from mobility.core.config import Settings
from mobility.core.routing import ApiRoute, add_routes
from mobility.main import create_app

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


def _sample_paths(routes: list[ApiRoute]) -> set[str]:
    """Every route's path with its parameters filled in, and near misses of each."""
    paths = {"/", "", "/api", "/api/v1", "/api/v1/", "/api/v1/unknown", "/health/", "/api/v1/me/"}
    for route in routes:
        for filler in ("x", str(uuid.uuid4()), "me"):
            path = route.path
            while "{" in path:
                head, _, rest = path.partition("{")
                path = head + filler + rest.partition("}")[2]
            paths |= {path, path + "/", path + "/extra", path[:-1], path.upper()}
    return paths


def _scope(method: str, path: str, root_path: str = "") -> dict:
    return {"type": "http", "method": method, "path": root_path + path, "root_path": root_path}


@pytest.mark.parametrize("root_path", ["", "/behind-proxy"])
def test_every_route_matches_exactly_as_fastapi_would(root_path: str) -> None:
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    routes = [route for route in app.router.routes if isinstance(route, ApiRoute)]
    assert len(routes) > 30
    matched = 0
    for path in _sample_paths(routes):
        for method in METHODS:
            scope = _scope(method, path, root_path)
            for route in routes:
                ours = route.matches(dict(scope))
                fastapis = APIRoute.matches(route, dict(scope))
                assert ours[0] == fastapis[0], (route.path, method, path)
                assert ours[1].get("path_params") == fastapis[1].get("path_params")
                matched += ours[0].value > 0
    assert matched > len(routes)  # the samples do reach the routes, not only near misses


def test_only_api_routes_are_listed_on_the_app() -> None:
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    plain = APIRouter(prefix="/api/v1/plain")
    plain.add_api_route("/x", lambda: None)
    with pytest.raises(TypeError, match="ApiRoute"):
        add_routes(app, plain)
    assert all(isinstance(route, ApiRoute) for route in app.router.routes if isinstance(route, APIRoute))
