"""HTTP hardening: security headers, request body limits, and deadlines for slow or idle clients.

- `SecurityHeadersMiddleware` puts the security headers on every response. `HardenedFastAPI` places it
  outside Starlette's ServerErrorMiddleware, so that even an unexpected 500 carries them.
- `RequestBodyMiddleware` caps request bodies (JSON and the like at `max_json_body_bytes`,
  multipart/form-data uploads at `max_upload_bytes`), refuses media types no route takes (415), and
  gives the body a deadline (408). Refusals are problem+json and close the connection: the rest of
  the body is never read.
- `DeadlineHttpToolsProtocol` is uvicorn's HTTP protocol with the deadlines an ASGI middleware cannot
  set, as it runs only once the headers are in: a connection that sends nothing is closed after the
  keep-alive timeout (uvicorn arms it only after a first response), a request's headers must arrive
  within `header_timeout` of its first byte, and a body still trickling in well past the body deadline
  closes the connection (e.g. a body the app never read). `mobility serve` uses it. It closes
  connections the way nginx's `lingering_close` does (`_LingeringTransport`): the answer is sent, the
  write side shut, and what the client still sends is read and dropped for a moment. A plain close with
  the client's bytes still arriving makes the kernel answer them with a reset, and the client then
  loses the 413 or 408 it had not read yet.

Pure ASGI, not BaseHTTPMiddleware: every request passes through here, and the authenticated read is
benchmarked (bench/auth.py); a request without a body costs one pass over its headers and one over its
response's headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mobility.core.errors import PROBLEM_JSON, problem_body

# --- security headers -------------------------------------------------------------------------------

# On every response. `no-referrer`: links carry invitation tokens, and no page of ours needs to tell
# another site where its visitor came from. Framing is refused twice: CSP frame-ancestors for today's
# browsers, X-Frame-Options for older ones. CORP keeps other sites from embedding our answers (as
# images or scripts) in their pages.
ALWAYS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
# Unless the response brings its own (the HTML docs pages do: core/docs.py): a JSON answer loads
# nothing and may be framed by no one.
DEFAULT_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
# Unless the response brings its own (the docs' static assets do): answers hold personal data and
# session tokens, and nothing of ours is worth caching in a shared or browser cache.
DEFAULT_CACHE_CONTROL = (b"cache-control", b"no-store")
# Only over HTTPS (the scheme after the proxy headers uvicorn believes, MOBILITY_FORWARDED_ALLOW_IPS):
# a browser ignores it over HTTP, and sending it there would only tell a lie. One year; subdomains of
# the host serving the API included, not preloaded (that is the operator's decision).
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
_CSP = b"content-security-policy"
_CACHE_CONTROL = b"cache-control"


def with_security_headers(headers: Any, *, https: bool) -> list[tuple[bytes, bytes]]:
    """The response headers plus the security headers (the response's own CSP and cache policy kept)."""
    has_csp = has_cache_control = False
    for name, _ in headers:
        if name == _CSP:
            has_csp = True
        elif name == _CACHE_CONTROL:
            has_cache_control = True
    secured = [*headers, *ALWAYS]
    if not has_csp:
        secured.append(DEFAULT_CSP)
    if not has_cache_control:
        secured.append(DEFAULT_CACHE_CONTROL)
    if https:
        secured.append(HSTS)
    return secured


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_security_headers(message.get("headers", ()), https=https)
            await send(message)

        await self.app(scope, receive, send_secured)


class HardenedFastAPI(FastAPI):
    """FastAPI with `SecurityHeadersMiddleware` outermost: around Starlette's ServerErrorMiddleware,
    which answers unexpected errors itself, below every `add_middleware`."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeadersMiddleware(super().build_middleware_stack())


# --- request bodies ---------------------------------------------------------------------------------

_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
_CONTENT_TYPE = b"content-type"
_MULTIPART = b"multipart/form-data"
# What the routes take: JSON (the API), forms (the web console to come). Anything else gets 415 before
# a byte of it is read.
_FORM = b"application/x-www-form-urlencoded"
_JSON = b"application/json"


class _Refused(Exception):
    """The body middleware has answered for the app; what the app does next is dropped."""


class RequestBodyMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_json_body_bytes: int, max_upload_bytes: int, body_timeout: float
    ) -> None:
        self.app = app
        self.max_json_body_bytes = max_json_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = content_type = None
        chunked = False
        for name, value in scope["headers"]:
            if name == _CONTENT_LENGTH:
                length = value
            elif name == _TRANSFER_ENCODING:
                chunked = True
            elif name == _CONTENT_TYPE:
                content_type = value
        if not chunked and (length is None or length == b"0"):
            await self.app(scope, receive, send)  # no body: nothing to limit
            return

        media_type = content_type.partition(b";")[0].strip().lower() if content_type else b""
        if media_type == _MULTIPART:
            limit, kind = self.max_upload_bytes, "an upload"
        elif media_type in (_JSON, _FORM) or media_type.endswith(b"+json"):
            limit, kind = self.max_json_body_bytes, "a request body"
        else:
            await _refuse(
                send, scope, 415, "unsupported_media_type", "Unsupported media type",
                "Send the body as application/json"
                + (f", not {media_type.decode('latin-1')}." if media_type else " (no Content-Type was given)."),
            )  # fmt: skip
            return
        if not chunked and not length.isdigit():  # uvicorn refuses these itself; other servers may not
            await _refuse(send, scope, 400, "bad_request", "Bad request", "Content-Length is not a number.")
            return
        if not chunked and int(length) > limit:
            await _refuse_too_large(send, scope, limit, kind)
            return
        await _LimitedRequest(self.app, scope, receive, send, limit, kind, self.body_timeout).run()


class _LimitedRequest:
    """One request with a body: counted as it is read, and read by a deadline.

    The deadline is one timer for the whole body that cancels a receive still waiting when it passes
    (asyncio.timeout around each receive cost ~10 us a request)."""

    __slots__ = ("app", "scope", "receive", "send", "limit", "kind", "loop", "deadline", "timer", "waiter")
    __slots__ += ("received", "done", "expired", "answered", "started")

    def __init__(
        self, app: ASGIApp, scope: Scope, receive: Receive, send: Send, limit: int, kind: str, timeout: float
    ) -> None:
        self.app, self.scope, self.receive, self.send = app, scope, receive, send
        self.limit, self.kind = limit, kind
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + timeout
        self.timer: asyncio.TimerHandle | None = None
        self.waiter: asyncio.Task | None = None
        self.received = 0
        self.done = self.expired = self.answered = self.started = False

    async def run(self) -> None:
        try:
            # When the app lets _Refused through: our answer went out, the app gave up on the body.
            with contextlib.suppress(_Refused):
                await self.app(self.scope, self.receive_limited, self.send_unless_answered)
        finally:
            if self.timer is not None:
                self.timer.cancel()

    async def receive_limited(self) -> Message:
        if self.done:
            return await self.receive()  # the body is in: the app may wait for a disconnect, unhurried
        if self.answered:
            return {"type": "http.disconnect"}
        if self.timer is None:
            self.timer = self.loop.call_at(self.deadline, self._expire)
        if self.expired:
            await self._too_slow()
        self.waiter = asyncio.current_task()
        try:
            message = await self.receive()
        except asyncio.CancelledError:
            if not self.expired or self.waiter is None:
                raise  # not ours
            self.waiter.uncancel()
            await self._too_slow()
        finally:
            self.waiter = None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                await self.refuse(*_too_large(self.limit, self.kind))
            if not message.get("more_body", False):
                self.done = True
                self.timer.cancel()
        return message

    def _expire(self) -> None:
        self.expired = True
        if self.waiter is not None:
            self.waiter.cancel()

    async def _too_slow(self) -> None:
        await self.refuse(
            408, "request_timeout", "Request timeout", "The request body did not arrive in time."
        )

    async def send_unless_answered(self, message: Message) -> None:
        if self.answered:
            return  # the app's answer to a body it could not read: ours went out instead
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)

    async def refuse(self, status: int, code: str, title: str, detail: str) -> None:
        self.answered = True
        if not self.started:  # else the server cuts the connection when the exception reaches it
            await _refuse(self.send, self.scope, status, code, title, detail)
            raise _Refused
        raise _Refused(detail)


def _too_large(limit: int, kind: str) -> tuple[int, str, str, str]:
    return (
        413,
        "content_too_large",
        "Content too large",
        f"The body is larger than {limit} bytes, the limit for {kind}.",
    )


async def _refuse_too_large(send: Send, scope: Scope, limit: int, kind: str) -> None:
    await _refuse(send, scope, *_too_large(limit, kind))


async def _refuse(send: Send, scope: Scope, status: int, code: str, title: str, detail: str) -> None:
    """Answer with a problem and close the connection: whatever is left of the body is never read."""
    body = problem_body(status, code, title, detail, scope.get("path"))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# --- slow and idle clients, below ASGI ---------------------------------------------------------------

# After the body deadline the app answers 408 itself when it is reading the body (RequestBodyMiddleware);
# this grace keeps the connection open long enough for that answer.
_BODY_GRACE_SECONDS = 5.0
# httptools takes headers of any size (it buffers a header until its end); h11 stops at 16 KiB, nginx
# at 4 x 8 KiB. A session cookie or bearer token is well under 1 KiB.
MAX_HEADER_BYTES = 32 * 1024
# How long a closed connection still reads (and drops) what the client sends, so that the client
# reads our answer before anything resets the connection (nginx: lingering_time 30 s, lingering_timeout
# 5 s; a refusal here is for a client we do not wait long for).
LINGER_SECONDS = 2.0


class _LingeringTransport:
    """The connection's transport, whose `close()` shuts the write side once the answer is out and
    closes the socket when the client closes its side or after `LINGER_SECONDS`, whichever comes
    first. Everything else is the transport's own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._closing = False
        self._timer: asyncio.TimerHandle | None = None
        # The calls of every request, bound once (the authenticated read is benchmarked).
        self.write = transport.write
        self.get_extra_info = transport.get_extra_info

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        transport = self._transport
        if transport.is_closing():
            return
        try:
            transport.write_eof()  # after what is buffered: the answer goes out first
        except (NotImplementedError, OSError, RuntimeError):
            transport.close()
            return
        self._timer = self._loop.call_later(LINGER_SECONDS, transport.close)

    def close_now(self) -> None:
        self._closing = True
        self._transport.close()

    def closed(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with deadlines for a request's headers and body and a cap on the
    size of its headers.

    Give `header_timeout` and `body_timeout` (seconds) with functools.partial; `serve_options` does.
    """

    def __init__(self, *args: Any, header_timeout: float, body_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self._deadline: asyncio.TimerHandle | None = None
        self._headers_done_at = 0.0
        # Bytes of the earlier reads of a request whose headers are coming in (None between them); the
        # read in progress may end the headers and begin the body, so only its length is kept.
        self._header_bytes: int | None = None
        self._this_read = 0
        self._refused = False  # a request refused before the app saw it: the rest is ignored

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_LingeringTransport(transport, self.loop))  # type: ignore[arg-type]
        # uvicorn arms its keep-alive timer after a response only: a client that connected and never
        # sent a byte would keep its connection for ever. The first byte cancels it (data_received).
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.transport.closed()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        # The server is stopping: an idle connection closes at once (nobody waits for its linger).
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close_now()
        else:
            super().shutdown()

    def data_received(self, data: bytes) -> None:
        if self._refused or self.transport.is_closing():
            return  # a refused request's rest, or bytes after our answer while lingering: dropped
        self._this_read = len(data)
        super().data_received(data)
        if self._header_bytes is not None:  # the headers are still not all in
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._headers_too_large()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)
        self._header_bytes = 0

    def on_headers_complete(self) -> None:
        self._disarm()
        earlier, self._header_bytes = self._header_bytes or 0, None
        if (
            earlier + self._this_read > MAX_HEADER_BYTES
            and _header_size(self.url, self.headers) > MAX_HEADER_BYTES
        ):
            self._headers_too_large()
            return
        self._headers_done_at = self.loop.time()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        if self._deadline is None:  # the first part of the body: its deadline starts with the headers
            self._deadline = self.loop.call_at(
                self._headers_done_at + self.body_timeout + _BODY_GRACE_SECONDS, self._body_too_slow
            )
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        if not self._refused:
            super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        self._refuse(
            408,
            b"Request Timeout",
            "request_timeout",
            "Request timeout",
            "The request headers did not arrive in time.",
        )

    def _headers_too_large(self) -> None:
        self._refuse(
            431, b"Request Header Fields Too Large", "header_fields_too_large", "Request header fields too large",
            f"The request's headers exceed {MAX_HEADER_BYTES} bytes.",
        )  # fmt: skip

    def _refuse(self, status: int, reason: bytes, code: str, title: str, detail: str) -> None:
        """A problem for a request the app never saw (its headers are not all in), then the end."""
        self._disarm()
        self._header_bytes = None
        self._refused = True
        if self.transport.is_closing():
            return
        # Only when no earlier response is still being written on this connection.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_raw_problem(status, reason, code, title, detail))
        self.transport.close()

    def _body_too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def _header_size(url: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    return len(url) + sum(len(name) + len(value) + 4 for name, value in headers)


def _raw_problem(status: int, reason: bytes, code: str, title: str, detail: str) -> bytes:
    body = problem_body(status, code, title, detail)
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *with_security_headers((), https=False),
    ]
    lines = [b"HTTP/1.1 %d %s" % (status, reason)] + [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def serve_options(settings: Any) -> dict[str, Any]:
    """uvicorn.run's options for the timeouts and limits in `settings` (`mobility serve`)."""
    return {
        "http": functools.partial(
            DeadlineHttpToolsProtocol,
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
        ),
        "timeout_keep_alive": settings.keep_alive_timeout_seconds,
        "limit_concurrency": settings.max_connections,
    }
