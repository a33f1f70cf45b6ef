"""The application's routes as data, and syntactically valid requests for them, found from the code.

`app_routes()` lists every HTTP route with the permission its `require(...)` dependency asks for (the
dependency function carries it as `.permission`), its path parameters and its body model. Requests are
built generically: path ids name objects made for the purpose (`user_id` -> a user, `role_id` -> a
role, `candidate_id` -> a candidate, ... found from the models by name), and bodies are derived from
the body model's required fields. What cannot be derived sits in the small tables below.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import types
import typing
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from annotated_types import Ge, MaxLen, MinLen
from fastapi import FastAPI, params
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.core.schemas import InputModel
from mobility.tenants.models import Tenant
from mobility.users.models import User
from tests.support import sample_files
from tests.support.rows import RowBuilder, model_of_table
from tests.support.sessions import system_session

# Path parameters that are not ids of rows, with a value that exists in every tenant.
PATH_VALUES: dict[str, Any] = {
    # A setting whose change does not alter how the caller's own later requests are answered (nor
    # how other tests' are: the calls commit into the run's shared database).
    "key": "placements.passportValidityMonths",
    # A notification category that may be turned off by e-mail.
    "category": "reminders",
}

# Bodies (or body fields) the generic builder cannot derive, by route.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/api/v1/settings/{key}"): {"value": 7},
    # Six digits (the pattern); wrong for any secret, as no set-up was begun.
    ("POST", "/api/v1/me/2fa/confirm"): {"code": "000000"},
    # A date of birth of a working-age person and a real country (a generated date is today's).
    ("POST", "/api/v1/candidates"): {
        "firstName": "Mere",
        "lastName": "Tuilagi",
        "dateOfBirth": "1995-03-04",
        "nationality": "FJ",
    },
    # Allowed from every open status; the generated first status (`registered`) never is a move.
    ("POST", "/api/v1/candidates/{candidate_id}/status"): {"status": "withdrawn", "reason": "Moved away"},
    ("PUT", "/api/v1/me/notification-preferences/{category}"): {"email": False},
    ("POST", "/api/v1/webhooks"): {
        "url": "https://hooks.example.org/in",
        "eventTypes": ["candidate.created"],
    },
}


# Files the generic requests upload, by route (a body that is a form with a file): the form's fields as
# httpx's `files=` takes them. A valid file, so that a caller allowed to upload succeeds.
UPLOADS: dict[tuple[str, str], dict[str, tuple[str, bytes, str]]] = {
    ("POST", "/api/v1/candidates/import"): {
        "file": (
            "intake.csv",
            b"First name,Last name,Date of birth,Nationality\nMere,Tuilagi,1995-03-04,FJ\n",
            "text/csv",
        )
    },
}


@dataclass(frozen=True)
class Operation:
    """One HTTP operation: a method and a path template, as the router declares it."""

    method: str
    path: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Route(Operation):
    """An operation of the app, with what its code says about it."""

    permissions: frozenset[str]
    body: type[BaseModel] | None
    path_params: tuple[str, ...]
    authenticated: bool = field(default=True)
    # An upload: the route reads a multipart/form-data body itself (documented in its openapi_extra),
    # this JSON schema of the form's fields, the file's among them.
    form: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    upload: bool = field(default=False)  # the body is a form with a file (multipart/form-data)

    @property
    def id_params(self) -> tuple[str, ...]:
        return tuple(name for name in self.path_params if model_for_param(name) is not None)


def _flat(routes) -> Iterator[Any]:
    """Routes, with those of included routers expanded (FastAPI may include routers lazily)."""
    for route in routes:
        if hasattr(route, "effective_route_contexts"):
            yield from route.effective_route_contexts()
        else:
            yield route


def _permissions(dependant, found: set[str]) -> set[str]:
    for dependency in dependant.dependencies:
        permission = getattr(dependency.call, "permission", None)
        if permission:
            found.add(permission)
        _permissions(dependency, found)
    return found


def _authenticates(dependant) -> bool:
    from mobility.core.auth import current_scope

    return any(d.call is current_scope or _authenticates(d) for d in dependant.dependencies)


def app_routes(app: FastAPI) -> list[Route]:
    found = []
    for route in _flat(app.routes):
        path = getattr(route, "path_format", None) or route.path
        dependant = getattr(route, "dependant", None)
        body_field = getattr(route, "body_field", None)
        body = body_field.field_info.annotation if body_field is not None else None
        for method in sorted((getattr(route, "methods", None) or set()) - {"HEAD", "OPTIONS"}):
            found.append(
                Route(
                    method=method,
                    path=path,
                    permissions=frozenset(_permissions(dependant, set())) if dependant else frozenset(),
                    body=body if isinstance(body, type) and issubclass(body, BaseModel) else None,
                    path_params=tuple(re.findall(r"{(\w+)(?::\w+)?}", path)),
                    authenticated=_authenticates(dependant) if dependant else False,
                    form=_multipart_form(route),
                    upload=body_field is not None and isinstance(body_field.field_info, params.Form),
                )
            )
    return found


def _multipart_form(route) -> dict[str, Any] | None:
    extra = getattr(route, "openapi_extra", None) or {}
    content = extra.get("requestBody", {}).get("content", {})
    return content.get("multipart/form-data", {}).get("schema")


# --- path parameters ----------------------------------------------------------------------------


def model_for_param(name: str) -> type | None:
    """`user_id` -> User, `candidate_id` -> Candidate, `document_id` -> CandidateDocument, ...; a
    reference qualified by its role names the model of its last words: `duplicate_candidate_id` ->
    Candidate (when the whole name names no model)."""
    if not name.endswith("_id"):
        return None
    found = _model_for_stem(name.removesuffix("_id"))
    words = name.removesuffix("_id").split("_")
    for start in range(1, len(words)):
        if found is not None:
            break
        found = _model_for_stem("_".join(words[start:]))
    return found


def _model_for_stem(stem: str) -> type | None:
    tables = model_of_table()
    plurals = (f"{stem}s", f"{stem}es", f"{stem[:-1]}ies" if stem.endswith("y") else f"{stem}s", stem)
    for table in plurals:
        if table in tables:
            return tables[table]
    ends = [table for table in tables if any(table.endswith(f"_{plural}") for plural in plurals[:3])]
    if len(ends) == 1:
        return tables[ends[0]]
    return None


class Objects:
    """Objects of one tenant to put in paths and bodies, made on first use and then reused."""

    def __init__(self, tenant: Tenant, database_url: str) -> None:
        self.tenant = tenant
        self.database_url = database_url
        self._made: dict[str, Any] = {}

    def name(self, name: str, value: Any) -> None:
        """Put `value` in paths and bodies for `name` instead of an object of the tenant."""
        self._made[name] = value

    async def id_for(self, name: str) -> Any:
        if name in PATH_VALUES:
            return PATH_VALUES[name]
        if name not in self._made:
            model = model_for_param(name)
            if model is None:
                raise AssertionError(f"no value for the path parameter {name!r}: add it to PATH_VALUES")
            async with system_session(self.database_url) as session:
                self._made[name] = await make_object(session, self.tenant, model)
        return self._made[name]


async def make_object(session: AsyncSession, tenant: Tenant, model: type) -> Any:
    """The id of a new object of `model` in `tenant` (the tenant itself for Tenant)."""
    if model is Tenant:
        return tenant.id
    builder = RowBuilder(session, tenant)
    if model is User:
        return (await builder.user()).id
    return (await builder.build(model)).id


async def path_for(route: Route, value_of: Callable[[str], Awaitable[Any]]) -> str:
    path = route.path
    for name in route.path_params:
        path = re.sub(r"{" + name + r"(?::\w+)?}", str(await value_of(name)), path)
    return path


# --- bodies -------------------------------------------------------------------------------------


def _unique(prefix: str = "X") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10].upper()}"


async def request_body(route: Route, value_of: Callable[[str], Awaitable[Any]]) -> dict[str, Any]:
    """The body of a generic request to `route`, as httpx's keyword arguments: `json=` (None without a
    body), or `files=` for an upload (UPLOADS)."""
    if route.form is not None:  # an upload that reads its multipart body itself (documented by hand)
        return form_for(route)
    if route.upload:
        if route.key not in UPLOADS:
            raise AssertionError(f"no file to upload to {route.id}: add it to UPLOADS")
        return {"files": UPLOADS[route.key]}
    return {"json": await body_for(route, value_of)}


async def body_for(route: Route, value_of: Callable[[str], Awaitable[Any]]) -> dict[str, Any] | None:
    if route.body is None:
        return None
    given = BODIES.get(route.key, {})
    return {**await model_body(route.body, value_of, skip=set(given)), **given}


async def model_body(
    model: type[BaseModel], value_of: Callable[[str], Awaitable[Any]], skip: set[str] = frozenset()
) -> dict[str, Any]:
    """The model's required fields, filled by type; `*_id` fields name objects through `value_of`."""
    body = {}
    for name, info in model.model_fields.items():
        if not info.is_required() or (info.alias or name) in skip:
            continue
        body[info.alias or name] = await _value(name, info.annotation, info.metadata, value_of)
    return body


async def _value(name: str, annotation: Any, metadata: list[Any], value_of) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return await _value(name, base, [*metadata, *extra], value_of)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return await _value(name, options[0], metadata, value_of)
    if origin is typing.Literal:
        return typing.get_args(annotation)[0]
    if origin in (list, set, tuple, frozenset):
        return []
    if origin is dict:
        return {}
    if annotation is Any:
        raise AssertionError(f"no generic value for the body field {name!r} (Any): add it to BODIES")
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return await model_body(annotation, value_of)
        if issubclass(annotation, enum.Enum):
            return next(iter(annotation)).value
        if annotation is bool:
            return False
        if annotation in (int, float):
            minimum = next((item.ge for item in metadata if isinstance(item, Ge)), 1)
            return annotation(minimum)
        if annotation is uuid.UUID:
            return str(await value_of(name))
        if annotation is dt.date:
            return dt.date.today().isoformat()
        if annotation is dt.datetime:
            return dt.datetime.now(dt.UTC).isoformat()
        if annotation.__name__ == "EmailStr":
            return f"{_unique('u').lower()}@example.org"
        if annotation is str:
            longest = next((item.max_length for item in metadata if isinstance(item, MaxLen)), 32)
            shortest = next((item.min_length for item in metadata if isinstance(item, MinLen)), 1)
            return _unique()[: max(longest, shortest)]
    raise AssertionError(f"no generic value for the body field {name!r} ({annotation!r}): add it to BODIES")


def form_for(route: Route) -> dict[str, Any]:
    """An upload's generic multipart body, as httpx's `files` and `data`: a small real PDF for each
    binary field, and the form's other required fields filled by their schema (an enum its first value,
    text a unique string)."""
    assert route.form is not None
    files, data = {}, {}
    for name in route.form.get("required", []):
        schema = route.form["properties"][name]
        if schema.get("format") == "binary":
            files[name] = ("document.pdf", sample_files.pdf(), "application/pdf")
        elif "enum" in schema:
            data[name] = schema["enum"][0]
        else:
            data[name] = _unique()
    return {"files": files, "data": data}


def input_models() -> list[type[InputModel]]:
    """Every InputModel subclass defined in src/mobility (modules imported by the app and the CLI)."""
    import importlib
    import pkgutil

    import mobility

    for module in pkgutil.walk_packages(mobility.__path__, "mobility."):
        if module.name.endswith((".api", ".schemas")) or module.name.count(".") == 1:
            importlib.import_module(module.name)
    seen: list[type[InputModel]] = []
    pending = list(InputModel.__subclasses__())
    while pending:
        cls = pending.pop()
        if cls not in seen:
            seen.append(cls)
            pending.extend(cls.__subclasses__())
    return [cls for cls in seen if cls.__module__.startswith("mobility.")]
