"""Request-scoped dependencies, as `Annotated` aliases the endpoints declare."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.core.errors import AppError


async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session and one transaction per request: committed on success, rolled back on any error.

    Services only flush; nothing a failed request wrote survives it (unless the error says it must,
    `AppError.keeps_writes`, e.g. the record of a failed login).
    """
    async with request.app.state.sessionmaker() as session:
        await session.begin()
        try:
            yield session
        except AppError as exc:
            if exc.keeps_writes:
                await session.commit()
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function": the commit happens before the response is sent, so a failed commit is answered
# as an error instead of a success that did not happen.
DbSession = Annotated[AsyncSession, Depends(get_db_session, scope="function")]
