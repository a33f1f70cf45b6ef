"""The request's unit of work: one database session and one transaction per request.

`UnitOfWorkMiddleware` gives every HTTP request a `RequestUnit`; the `DbSession` dependency hands out
its session, made on first use. When the response starts, the unit commits if the answer is a success
(or an error that must keep its writes, `AppError.keeps_writes`, e.g. the record of a failed login),
and rolls back otherwise; an exception that escapes the app rolls back too. The commit happens before
the first byte of the response: a failed commit is answered as a 500 problem, never as a success that
did not happen. Services only flush.

When the database fails under a request (core/db.py): unreachable, or the connection closed under it,
the answer is 503 with Retry-After and the broken connections are discarded, never pooled again; a
write that met a concurrent twin is a 409. Either way nothing of the request is committed, and
neither is logged per request (`OutageLog`: one line per outage).

A middleware rather than a generator dependency: FastAPI's generator dependencies cost ~70 us per
request (exit stacks, shielding; bench/auth.py), as much as a database round trip.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mobility.core.db import (
    READ_POOL,
    ConcurrentChange,
    DatabaseUnavailable,
    is_concurrent_change,
    is_unavailable,
    release_read_connection,
)
from mobility.core.errors import KEEP_WRITES, PROBLEM_JSON, AppError, problem, problem_body
from mobility.core.storage import FileStorage

logger = logging.getLogger(__name__)

_UNIT = "mobility.unit"  # the request's ASGI scope: its RequestUnit


class RequestUnit:
    def __init__(self, state: Any) -> None:
        self._state = state
        self.session: AsyncSession | None = None

    def get_session(self) -> AsyncSession:
        if self.session is None:
            self.session = self._state.sessionmaker()
            # The ORM transaction begins with the first statement that needs it; reads before that
            # go to the request's read connection (core/db.py), ended and given back here too.
            self.session.sync_session.info[READ_POOL] = self._state.read_pool
        return self.session

    async def finish(self, *, commit: bool) -> None:
        """Commit (or roll back) the request's transaction. A failed commit raises; a failed rollback
        does not: it means the connection is broken, and it is discarded."""
        session = self.session
        if session is None or not session.in_transaction():
            return
        if commit:
            await session.commit()
        else:
            await self._end(session)

    async def close(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        try:
            await release_read_connection(session)  # never raises
        finally:
            # A session out of any transaction holds no connection: closing it (~60 us) would only
            # empty its identity map, which goes with it anyway.
            if session.in_transaction():
                await self._end(session)

    @staticmethod
    async def _end(session: AsyncSession) -> None:
        """Roll back and close; a connection that cannot even roll back is invalidated (closed, not
        pooled again)."""
        try:
            await session.close()
        except Exception as exc:
            if not is_unavailable(exc):
                logger.warning("a rollback failed; its connection is discarded: %r", exc)
            try:
                await session.invalidate()
            except Exception as again:  # the connection is closed whatever it says
                logger.debug("invalidating a broken session: %r", again)


class UnitOfWorkMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        unit = RequestUnit(scope["app"].state)
        scope[_UNIT] = unit
        replaced = False

        async def send_after_commit(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return  # the app's own answer was replaced: the rest of its body is dropped
            if message["type"] == "http.response.start":
                status = message["status"]
                try:
                    await unit.finish(commit=status < 400 or bool(scope.get(KEEP_WRITES)))
                except Exception as exc:
                    replaced = True
                    error = database_error(scope["app"], exc)
                    if error is None:
                        logger.exception("commit failed on %s %s", scope.get("method"), scope.get("path"))
                        error = _CommitFailed()
                    await unit.close()  # before answering: a broken connection is not pooled again
                    await _send_problem(send, error)
                    return
            await send(message)

        try:
            await self.app(scope, receive, send_after_commit)
        finally:
            await unit.close()


class _CommitFailed(AppError):
    status, code, title = 500, "internal_error", "Internal server error"

    def __init__(self) -> None:
        super().__init__("The change could not be saved.")


async def _send_problem(send: Send, error: AppError) -> None:
    body = problem_body(error.status, error.code, error.title, error.detail)
    headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in error.headers().items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def database_error(app: Any, exc: BaseException) -> AppError | None:
    """The answer to a database failure that is the database's state rather than a bug (core/db.py):
    503 when it is unavailable (reported to the app's `OutageLog`), 409 for a concurrent change; None
    for anything else."""
    if is_unavailable(exc):
        outage = getattr(app.state, "outage", None)
        if outage is not None:
            outage.report(exc)
        return DatabaseUnavailable()
    if is_concurrent_change(exc):
        return ConcurrentChange()
    return None


# What a database failure can raise: SQLAlchemy's errors (the ORM), asyncpg's (the read path), and the
# socket errors of connecting.
_DATABASE_ERRORS = (
    SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,  # refused, reset, timed out, the host name unresolved (socket.gaierror)
)


def install_database_error_handlers(app: FastAPI) -> None:
    """Database failures raised while the request runs: answered by `database_error`; the others go
    on to the catch-all 500 handler (core/errors.py)."""

    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        error = database_error(request.app, exc)
        if error is None:
            raise exc
        response = problem(request, error.status, error.code, error.title, error.detail)
        response.headers.update(error.headers())
        return response

    for kind in _DATABASE_ERRORS:
        app.add_exception_handler(kind, _database_error)


async def get_db_session(request: Request) -> AsyncSession:
    """The request's session (see the module doc)."""
    return request_session(request)


def request_session(request: Request) -> AsyncSession:
    """The request's session, for code that has the request (core.auth) without asking FastAPI for
    it as a dependency: each dependency level costs ~10 us per request even when cached."""
    unit = request.scope.get(_UNIT)
    if unit is None:
        raise RuntimeError("UnitOfWorkMiddleware is not installed on this app")
    return unit.get_session()


DbSession = Annotated[AsyncSession, Depends(get_db_session)]


def get_storage(request: Request) -> FileStorage:
    """The app's file storage (core/storage.py), opened when the app starts."""
    return request.app.state.storage


FileStore = Annotated[FileStorage, Depends(get_storage)]
