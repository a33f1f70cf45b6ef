"""Every input answered: requests built from the OpenAPI document itself, for every operation and every
string parameter and body field in it, carrying what no database can store or no schema accepts. Each
must be refused with 422 problem+json naming the field (and so, never a 5xx), on SQLite and PostgreSQL.

Nothing here lists operations or fields: a new endpoint is covered when it appears in /openapi.json.
The caller is a System Admin (every permission, so a refusal is the input's, not the role's).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from mobility.core.config import Settings
from mobility.core.errors import PROBLEM_JSON
from mobility.core.schemas import MAX_TEXT
from mobility.main import create_app

DOCUMENT = create_app(Settings(database_url="sqlite+aiosqlite://")).openapi()
OPERATIONS = [
    (method.upper(), path, operation)
    for path, methods in DOCUMENT["paths"].items()
    for method, operation in methods.items()
]
NUL = "a\x00b"
SURROGATE = "a\ud800b"


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema itself for a $ref, and the non-null branch of `X | None`."""
    while "$ref" in schema:
        schema = DOCUMENT["components"]["schemas"][schema["$ref"].rpartition("/")[2]]
    options = [option for option in schema.get("anyOf", []) if option.get("type") != "null"]
    if len(options) == 1:
        return resolve({**{k: v for k, v in schema.items() if k != "anyOf"}, **options[0]})
    return schema


@dataclass(frozen=True)
class Field:
    """A place an input goes: ("query", "q"), ("path", "user_id"), ("body", "contactInfo", "name")."""

    loc: tuple[str, ...]
    schema: dict[str, Any]

    @property
    def name(self) -> str:
        return self.loc[-1]


def body_fields(schema: dict[str, Any], loc: tuple[str, ...]) -> list[Field]:
    schema = resolve(schema)
    found = []
    for name, prop in schema.get("properties", {}).items():
        prop = resolve(prop)
        if prop.get("type") == "object" and "properties" in prop:
            found.extend(body_fields(prop, (*loc, name)))
        else:
            found.append(Field((*loc, name), prop))
    return found


def fields_of(operation: dict[str, Any]) -> list[Field]:
    found = [
        Field((parameter["in"], parameter["name"]), resolve(parameter["schema"]))
        for parameter in operation.get("parameters", [])
    ]
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        found.extend(body_fields(body["schema"], ("body",)))
    return found


def bad_values(field: Field) -> list[tuple[str, Any]]:
    """(what, value) pairs the field must refuse."""
    schema = field.schema
    kind = schema.get("type")
    if kind == "array":
        item = resolve(schema.get("items", {}))
        return [("NUL in an item", [NUL])] if item.get("type") == "string" else []
    cases: list[tuple[str, Any]] = []
    if kind == "string" or "enum" in schema:
        cases.append(("NUL", NUL))
        if field.loc[0] != "header":  # header values are bytes: there is no surrogate to send
            cases.append(("a lone surrogate", SURROGATE))
        longest = schema.get("maxLength", MAX_TEXT)
        cases.append(("too long", "x" * (longest + 1)))
        if schema.get("format") == "date-time":
            cases += [("a Unix time", "0"), ("digits", "1700000000")]
        if field.loc[0] == "body":
            cases += [("a number", 12), ("an object", {"a": "b"})]
    if kind in ("integer", "number"):
        cases += [("a huge number", 10**30), ("text", "many")]
    if kind == "boolean":
        cases.append(("text", "many"))
    return cases


def _place(body: dict[str, Any], loc: tuple[str, ...], value: Any) -> dict[str, Any]:
    target = body
    for name in loc[1:-1]:
        target = target.setdefault(name, {})
    target[loc[-1]] = value
    return body


def _escaped(value: Any) -> str:
    """Percent-encoded UTF-8, as a client puts text in a URL (a lone surrogate as its UTF-8 form,
    which is not valid UTF-8: what a careless encoder sends)."""
    return quote(str(value).encode("utf-8", "surrogatepass"), safe="")


def request_for(method: str, path: str, field: Field, value: Any) -> dict[str, Any]:
    """The request putting `value` in `field` (other path parameters get a random id)."""
    headers: dict[str, str] = {}
    content: bytes | None = None
    filled = path
    for name in [part[1:-1] for part in path.split("/") if part.startswith("{")]:
        given = value if field.loc == ("path", name) else uuid.uuid4()
        filled = filled.replace("{" + name + "}", _escaped(given))
    if field.loc[0] == "query":
        filled += f"?{_escaped(field.name)}={_escaped(value)}"
    elif field.loc[0] == "header":
        headers[field.name] = value
    elif field.loc[0] == "body":
        # ensure_ascii: a lone surrogate travels as the JSON escape "\ud800", as a client would send it.
        content = json.dumps(_place({}, field.loc, value)).encode()
        headers["content-type"] = "application/json"
    return {"method": method, "url": filled, "headers": headers, "content": content}


CASES = [
    pytest.param(method, path, field, what, value, id=f"{method} {path} {'.'.join(field.loc)}: {what}")
    for method, path, operation in OPERATIONS
    for field in fields_of(operation)
    for what, value in bad_values(field)
]


def test_the_document_yields_cases() -> None:
    assert len(OPERATIONS) > 30
    assert len(CASES) > 150, len(CASES)
    covered = {(case.values[0], case.values[1]) for case in CASES}
    with_input = {(m, p) for m, p, op in OPERATIONS if fields_of(op)}
    assert covered == with_input


def assert_refused_naming(response: httpx.Response, field: Field) -> None:
    assert response.status_code == 422, f"{response.status_code} {response.text[:500]}"
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    named = [tuple(str(part) for part in error["loc"]) for error in response.json().get("errors", [])]
    wanted = field.loc if field.loc[0] != "header" else (field.loc[0], field.name.lower())
    assert any(loc[: len(wanted)] == wanted for loc in named), f"{wanted} not named in {named}"


@pytest.mark.parametrize(("method", "path", "field", "what", "value"), CASES)
async def test_bad_input_is_refused_naming_the_field(admin, method, path, field, what, value) -> None:
    client, headers = admin
    request = request_for(method, path, field, value)
    request["headers"] = {**headers, **request["headers"]}
    response = await client.request(**request)
    assert_refused_naming(response, field)


BODY_OPERATIONS = [
    pytest.param(method, path, next(iter(operation["requestBody"]["content"])), id=f"{method} {path}")
    for method, path, operation in OPERATIONS
    if "requestBody" in operation
]
RAW_BODIES = {
    "invalid UTF-8": b'{"name": "\xff\xfe"}',
    "nested 100000 deep": b"[" * 100_000 + b"]" * 100_000,
    "a number of 5000 digits": b'{"value": ' + b"9" * 5000 + b"}",
    "not JSON": b"{name: 1",
}


@pytest.mark.parametrize(("method", "path", "media_type"), BODY_OPERATIONS)
async def test_unreadable_bodies_are_refused(admin, admin_objects, method, path, media_type) -> None:
    """Bodies of the operation's media type that cannot be read (JSON, or an upload's multipart form).
    Path ids name objects of the caller's tenant: an upload that reads its body itself (documents)
    first looks its object up, and answers 404 for one that does not exist, before reading a byte."""
    client, headers = admin
    url = path
    for name in [part[1:-1] for part in path.split("/") if part.startswith("{")]:
        url = url.replace("{" + name + "}", str(await admin_objects.id_for(name)))
    content_type = media_type if media_type == "application/json" else f"{media_type}; boundary=b0undary"
    if media_type != "application/json":  # an upload sent as JSON is the wrong media type
        response = await client.request(
            method, url, content=b"{}", headers={**headers, "content-type": "application/json"}
        )
        assert response.status_code in (415, 422), response.text  # 422: a bad path parameter is found first
    for what, content in RAW_BODIES.items():
        response = await client.request(
            method, url, content=content, headers={**headers, "content-type": content_type}
        )
        assert response.status_code == 422, (what, response.status_code, response.text[:300])
        errors = response.json()["errors"]
        assert errors and errors[0]["loc"][0] in ("body", "path"), (what, errors)
    response = await client.request(
        method, url, content=b"name=x", headers={**headers, "content-type": "text/plain"}
    )
    assert response.status_code in (415, 422), response.text  # 422: a bad path parameter is found first


@pytest.mark.parametrize(
    "query",
    ["q=%FF", "q=%ED%A0%80", "q=a%00b", "%00=1", "limit=1e999", "limit=99999999999999999999999999999"],
)
async def test_unreadable_query_strings_are_refused(admin, query) -> None:
    client, headers = admin
    tried = 0
    for method, path, operation in OPERATIONS:
        if method != "GET" or "{" in path or not operation.get("parameters"):
            continue
        tried += 1
        response = await client.get(f"{path}?{query}", headers=headers)
        assert response.status_code == 422, (path, query, response.text[:300])
        assert response.json()["errors"][0]["loc"][0] == "query"
    assert tried >= 4, "no list operation with query parameters found"
