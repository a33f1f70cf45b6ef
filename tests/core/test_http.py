"""HTTP hardening in process (core/http.py, core/docs.py): security headers on every answer, request
body caps and media types, the body deadline, the docs pages' own Content-Security-Policy.
Over a real socket, with `mobility serve`: tests/cli/test_serve_limits.py."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.engine import make_url

from mobility.core.config import Settings
from mobility.core.errors import PROBLEM_JSON
from mobility.main import create_app
from tests.support.app import api_client
from tests.support.databases import app_role_url

# What every answer carries, whatever its status (the values the module's rules name).
EVERY_ANSWER = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"


def assert_secured(response: httpx.Response, *, csp: str | None = JSON_CSP, cache: str = "no-store") -> None:
    for name, value in EVERY_ANSWER.items():
        assert response.headers.get(name) == value, (name, response.status_code, response.headers)
    if csp is not None:
        assert response.headers.get("content-security-policy") == csp
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers.get("cache-control") == cache, response.headers
    assert "strict-transport-security" not in response.headers  # plain HTTP


def assert_problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert (body["status"], body["code"]) == (status, code), body
    return body


async def test_every_answer_carries_the_security_headers(migrated_database_url: str) -> None:
    async with api_client(migrated_database_url) as client:
        answers = [
            await client.get("/health"),
            await client.post(
                "/api/v1/auth/login", json={"email": "nobody@example.org", "password": "x" * 12}
            ),
            await client.get("/api/v1/me"),
            await client.get("/api/v1/no-such-thing"),
            await client.post("/api/v1/auth/login", json={"email": 3}),
            await client.put("/health"),
        ]
    assert [answer.status_code for answer in answers] == [200, 401, 401, 404, 422, 405]
    for answer in answers:
        assert_secured(answer)


async def test_hsts_only_over_https(migrated_database_url: str) -> None:
    async with api_client(migrated_database_url) as client:
        plain = await client.get("/health")
        secure = await client.get("https://testserver/health")
        secure_error = await client.get("https://testserver/api/v1/me")
    assert "strict-transport-security" not in plain.headers
    for answer in (secure, secure_error):
        hsts = answer.headers["strict-transport-security"]
        max_age = int(re.fullmatch(r"max-age=(\d+); includeSubDomains", hsts).group(1))
        assert max_age >= 180 * 24 * 3600  # long enough to count (six months or more)


async def test_an_unexpected_error_carries_the_security_headers_too(migrated_database_url: str) -> None:
    settings = {"database_url": migrated_database_url}
    if make_url(migrated_database_url).get_backend_name() == "postgresql":
        settings["app_database_url"] = app_role_url(migrated_database_url)
    app = create_app(Settings(**settings))

    @app.get("/test-boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/test-boom")
    assert_problem(response, 500, "internal_error")
    assert_secured(response)


# --- request bodies ---------------------------------------------------------------------------------

LOGIN = "/api/v1/auth/login"
SMALL = {"max_json_body_bytes": 1000, "max_upload_bytes": 5000, "max_file_bytes": 4000}


async def test_a_body_over_the_cap_is_refused_by_its_content_length(migrated_database_url: str) -> None:
    pulled = []

    async def announced_body() -> AsyncIterator[bytes]:
        pulled.append(True)
        yield b" " * 5000

    async with api_client(migrated_database_url, **SMALL) as client:
        at_cap = await client.post(LOGIN, content=b" " * 1000, headers={"content-type": "application/json"})
        over = await client.post(LOGIN, content=b" " * 1001, headers={"content-type": "application/json"})
        unread = await client.post(
            LOGIN,
            content=announced_body(),
            headers={"content-type": "application/json", "content-length": "5000"},
        )
    # At the cap the body is read (and found not to be JSON); one byte more is not read at all.
    assert_problem(at_cap, 422, "validation_error")
    body = assert_problem(over, 413, "content_too_large")
    assert "1000 bytes" in body["detail"]
    assert over.headers["connection"] == "close"
    assert_secured(over)
    assert_problem(unread, 413, "content_too_large")
    assert pulled == []  # refused on its Content-Length: not a byte of the body was asked for


async def test_a_streamed_body_is_refused_once_it_passes_the_cap(migrated_database_url: str) -> None:
    sent = []

    async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length to go by
        for _ in range(50):
            sent.append(400)
            yield b" " * 400

    async with api_client(migrated_database_url, **SMALL) as client:
        response = await client.post(LOGIN, content=chunks(), headers={"content-type": "application/json"})
    assert_problem(response, 413, "content_too_large")
    assert_secured(response)
    assert sum(sent) <= 1000 + 2 * 400  # read up to the chunk that passed the cap, not the rest


async def test_uploads_have_their_own_cap(migrated_database_url: str) -> None:
    multipart = "multipart/form-data; boundary=xyz"
    async with api_client(migrated_database_url, **SMALL) as client:
        upload = await client.post(LOGIN, content=b"-" * 4000, headers={"content-type": multipart})
        too_big = await client.post(LOGIN, content=b"-" * 5001, headers={"content-type": multipart})
        json_as_big = await client.post(
            LOGIN, content=b" " * 4000, headers={"content-type": "application/json"}
        )
    assert upload.status_code == 415, (
        upload.text
    )  # under the upload cap: passed on, and login takes JSON only
    assert_problem(too_big, 413, "content_too_large")
    assert_problem(json_as_big, 413, "content_too_large")


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
async def test_a_body_of_a_media_type_no_route_takes_gets_415(
    migrated_database_url: str, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    async with api_client(migrated_database_url) as client:
        response = await client.post(LOGIN, content=b'{"email": "a@example.org"}', headers=headers)
        json_charset = await client.post(
            LOGIN,
            content=b'{"email": "a@example.org"}',
            headers={"content-type": "application/json; charset=utf-8"},
        )
    assert_problem(response, 415, "unsupported_media_type")
    assert_secured(response)
    assert json_charset.status_code == 422  # JSON is taken (and this one lacks the password)


async def test_a_body_that_does_not_arrive_in_time_gets_408(migrated_database_url: str) -> None:
    settings = {"database_url": migrated_database_url, "body_timeout_seconds": 0.2}
    if make_url(migrated_database_url).get_backend_name() == "postgresql":
        settings["app_database_url"] = app_role_url(migrated_database_url)
    app = create_app(Settings(**settings))
    never = asyncio.Event()
    sent: list[dict] = []

    async def receive() -> dict:  # a client that sent its headers and then nothing
        await never.wait()
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": LOGIN,
        "raw_path": LOGIN.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", b"50"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    async with app.router.lifespan_context(app):
        # The bound only keeps a broken deadline from hanging the suite; it is not what is tested.
        await asyncio.wait_for(app(scope, receive, send), timeout=30)
    start, body = sent[0], sent[1]
    assert start["status"] == 408 and len(sent) == 2
    headers = dict(start["headers"])
    assert headers[b"content-type"] == PROBLEM_JSON.encode() and headers[b"connection"] == b"close"
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert b'"code":"request_timeout"' in body["body"]


# --- the HTML docs ----------------------------------------------------------------------------------


def _csp_hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_from_this_server(migrated_database_url: str, page: str) -> None:
    async with api_client(migrated_database_url) as client:
        html = await client.get(page)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        policy = html.headers["content-security-policy"]
        directives = dict(
            (part.split()[0], part.split()[1:]) for part in (d.strip() for d in policy.split(";")) if part
        )
        assert directives["default-src"] == ["'none'"] and directives["frame-ancestors"] == ["'none'"]
        # No other origin anywhere: the page works offline and trusts no CDN.
        assert not re.search(r"https?:|\*", policy), policy
        # Each inline script is allowed by its hash, and only those and this server's files.
        inline = re.findall(r"<script>(.*?)</script>", html.text, re.DOTALL)
        assert sorted(directives["script-src"]) == sorted(["'self'", *map(_csp_hash, inline)])
        # Every file the page loads is on this server, and served.
        assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert assets and all(asset.startswith("/") for asset in assets), assets
        for asset in assets:
            response = await client.get(asset)
            assert response.status_code == 200, asset
            assert_secured(response, cache=response.headers["cache-control"])
            assert "no-store" not in response.headers["cache-control"]  # static files may be cached
    assert_secured(html, csp=None)
