"""What core/http.py's middlewares add to a request, in microseconds: the same ASGI call to a trivial
app with and without them, timed in process on uvloop (no server, no database).

    .venv/bin/python bench/http_middleware.py [--requests 200000]

Cases: a GET with the headers of an authenticated read (bench/auth.py's request), and a small JSON
POST (its body counted and given a deadline). Prints the cost per request of each; exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import uvloop

from mobility.core.http import RequestBodyMiddleware, SecurityHeadersMiddleware

RESPONSE_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", b"2"),
    (b"x-request-id", b"ab"),
]


async def plain_app(scope, receive, send) -> None:
    if scope["method"] == "POST":
        while (await receive()).get("more_body"):
            pass
    await send({"type": "http.response.start", "status": 200, "headers": list(RESPONSE_HEADERS)})
    await send({"type": "http.response.body", "body": b"{}"})


def scope_of(method: str, extra: list[tuple[bytes, bytes]]) -> dict:
    return {
        "type": "http",
        "method": method,
        "scheme": "http",
        "path": "/api/v1/users/0190c9d2-7a1c-7d3e-8f00-000000000001",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"wrk"),
            (b"accept", b"*/*"),
            (b"authorization", b"Bearer " + b"t" * 43),
            *extra,
        ],
    }


async def per_request_us(app, scope: dict, requests: int) -> float:
    body = {"type": "http.request", "body": b'{"name": "a new name"}', "more_body": False}

    async def receive() -> dict:
        return body

    async def send(message: dict) -> None:
        pass

    # The event loop turns between requests, as in a server (it drops cancelled timers then).
    for _ in range(1000):  # warm up
        await app(dict(scope), receive, send)
        await asyncio.sleep(0)
    started = time.perf_counter()
    for _ in range(requests):
        await app(dict(scope), receive, send)
        await asyncio.sleep(0)
    return (time.perf_counter() - started) / requests * 1e6


async def main(requests: int) -> None:
    hardened = SecurityHeadersMiddleware(
        RequestBodyMiddleware(
            plain_app, max_json_body_bytes=1 << 20, max_upload_bytes=10 << 20, body_timeout=30
        )
    )
    cases = {
        "authenticated GET": scope_of("GET", []),
        "JSON POST (22 bytes)": scope_of(
            "POST", [(b"content-type", b"application/json"), (b"content-length", b"22")]
        ),
    }
    for name, scope in cases.items():
        # Alternate, and keep the best of a few rounds: the machine is shared.
        bare = min([await per_request_us(plain_app, scope, requests) for _ in range(3)])
        with_middleware = min([await per_request_us(hardened, scope, requests) for _ in range(3)])
        print(
            f"{name:22} bare {bare:5.2f} us   with core/http.py {with_middleware:5.2f} us   added {with_middleware - bare:5.2f} us"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    uvloop.run(main(parser.parse_args().requests))  # the loop `mobility serve` runs on
