"""Stored files follow the transaction (core/files.py), on SQLite and PostgreSQL, with each storage.

Sessions are the API's own: AppSession, connected as the API is (on PostgreSQL the app role under
row-level security, tests/core/scoped.py). References to files are rows of a test table that stands in
for the documents table. The rules, from the module doc: a file stored in a transaction that does not
commit is removed (rollback, close, savepoint rolled back); a file asked to be deleted is removed only
after the commit, and only if no row names it then; while another transaction is storing the same bytes
a removal keeps the file; whatever cannot be checked is kept. All of it is done when commit(),
rollback() or close() returns."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mobility.core import files
from mobility.core.db import create_sessionmaker as bare_sessionmaker
from mobility.core.scope import Scope, apply_to_database
from mobility.core.storage import FileStorage, StoredFile
from mobility.core.tenancy import ScopedSession
from tests.core.scoped import Db, PerBackend
from tests.support.storage import (
    add_reference,
    chunks_of,
    create_references_table,
    drop_reference,
    drop_references,
    new_namespace,
    references,
    stored_names,
)


@pytest.fixture
async def sessions(db: Db, per_backend: PerBackend, backend: str) -> async_sessionmaker:
    await per_backend.get("file_references", backend, lambda: create_references_table(db.engine))
    return db.app_sessionmaker


@pytest.fixture
def namespace() -> str:
    return new_namespace()


@pytest.fixture
def data() -> bytes:
    return b"%PDF-1.7\n" + secrets.token_bytes(5000) + b"\n%%EOF\n"


async def begin(sessions: async_sessionmaker) -> AsyncSession:
    session = sessions()
    await session.begin()
    await apply_to_database(session, Scope(tenant_id=uuid.uuid4(), actor_id=uuid.uuid4(), role="Admin"))
    return session


async def store(session: AsyncSession, storage: FileStorage, data: bytes, namespace: str) -> StoredFile:
    return await files.store(session, storage, chunks_of(data), references=references, namespace=namespace)


async def stored_and_referenced(sessions, storage: FileStorage, data: bytes, namespace: str) -> StoredFile:
    """A file stored by a committed transaction, with one row naming it."""
    session = await begin(sessions)
    try:
        stored = await store(session, storage, data, namespace)
        await add_reference(session, stored.key)
        await session.commit()
    finally:
        await session.close()
    return stored


async def test_a_committed_file_stays(
    sessions, file_storage: FileStorage, data: bytes, namespace: str
) -> None:
    stored = await stored_and_referenced(sessions, file_storage, data, namespace)
    assert await file_storage.exists(stored.key)
    assert stored_names(file_storage) == {stored.key}


@pytest.mark.parametrize("ending", ["rollback", "close", "error in a begin() block"])
async def test_a_file_stored_by_a_transaction_that_does_not_commit_is_removed(
    sessions, file_storage: FileStorage, data: bytes, namespace: str, ending: str
) -> None:
    session = await begin(sessions)
    stored = await store(session, file_storage, data, namespace)
    await add_reference(session, stored.key)
    assert await file_storage.exists(stored.key)  # stored for real, until the transaction ends
    if ending == "rollback":
        await session.rollback()
        assert not await file_storage.exists(stored.key)  # removed when rollback() returned
        await session.close()
    elif ending == "close":  # how the request's unit of work rolls back (core/deps.py)
        await session.close()
    else:
        await session.close()
        with pytest.raises(RuntimeError, match="later in the request"):
            async with sessions() as again, again.begin():
                stored = await store(again, file_storage, data, namespace)
                await add_reference(again, stored.key)
                raise RuntimeError("something failed later in the request")
    assert not await file_storage.exists(stored.key)
    assert stored_names(file_storage) == set()


async def test_a_file_is_deleted_only_after_the_commit(
    sessions, file_storage: FileStorage, data: bytes, namespace: str
) -> None:
    stored = await stored_and_referenced(sessions, file_storage, data, namespace)
    session = await begin(sessions)
    try:
        await drop_references(session, stored.key)
        await files.delete_after_commit(session, file_storage, stored.key, references=references)
        await session.flush()
        assert await file_storage.exists(stored.key)  # not before the commit
        await session.commit()
        assert not await file_storage.exists(stored.key)  # done when commit() returned
    finally:
        await session.close()
    assert stored_names(file_storage) == set()


async def test_a_deletion_rolled_back_keeps_the_file(
    sessions, file_storage: FileStorage, data: bytes, namespace: str
) -> None:
    stored = await stored_and_referenced(sessions, file_storage, data, namespace)
    for ending in ("rollback", "close"):
        session = await begin(sessions)
        await drop_references(session, stored.key)
        await files.delete_after_commit(session, file_storage, stored.key, references=references)
        if ending == "rollback":
            await session.rollback()
        await session.close()
        assert await file_storage.exists(stored.key), ending


async def test_a_file_shared_by_content_goes_with_its_last_reference(
    sessions, file_storage: FileStorage, data: bytes, namespace: str
) -> None:
    session = await begin(sessions)
    try:
        first = await store(session, file_storage, data, namespace)
        second = await store(session, file_storage, data, namespace)
        rows = [await add_reference(session, first.key), await add_reference(session, second.key)]
        await session.commit()
    finally:
        await session.close()
    assert first.key == second.key and not second.created

    for row, still_there in zip(rows, (True, False), strict=True):
        session = await begin(sessions)
        try:
            await drop_reference(session, row)
            await files.delete_after_commit(session, file_storage, first.key, references=references)
            await session.commit()
        finally:
            await session.close()
        assert await file_storage.exists(first.key) is still_there


async def test_a_rolled_back_upload_of_bytes_already_referenced_keeps_the_file(
    sessions, file_storage: FileStorage, data: bytes, namespace: str
) -> None:
    stored = await stored_and_referenced(sessions, file_storage, data, namespace)
    session = await begin(sessions)
    again = await store(session, file_storage, data, namespace)
    assert again.key == stored.key
    await session.rollback()
    await session.close()
    assert await file_storage.exists(stored.key)


async def test_savepoints(sessions, file_storage: FileStorage, namespace: str) -> None:
    kept, dropped_in_savepoint, deleted_in_savepoint = (secrets.token_bytes(300) for _ in range(3))
    old = await stored_and_referenced(sessions, file_storage, deleted_in_savepoint, namespace)
    asked: list[str] = []

    async def counted_references(session: AsyncSession, key: str) -> bool:
        asked.append(key)
        return await references(session, key)

    session = await begin(sessions)
    try:
        outer = await store(session, file_storage, kept, namespace)
        await add_reference(session, outer.key)
        savepoint = await session.begin_nested()
        inner = await store(session, file_storage, dropped_in_savepoint, namespace)
        await add_reference(session, inner.key)
        await drop_references(session, old.key)
        await files.delete_after_commit(session, file_storage, old.key, references=counted_references)
        await savepoint.rollback()
        assert await file_storage.exists(inner.key)  # removed when the whole transaction ends
        await session.commit()
    finally:
        await session.close()

    assert await file_storage.exists(outer.key)  # committed with its row
    assert not await file_storage.exists(inner.key)  # its row went with the savepoint
    assert await file_storage.exists(old.key)  # its deletion went with the savepoint
    assert asked == []  # not even looked at


async def test_a_savepoint_released_counts_as_the_transaction(
    sessions, file_storage: FileStorage, data: bytes, namespace: str
) -> None:
    stored = await stored_and_referenced(sessions, file_storage, data, namespace)
    session = await begin(sessions)
    try:
        async with session.begin_nested():
            await drop_references(session, stored.key)
            await files.delete_after_commit(session, file_storage, stored.key, references=references)
        await session.commit()
    finally:
        await session.close()
    assert not await file_storage.exists(stored.key)


async def test_a_file_that_cannot_be_checked_is_kept(
    sessions, file_storage: FileStorage, data: bytes, namespace: str, caplog
) -> None:
    async def unanswerable(session: AsyncSession, key: str) -> bool:
        raise ConnectionError("the database went away")

    session = await begin(sessions)
    stored = await files.store(
        session, file_storage, chunks_of(data), references=unanswerable, namespace=namespace
    )
    with caplog.at_level(logging.WARNING, logger="mobility.core.files"):
        await session.rollback()  # no error here: the request's own answer is what matters
    await session.close()
    assert await file_storage.exists(stored.key)  # an orphan, never a lost file
    assert f"stored file {stored.key} kept" in caplog.text


async def test_a_refused_file_leaves_nothing_and_the_transaction_usable(
    sessions, file_storage: FileStorage, data: bytes, namespace: str
) -> None:
    def refuse(path) -> None:
        assert path.read_bytes() == data  # the whole staged file is there to check
        raise ValueError("not a document")

    session = await begin(sessions)
    try:
        with pytest.raises(ValueError, match="not a document"):
            await files.store(
                session,
                file_storage,
                chunks_of(data),
                references=references,
                namespace=namespace,
                verify=refuse,
            )
        assert stored_names(file_storage) == set()
        other = await store(session, file_storage, b"another file", namespace)
        await add_reference(session, other.key)
        await session.commit()
    finally:
        await session.close()
    assert stored_names(file_storage) == {other.key}


async def test_a_session_class_without_the_lifecycle_refuses(db: Db, file_storage: FileStorage) -> None:
    async with bare_sessionmaker(db.engine, ScopedSession)() as session:
        with pytest.raises(RuntimeError, match="open sessions of AppSession"):
            await files.store(session, file_storage, chunks_of(b"x"), references=references)
        with pytest.raises(RuntimeError, match="open sessions of AppSession"):
            await files.delete_after_commit(
                session, file_storage, "sha256/00/" + "0" * 64, references=references
            )
    assert stored_names(file_storage) == set()


# --- concurrent transactions on the same bytes ----------------------------------------------------


async def test_a_rollback_keeps_a_file_another_transaction_is_storing(
    sessions, file_storage: FileStorage, data: bytes, namespace: str
) -> None:
    """Two requests upload the same scan; the second fails and rolls back while the first has not yet
    committed. The file must survive for the first one's row."""
    first = await begin(sessions)
    second = await begin(sessions)
    try:
        stored = await store(first, file_storage, data, namespace)
        await store(second, file_storage, data, namespace)
        await second.rollback()
        await add_reference(first, stored.key)
        await first.commit()
    finally:
        await second.close()
        await first.close()
    assert await file_storage.exists(stored.key)


async def test_a_deletion_keeps_a_file_a_new_upload_is_storing(
    sessions, file_storage: FileStorage, data: bytes, namespace: str
) -> None:
    """A document is deleted while someone uploads the same bytes again: the deletion commits first,
    the upload after. The file must survive for the new row."""
    old = await stored_and_referenced(sessions, file_storage, data, namespace)
    deleting = await begin(sessions)
    uploading = await begin(sessions)
    try:
        await drop_references(deleting, old.key)
        await files.delete_after_commit(deleting, file_storage, old.key, references=references)
        new = await store(uploading, file_storage, data, namespace)
        await deleting.commit()
        await add_reference(uploading, new.key)
        await uploading.commit()
    finally:
        await deleting.close()
        await uploading.close()
    assert await file_storage.exists(new.key)


async def test_an_upload_waits_for_a_removal_under_way(
    sessions, file_storage: FileStorage, data: bytes, namespace: str
) -> None:
    """The other order: a removal holds the key while it checks and deletes; an upload of the same
    bytes meanwhile waits, then stores them anew."""
    old = await stored_and_referenced(sessions, file_storage, data, namespace)
    checking = asyncio.Event()
    go_on = asyncio.Event()

    async def slow_references(session: AsyncSession, key: str) -> bool:
        checking.set()
        await go_on.wait()
        return await references(session, key)

    async def delete() -> None:
        session = await begin(sessions)
        try:
            await drop_references(session, old.key)
            await files.delete_after_commit(session, file_storage, old.key, references=slow_references)
            await session.commit()
        finally:
            await session.close()

    async def upload() -> StoredFile:
        session = await begin(sessions)
        try:
            stored = await store(session, file_storage, data, namespace)
            await add_reference(session, stored.key)
            await session.commit()
        finally:
            await session.close()
        return stored

    deleting = asyncio.create_task(delete())
    await checking.wait()  # the removal holds the key, and finds no row
    uploading = asyncio.create_task(upload())
    await asyncio.sleep(0.3)
    assert not uploading.done()  # waiting for the key
    go_on.set()
    await deleting
    new = await uploading
    assert new.created  # stored anew after the removal
    assert await file_storage.exists(new.key)


async def test_files_of_two_sessions_do_not_mix(sessions, file_storage: FileStorage, namespace: str) -> None:
    """One session's rollback removes its files only."""
    one, two = await begin(sessions), await begin(sessions)
    try:
        a = await store(one, file_storage, b"one's file", namespace)
        b = await store(two, file_storage, b"two's file", namespace)
        await add_reference(two, b.key)
        await one.rollback()
        await two.commit()
    finally:
        await one.close()
        await two.close()
    assert stored_names(file_storage) == {b.key}
    assert not await file_storage.exists(a.key)


async def chunks_then_fail(data: bytes) -> AsyncIterator[bytes]:
    yield data[:100]
    raise ConnectionResetError("the client went away")


async def test_an_interrupted_upload_leaves_nothing_and_the_session_usable(
    sessions, file_storage: FileStorage, data: bytes, namespace: str
) -> None:
    session = await begin(sessions)
    try:
        with pytest.raises(ConnectionResetError):
            await files.store(
                session, file_storage, chunks_then_fail(data), references=references, namespace=namespace
            )
        assert stored_names(file_storage) == set()
        await session.commit()
    finally:
        await session.close()
    assert stored_names(file_storage) == set()
