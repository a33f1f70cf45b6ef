"""The request's unit of work: one database session and one transaction per request.

`UnitOfWorkMiddleware` gives every HTTP request a `RequestUnit`; the `DbSession` dependency hands out
its session, made on first use. When the response starts, the unit commits if the answer is a success
(or an error that must keep its writes, `AppError.keeps_writes`, e.g. the record of a failed login),
and rolls back otherwise; an exception that escapes the app rolls back too. The commit happens before
the first byte of the response: a failed commit is answered as a 500 problem, never as a success that
did not happen. Services only flush.

A middleware rather than a generator dependency: FastAPI's generator dependencies cost ~70 us per
request (exit stacks, shielding; bench/auth.py), as much as a database round trip.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mobility.core.db import READ_POOL, release_read_connection
from mobility.core.errors import KEEP_WRITES, PROBLEM_JSON, problem_body

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
        session = self.session
        if session is None:
            return
        if session.in_transaction():
            if commit:
                await session.commit()
            else:
                await session.rollback()

    async def close(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        try:
            await release_read_connection(session)
        finally:
            # A session out of any transaction holds no connection: closing it (~60 us) would only
            # empty its identity map, which goes with it anyway.
            if session.in_transaction():
                await session.close()  # rolls back


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
                except Exception:
                    logger.exception("commit failed on %s %s", scope.get("method"), scope.get("path"))
                    replaced = True
                    await _send_commit_failed(send)
                    return
            await send(message)

        try:
            await self.app(scope, receive, send_after_commit)
        finally:
            await unit.close()


async def _send_commit_failed(send: Send) -> None:
    body = problem_body(500, "internal_error", "Internal server error", "The change could not be saved.")
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


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
