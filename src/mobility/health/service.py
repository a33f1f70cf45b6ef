from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.core.errors import ServiceUnavailable


async def check(session: AsyncSession) -> dict[str, str | None]:
    """The database answers and has a migration revision; ServiceUnavailable otherwise."""
    try:
        await session.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        raise ServiceUnavailable("The database cannot be reached.", database="unreachable") from exc
    try:
        async with session.begin_nested():
            revision = (await session.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except SQLAlchemyError as exc:
        raise ServiceUnavailable("The database has not been migrated.", database="ok", revision=None) from exc
    if revision is None:
        raise ServiceUnavailable("The database has not been migrated.", database="ok", revision=None)
    return {"status": "ok", "database": "ok", "revision": revision}
