"""Errors as RFC 9457 problem details: one shape for every 4xx/5xx the API returns."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

PROBLEM_JSON = "application/problem+json"
# The request's ASGI scope: set when an AppError that keeps its writes is answered (core.deps commits).
KEEP_WRITES = "mobility.keep_writes"
logger = logging.getLogger(__name__)
_KNOWN_STATUSES = frozenset(status.value for status in HTTPStatus)


class AppError(Exception):
    """A domain error: services raise subclasses; the one handler below renders them."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"
    # Most errors undo the request's writes. A few must keep them: a failed login still counts
    # towards throttling and is logged.
    keeps_writes: bool = False

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    def headers(self) -> dict[str, str]:
        return {}


class NotFound(AppError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(AppError):
    status, code, title = 409, "conflict", "Conflict"


class InvalidInput(AppError):
    status, code, title = 422, "invalid_input", "Invalid input"


class Forbidden(AppError):
    status, code, title = 403, "forbidden", "Forbidden"


class Unauthorized(AppError):
    status, code, title = 401, "unauthorized", "Authentication required"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class TooManyRequests(AppError):
    """Give `retry_after` (seconds): it becomes the Retry-After header and a field of the body."""

    status, code, title = 429, "too_many_requests", "Too many requests"

    def headers(self) -> dict[str, str]:
        retry_after = self.extra.get("retry_after")
        return {"Retry-After": str(retry_after)} if retry_after is not None else {}


class ServiceUnavailable(AppError):
    status, code, title = 503, "service_unavailable", "Service unavailable"


class ProblemFieldError(BaseModel):
    loc: list[str | int] = Field(
        description='Where: ["body", "name"], ["query", "q"], ["path", "userId"], ...'
    )
    msg: str
    type: str


class Problem(BaseModel):
    """The body of every error answer (RFC 9457, `application/problem+json`). `code` is stable, for
    programs; `errors` lists the fields refused (422); some errors add fields of their own (`field`,
    `retryAfter`, `permission`, ...)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="about:blank#<code>")
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="The path requested")
    code: str
    errors: list[ProblemFieldError] | None = None


def _problem(status: int, code: str, title: str, detail: str, instance: str | None, **extra: Any) -> dict:
    body = {
        "type": f"about:blank#{code}" if code else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
        **extra,
    }
    return jsonable_encoder(body)


def problem(request: Request, status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = _problem(status, code, title, detail, request.url.path, **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def problem_body(status: int, code: str, title: str, detail: str, instance: str | None = None) -> bytes:
    """A problem document as bytes, for answers made below FastAPI (core.deps)."""
    return JSONResponse(_problem(status, code, title, detail, instance)).body


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        if exc.keeps_writes:
            request.scope[KEEP_WRITES] = True  # the unit of work commits this error's writes
        response = problem(request, exc.status, exc.code, exc.title, exc.detail, **exc.extra)
        response.headers.update(exc.headers())
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
            for err in exc.errors()
        ]
        return problem(
            request, 422, "validation_error", "Invalid input", "The request is not valid.", errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__context__, MultiPartException):
            # Starlette's answer to an upload body it could not read as multipart/form-data.
            errors = [
                {
                    "loc": ["body"],
                    "msg": "The body is not valid multipart/form-data",
                    "type": "multipart_invalid",
                }
            ]
            return problem(
                request, 422, "validation_error", "Invalid input", "The request is not valid.", errors=errors
            )
        if exc.status_code == 400 and isinstance(exc.__cause__, (ValueError, RecursionError)):
            # FastAPI's answer to a JSON body it could not read (invalid UTF-8, nested too deep, a number
            # of too many digits); a body that is not JSON at all gets FastAPI's own 422 (json_invalid).
            errors = [{"loc": ["body"], "msg": "The body is not valid JSON text", "type": "json_invalid"}]
            return problem(
                request, 422, "validation_error", "Invalid input", "The request is not valid.", errors=errors
            )
        code = {
            404: "not_found",
            405: "method_not_allowed",
            401: "unauthorized",
            403: "forbidden",
            413: "payload_too_large",
            415: "unsupported_media_type",
        }.get(exc.status_code, "http_error")
        title = HTTPStatus(exc.status_code).phrase if exc.status_code in _KNOWN_STATUSES else str(exc.detail)
        response = problem(request, exc.status_code, code, title, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            request, 500, "internal_error", "Internal server error", "An unexpected error occurred."
        )
