"""The OpenAPI document as a contract: what it says about every operation, checked on the app's own
document (found, not listed), and the behaviours it promises (405's Allow, 415, 503)."""

from __future__ import annotations

import re

import pytest

from mobility.core.config import Settings
from mobility.core.errors import PROBLEM_JSON
from mobility.core.routing import ApiRoute
from mobility.main import create_app
from tests.support.app import api_client
from tests.support.routes import BODIES
from tests.support.tcp_proxy import free_port

APP = create_app(Settings(database_url="sqlite+aiosqlite://"))
DOCUMENT = APP.openapi()
OPERATIONS = [
    (method.upper(), path, operation)
    for path, methods in DOCUMENT["paths"].items()
    for method, operation in methods.items()
]
IDS = [f"{method} {path}" for method, path, _ in OPERATIONS]


def test_operation_ids_are_short_unique_camel_case() -> None:
    ids = [operation["operationId"] for _, _, operation in OPERATIONS]
    assert len(ids) > 30 and len(ids) == len(set(ids)), sorted(ids)
    for operation_id in ids:
        assert re.fullmatch(r"[a-z][a-zA-Z0-9]{1,39}", operation_id), operation_id
    by_route = {(m, p): op["operationId"] for m, p, op in OPERATIONS}
    assert by_route[("POST", "/api/v1/auth/login")] == "login"
    assert by_route[("GET", "/api/v1/users")] == "listUsers"
    assert by_route[("GET", "/api/v1/users/{user_id}")] == "getUser"


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=IDS)
def test_every_error_is_a_documented_problem(method, path, operation) -> None:
    assert operation.get("tags"), "operations are grouped by domain"
    responses = operation["responses"]
    for status, response in responses.items():
        if int(status) >= 400:
            assert list(response["content"]) == [PROBLEM_JSON], (status, response)
            assert response["content"][PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}
    has_input = bool(operation.get("parameters")) or "requestBody" in operation
    assert ("422" in responses) == has_input
    if operation.get("security"):
        assert {"401", "403"} <= set(responses)
    if "requestBody" in operation:
        assert {"413", "415"} <= set(responses)
    if any(parameter["in"] == "path" for parameter in operation.get("parameters", [])):
        assert "404" in responses


def test_fastapi_validation_shapes_are_gone() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert set(schemas["Problem"]["required"]) == {"type", "title", "status", "detail", "code"}


def test_sort_parameters_are_enumerated() -> None:
    sorts = [
        parameter
        for _, _, operation in OPERATIONS
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "sort"
    ]
    assert len(sorts) >= 4
    for parameter in sorts:
        options = [
            o for o in parameter["schema"].get("anyOf", [parameter["schema"]]) if o.get("type") != "null"
        ]
        assert len(options) == 1 and options[0].get("enum"), parameter


def test_patch_bodies_take_null_only_where_it_clears() -> None:
    """UpdateModel refuses null except for its `nullable` fields: the document says the same."""
    from mobility.core.schemas import UpdateModel
    from tests.support.routes import input_models

    updates = [model for model in input_models() if issubclass(model, UpdateModel)]
    assert updates
    for model in updates:
        properties = model.model_json_schema()["properties"]
        for name, field in model.model_fields.items():
            prop = properties[field.alias or name]
            takes_null = any(o.get("type") == "null" for o in prop.get("anyOf", []))
            assert takes_null == (name in model.nullable), (model.__name__, name, prop)


LIST_SORTS = [
    (path, option, any(other["name"] == "limit" for other in operation["parameters"]))
    for method, path, operation in OPERATIONS
    for parameter in operation.get("parameters", [])
    if method == "GET" and parameter["name"] == "sort"
    for schema in parameter["schema"].get("anyOf", [])
    for option in schema.get("enum", [])
]


@pytest.mark.parametrize(("path", "option", "paged"), LIST_SORTS, ids=[f"{p} {o}" for p, o, _ in LIST_SORTS])
async def test_every_documented_sort_is_served(admin, path, option, paged) -> None:
    """Every sort of a list (a page of 2) or an export (whole: candidates/export.csv); a list under an
    object (`/candidates/{candidate_id}/history`) of an object made for it through its collection."""
    client, headers = admin
    for name in re.findall(r"{(\w+)}", path):
        collection = path.split("{" + name + "}")[0].rstrip("/")
        made = await client.post(collection, headers=headers, json=BODIES[("POST", collection)])
        assert made.status_code == 201, made.text
        path = path.replace("{" + name + "}", made.json()["id"])
    params = {"sort": option, "limit": 2} if paged else {"sort": option}
    response = await client.get(path, headers=headers, params=params)
    assert response.status_code == 200, response.text


async def test_405_lists_every_method_of_the_path(admin) -> None:
    client, headers = admin
    routes = [route for route in APP.routes if isinstance(route, ApiRoute)]
    methods_of: dict[str, set[str]] = {}
    for route in routes:
        methods_of.setdefault(route.path, set()).update(route.methods)

    def template(path: str) -> re.Pattern[str]:
        return re.compile(
            "^" + re.sub(r"{\w+}", "[^/]+", re.escape(path).replace(r"\{", "{").replace(r"\}", "}")) + "$"
        )

    for path in methods_of:
        url = path.replace("{", "").replace("}", "")
        for name in re.findall(r"{(\w+)}", path):
            url = url.replace(name, "01a21000-0000-7000-8000-000000000000")
        # Every method of every path the URL fits: a literal path (`/invitations/accept`) may also fit a
        # template beside it (`/invitations/{invitationId}`), whose methods then apply to it too.
        allowed = set().union(
            *(methods for other, methods in methods_of.items() if template(other).match(url))
        )
        response = await client.request("OPTIONS", url, headers=headers)
        assert response.status_code == 405, (path, response.text)
        assert set(response.headers["allow"].split(", ")) == allowed, path
        assert response.headers["content-type"].startswith(PROBLEM_JSON)


async def test_a_body_that_is_not_json_is_415(admin) -> None:
    client, headers = admin
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        response = await client.post(
            "/api/v1/roles", headers={**headers, "content-type": content_type}, content=b'{"name": "x"}'
        )
        assert response.status_code == 415, response.text
        assert response.json()["code"] == "unsupported_media_type"
    response = await client.post(
        "/api/v1/roles", headers={**headers, "content-type": "application/json; charset=utf-8"},
        content=b'{"name": "Json With Charset"}',
    )  # fmt: skip
    assert response.status_code == 201, response.text


async def test_an_unreachable_database_is_503() -> None:
    url = f"postgresql+asyncpg://mobility@127.0.0.1:{free_port()}/nowhere"
    async with api_client(url, app_database_url=url) as client:
        response = await client.get("/api/v1/me", headers={"Authorization": "Bearer x"})
        health = await client.get("/health")
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.headers["retry-after"]
    assert health.status_code == 503
