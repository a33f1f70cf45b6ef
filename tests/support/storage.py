"""Helpers for tests of stored files: what a storage holds, uploads as streams, and a table of
references to stored files (the documents table's stand-in, core/files.py `References`)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mobility.core.s3storage import S3Storage
from mobility.core.storage import FileStorage, LocalDiskStorage
from tests.support.databases import APP_ROLE


def stored_names(storage: FileStorage) -> set[str]:
    """Every file the storage holds, staged ones included: what "leaves nothing" is checked against."""
    staged = {f"staging:{path.name}" for path in storage.staging_dir.iterdir()}
    if isinstance(storage, LocalDiskStorage):
        files = {
            str(path.relative_to(storage.root))
            for path in storage.root.rglob("*")
            if path.is_file() and storage.staging_dir not in path.parents
        }
    else:
        assert isinstance(storage, S3Storage)
        listing = storage.client.list_objects_v2(Bucket=storage.bucket, Prefix=storage.prefix)
        files = {item["Key"].removeprefix(storage.prefix) for item in listing.get("Contents", [])}
    return files | staged


async def chunks_of(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    """`data` as an upload streams in: in chunks, yielding to the event loop between them."""
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(0)


async def create_references_table(engine: AsyncEngine) -> None:
    """In the test database (tests/core/scoped.py's, one per backend for the run): tests use a namespace
    of their own, so their keys, and the rows naming them, never meet."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "CREATE TABLE IF NOT EXISTS file_references"
                ' (id VARCHAR(32) PRIMARY KEY, "storageKey" VARCHAR(600) NOT NULL)'
            )
        )
        if connection.dialect.name == "postgresql":  # the API's role uses it too (tests/core/scoped.py)
            await connection.execute(text(f"GRANT SELECT, INSERT, DELETE ON file_references TO {APP_ROLE}"))


def new_namespace() -> str:
    return f"test-{secrets.token_hex(8)}"


async def add_reference(session: AsyncSession, key: str) -> str:
    """A row naming `key`; returns the row's id."""
    row = secrets.token_hex(16)
    await session.execute(
        text('INSERT INTO file_references (id, "storageKey") VALUES (:id, :key)'), {"id": row, "key": key}
    )
    return row


async def drop_reference(session: AsyncSession, row: str) -> None:
    await session.execute(text("DELETE FROM file_references WHERE id = :id"), {"id": row})


async def drop_references(session: AsyncSession, key: str) -> None:
    await session.execute(text('DELETE FROM file_references WHERE "storageKey" = :key'), {"key": key})


async def references(session: AsyncSession, key: str) -> bool:
    """core.files.References over the test table: whether any row names `key`."""
    count = await session.scalar(
        text('SELECT count(*) FROM file_references WHERE "storageKey" = :key'), {"key": key}
    )
    return bool(count)
