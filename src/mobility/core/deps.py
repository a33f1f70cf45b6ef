"""Request-scoped dependencies, as `Annotated` aliases the endpoints declare."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.core.db import READ_POOL, release_read_connection
from mobility.core.errors import AppError


async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session and one transaction per request: committed on success, rolled back on any error.

    Services only flush; nothing a failed request wrote survives it (unless the error says it must,
    `AppError.keeps_writes`, e.g. the record of a failed login).
    """
    async with request.app.state.sessionmaker() as session:
        # The ORM transaction begins with the first statement that needs it; reads before that go to
        # the request's read connection (core/db.py), ended and given back here too.
        session.sync_session.info[READ_POOL] = request.app.state.read_pool
        try:
            yield session
        except AppError as exc:
            if exc.keeps_writes:
                await _commit(session)
            elif session.in_transaction():
                await session.rollback()
            raise
        except BaseException:
            if session.in_transaction():
                await session.rollback()
            raise
        else:
            await _commit(session)
        finally:
            await release_read_connection(session)


async def _commit(session: AsyncSession) -> None:
    if session.in_transaction():
        await session.commit()


# scope="function": the commit happens before the response is sent, so a failed commit is answered
# as an error instead of a success that did not happen.
DbSession = Annotated[AsyncSession, Depends(get_db_session, scope="function")]
