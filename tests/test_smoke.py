from sqlalchemy import text

from mobility.core.db import create_engine


async def test_empty_database_is_reachable(empty_database_url: str, backend: str) -> None:
    # A raw connection: the database is empty, there is nothing for a session to act on.
    engine = create_engine(empty_database_url)
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT 41 + 1"))).scalar() == 42
        assert conn.dialect.name == backend
    await engine.dispose()
