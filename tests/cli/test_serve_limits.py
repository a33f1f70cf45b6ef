"""`mobility serve` over a real socket: body caps, security headers, HSTS behind a trusted proxy only,
and slow or idle clients cut off (core/http.py). The timeouts are set short here; the socket's own
timeout only bounds a failing test."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx

from mobility.ops import migrations
from tests.cli.support import serving
from tests.support.databases import DatabaseFactory

EVERY_ANSWER = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
LOGIN = "/api/v1/auth/login"


class Answer:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def problem(self) -> dict:
        assert self.headers["content-type"] == "application/problem+json", self.headers
        return json.loads(self.body)


def exchange(base: str, *parts: bytes, pause: float = 0.0) -> tuple[bytes, int]:
    """Sends `parts` on a new connection (`pause` seconds between them), then reads until the server
    closes it (a test fails if the server does not within 20 s); returns what it answered and how
    many bytes were sent."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as connection:
        sent = 0
        for number, part in enumerate(parts):
            if number and pause:
                time.sleep(pause)
            connection.sendall(part)
            sent += len(part)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received, sent


def test_answers_carry_security_headers_and_hsts_only_from_a_trusted_https_proxy(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    url = database_factory.create("sqlite", "serve_headers")
    migrations.upgrade(url)
    https = {"X-Forwarded-Proto": "https"}
    with serving(url, tmp_path) as base:  # the proxy on this host (127.0.0.1) is trusted by default
        answers = [
            httpx.get(f"{base}/health"),
            httpx.get(f"{base}/api/v1/me"),
            httpx.get(f"{base}/api/v1/no-such-thing"),
            httpx.post(f"{base}{LOGIN}", json={"email": 3}),
        ]
        behind_https = [
            httpx.get(f"{base}/health", headers=https),
            httpx.get(f"{base}/api/v1/me", headers=https),
        ]
    assert [answer.status_code for answer in answers] == [200, 401, 404, 422]
    for answer in answers + behind_https:
        for name, value in EVERY_ANSWER.items():
            assert answer.headers.get(name) == value, (name, answer.status_code)
        assert answer.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert not any("strict-transport-security" in answer.headers for answer in answers)
    assert all(answer.headers["strict-transport-security"].startswith("max-age=") for answer in behind_https)

    # From a client that is not a listed proxy, X-Forwarded-Proto is not believed: no HSTS.
    with serving(url, tmp_path, MOBILITY_FORWARDED_ALLOW_IPS="192.0.2.1") as base:
        untrusted = httpx.get(f"{base}/health", headers=https)
    assert untrusted.status_code == 200 and "strict-transport-security" not in untrusted.headers


def test_big_bodies_and_slow_or_idle_clients_are_cut_off(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    url = database_factory.create("sqlite", "serve_limits")
    migrations.upgrade(url)
    limits = {
        "MOBILITY_MAX_JSON_BODY_BYTES": "100000",
        "MOBILITY_KEEP_ALIVE_TIMEOUT_SECONDS": "1",
        "MOBILITY_HEADER_TIMEOUT_SECONDS": "1",
        "MOBILITY_BODY_TIMEOUT_SECONDS": "1",
    }
    post = f"POST {LOGIN} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n".encode()
    with serving(url, tmp_path, **limits) as base:
        # 50 MB announced, 10 bytes sent: answered 413 and closed without waiting for the rest.
        raw, sent = exchange(base, post + b"Content-Length: 52428800\r\n\r\n", b'{"email": ')
        announced = Answer(raw)
        # The same, the client still sending well after the answer: it reads the 413 all the same (the
        # server half-closes and lingers; a plain close would answer the late bytes with a reset that
        # throws the unread 413 away).
        late = Answer(
            exchange(base, post + b"Content-Length: 52428800\r\n\r\n", b'{"email": ', b" " * 4096, pause=0.3)[
                0
            ]
        )
        # Chunked, so nothing announced: refused once what arrived passes the cap, before its end.
        chunk = b"%x\r\n%s\r\n" % (60000, b" " * 60000)
        raw, _ = exchange(base, post + b"Transfer-Encoding: chunked\r\n\r\n", chunk, chunk)
        streamed = Answer(raw)
        # A client that connects and sends nothing is disconnected (after the keep-alive timeout).
        idle, _ = exchange(base)
        # Headers that never end: 408, closed.
        slow_headers = Answer(exchange(base, b"GET /health HTTP/1.1\r\nHost: test\r\n")[0])
        # A body that never comes: 408, closed.
        slow_body = Answer(exchange(base, post + b"Content-Length: 100\r\n\r\n", b'{"email"')[0])
        # Headers too big to be real.
        huge_headers = Answer(
            exchange(
                base, b"GET /health HTTP/1.1\r\nHost: test\r\nX-Padding: " + b"a" * 100_000 + b"\r\n\r\n"
            )[0]
        )
        # The server is still there for everyone else.
        assert httpx.get(f"{base}/health").status_code == 200

    assert sent < 1000  # of the 52,428,800 bytes announced: the answer did not wait for them
    assert announced.status == 413 and announced.problem()["code"] == "content_too_large"
    assert announced.headers["connection"] == "close"
    assert late.status == 413 and late.problem()["code"] == "content_too_large"
    assert streamed.status == 413 and streamed.problem()["code"] == "content_too_large"
    assert idle == b""
    assert slow_headers.status == 408 and slow_headers.problem()["code"] == "request_timeout"
    assert slow_body.status == 408 and slow_body.problem()["code"] == "request_timeout"
    assert huge_headers.status == 431 and huge_headers.problem()["code"] == "header_fields_too_large"
    for answer in (announced, streamed, slow_headers, slow_body, huge_headers):
        for name, value in EVERY_ANSWER.items():
            assert answer.headers.get(name) == value, (name, answer.status)
