"""Request-scoped dependencies, as `Annotated` aliases the endpoints declare."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession


async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session and one transaction per request: committed on success, rolled back on any error.

    Services only flush; nothing a failed request wrote survives it.
    """
    async with request.app.state.sessionmaker() as session, session.begin():
        yield session


DbSession = Annotated[AsyncSession, Depends(get_db_session)]
