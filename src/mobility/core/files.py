"""Stored files follow the database transaction that stored or dropped them.

A document is two things: its row and its file. They must live and die together, but a file store has
no transactions. So a service never removes a file itself; it tells the session, and the session acts
when its transaction has ended:

- `await files.store(session, storage, chunks, references=..., namespace=..., verify=...)` stores an
  upload (core/storage.py) and returns its key, sha256 and size for the row. If the transaction then
  rolls back (an error later in the request, a failed commit, the session closed without commit), the
  file is removed again: no orphaned file.
- `files.delete_after_commit(session, storage, key, references=...)` (after deleting the row that names
  `key`): the file is removed once the transaction has committed, never before: no lost file if it
  rolls back. A savepoint rolled back drops the deletions asked for inside it, and the files stored
  inside it are removed at the end however the outer transaction ends.

Files are stored by content, so one file may be named by several rows (the same scan uploaded for two
documents). A file is removed only when nothing refers to it any more: the caller says how to tell,
with `references`, an async callable `(session, key) -> bool` that answers whether any row still names
`key`. It is asked in a fresh transaction of its own, after the end of the caller's (so it sees what
was committed, the caller's rows included), under the system scope (it sees every row of every tenant
and role: a reference that the caller's role cannot see still counts). The documents service's
(documents/service.py `document_references`):

    async def document_references(session: AsyncSession, key: str) -> bool:
        return bool(await session.scalar(select(exists().where(CandidateDocument.storage_key == key))))

Concurrent uploads of the same bytes, and a removal racing a new upload of them, are made to take turns
per key: a transaction that stores a file holds a shared lock on its key from just before the file
appears until the transaction ends; a removal takes the lock exclusively, without waiting, and keeps the
file if it cannot (someone is storing the same bytes right now). On PostgreSQL these are advisory locks
of the transaction; on SQLite, which serves one host and by default one process, the same kept by the
process (several worker processes on one SQLite database are not covered: an upload racing the
removal of the same bytes in another process could lose its file). Whatever goes wrong while removing (the database or the store unreachable), the
file is kept and a warning logged: a failure leaves an orphaned file (disk space), never a lost one.

The removals run inside the session's commit, rollback or close (SQLAlchemy's session events, awaited
there through the greenlet the async session runs its events in): once `commit()` has returned, the
files it released are gone. Installed explicitly on the application's session class
(`install_file_lifecycle`, mobility.app_session); a session class without it refuses to store or
delete a file, rather than leave files that would never be removed.

Why `after_transaction_end` and not only `after_rollback`/`after_soft_rollback`: `close()` with a
transaction open (how the request's unit of work, core/deps.py, rolls back) fires neither of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.util import await_only
from sqlalchemy.util.concurrency import in_greenlet

from mobility.core.scope import Scope, apply_to_database, get_scope
from mobility.core.storage import FileStorage, StoredFile, check_key, content_key

logger = logging.getLogger(__name__)

References = Callable[[AsyncSession, str], Awaitable[bool]]
"""Whether any row still names the stored file `key` (see the module doc)."""

_WORK = "mobility.files"  # session.info: the files of the transaction in progress


@dataclass(eq=False)
class _File:
    storage: FileStorage
    key: str
    references: References
    transaction: SessionTransaction  # the (possibly nested) transaction it was asked in
    stored: bool  # stored by this transaction (else: to delete after commit)
    abandoned: bool = False  # stored inside a savepoint that was rolled back


@dataclass(eq=False)
class _Work:
    engine: AsyncEngine
    files: list[_File] = field(default_factory=list)
    holds: list[tuple[str, str]] = field(default_factory=list)  # SQLite: keys this transaction holds
    committed: bool = False


def install_file_lifecycle(session_class: type[Session]) -> None:
    """Make files follow the transactions of `session_class` sessions (the module doc). Called once, on
    the application's session class (mobility.app_session)."""
    session_class.files_follow_transactions = True  # type: ignore[attr-defined]
    event.listen(session_class, "after_commit", _after_commit)
    event.listen(session_class, "after_soft_rollback", _after_soft_rollback)
    event.listen(session_class, "after_transaction_end", _after_transaction_end)


async def store(
    session: AsyncSession,
    storage: FileStorage,
    chunks: AsyncIterable[bytes],
    *,
    references: References,
    namespace: str | None = None,
    verify: Callable[[Path], Any] | None = None,
) -> StoredFile:
    """Store `chunks` (core/storage.py) as part of the session's transaction: removed again if it does
    not commit. `verify(path)` (e.g. core.uploads.UploadCheck.inspect) looks at the complete staged file
    in a worker thread before it becomes visible, and may refuse it by raising. An error at any step
    (the stream failing half-way, a check refusing) leaves no file behind."""
    work = await _work_of(session)
    staged = await storage.stage(chunks)
    try:
        if verify is not None:
            await anyio.to_thread.run_sync(verify, staged.path)
        key = content_key(staged.sha256, namespace)
        await _hold(session, work, key)
        # Before the file appears: whatever happens from here, the end of the transaction looks at it.
        work.files.append(_File(storage, key, references, _current_transaction(session), stored=True))
        return await storage.commit(staged, namespace=namespace)
    finally:
        staged.discard()


async def delete_after_commit(
    session: AsyncSession, storage: FileStorage, key: str, *, references: References
) -> None:
    """Remove the stored file `key` once the session's transaction has committed, if nothing refers to
    it then (the module doc); not at all if the transaction rolls back."""
    check_key(key)
    work = await _work_of(session)
    work.files.append(_File(storage, key, references, _current_transaction(session), stored=False))


async def _work_of(session: AsyncSession) -> _Work:
    sync = session.sync_session
    if not getattr(type(sync), "files_follow_transactions", False):
        raise RuntimeError(
            f"{type(sync).__name__} does not make files follow its transactions: open sessions of AppSession."
        )
    await session.connection()  # in a transaction from here: its end is what the files wait for
    work = sync.info.get(_WORK)
    if work is None:
        work = sync.info[_WORK] = _Work(engine=session.bind)
    return work


def _current_transaction(session: AsyncSession) -> SessionTransaction:
    sync = session.sync_session
    transaction = sync.get_nested_transaction() or sync.get_transaction()
    assert transaction is not None  # _work_of began one
    return transaction


# --- the lock per key ------------------------------------------------------------------------------

# SQLite: (database, key) -> transactions of this process that hold the key, and the removals under way
# (each with an event set when it ends). One event loop's tasks share them: no thread, no await between
# a look and a change.
_HELD: Counter[tuple[str, str]] = Counter()
_REMOVING: dict[tuple[str, str], asyncio.Event] = {}


def _lock_name(key: str) -> str:
    return f"mobility.file:{key}"


def _database_of(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=True)


async def _hold(session: AsyncSession, work: _Work, key: str) -> None:
    """Hold `key` (shared) until the session's transaction ends; waits for a removal of it under way."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock_shared(hashtextextended(:name, 0))"), {"name": _lock_name(key)}
        )
        return
    held = (_database_of(work.engine), key)
    while (removal := _REMOVING.get(held)) is not None:
        await removal.wait()
    _HELD[held] += 1
    work.holds.append(held)


@asynccontextmanager
async def _exclusively(session: AsyncSession, engine: AsyncEngine, key: str) -> AsyncIterator[bool]:
    """Take `key` for a removal, without waiting: False if a transaction storing it is under way. Held
    until the block ends (PostgreSQL: until the transaction the block is in ends)."""
    if session.bind.dialect.name == "postgresql":
        yield bool(
            await session.scalar(
                text("SELECT pg_try_advisory_xact_lock(hashtextextended(:name, 0))"),
                {"name": _lock_name(key)},
            )
        )
        return
    held = (_database_of(engine), key)
    if _HELD[held] > 0 or held in _REMOVING:
        yield False
        return
    _REMOVING[held] = removal = asyncio.Event()
    try:
        yield True
    finally:
        del _REMOVING[held]
        removal.set()


def _release_holds(work: _Work) -> None:
    for held in work.holds:
        _HELD[held] -= 1
        if _HELD[held] <= 0:
            del _HELD[held]
    work.holds.clear()


# --- the session events ---------------------------------------------------------------------------


def _after_commit(session: Session) -> None:
    work = session.info.get(_WORK)
    if work is not None:
        work.committed = True


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    """A savepoint rolled back: what was asked inside it is undone (the outermost transaction's end is
    `_after_transaction_end`'s, which runs before this for it)."""
    work = session.info.get(_WORK)
    if work is None or previous.parent is None:
        return
    kept = []
    for file in work.files:
        if _within(file.transaction, previous):
            if not file.stored:
                continue  # a deletion asked inside the savepoint: its row is back
            file.abandoned = True  # stored for a row that is gone: removed at the end, whatever it is
        kept.append(file)
    work.files = kept


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return  # a savepoint: _after_soft_rollback says what its end means
    work: _Work | None = session.info.pop(_WORK, None)
    if work is None:
        return
    _release_holds(work)  # before the removals below, which would see this transaction's own holds
    if work.committed:
        doomed = [file for file in work.files if not file.stored or file.abandoned]
    else:
        doomed = [file for file in work.files if file.stored]
    if not doomed:
        return
    if not in_greenlet():
        logger.warning(
            "%d stored file(s) kept: the session ended outside an async session's greenlet", len(doomed)
        )
        return
    await_only(_remove_unreferenced(work.engine, type(session), get_scope(session), doomed))


async def _remove_unreferenced(
    engine: AsyncEngine, session_class: type[Session], scope: Scope | None, doomed: list[_File]
) -> None:
    seen: set[tuple[int, str]] = set()
    for file in doomed:
        if (id(file.storage), file.key) in seen:
            continue
        seen.add((id(file.storage), file.key))
        try:
            await _remove_if_unreferenced(engine, session_class, scope, file)
        except Exception:
            logger.warning("stored file %s kept: it could not be checked or removed", file.key, exc_info=True)


async def _remove_if_unreferenced(
    engine: AsyncEngine, session_class: type[Session], scope: Scope | None, file: _File
) -> None:
    system = Scope.for_system(
        actor_id=scope.actor_id if scope else None, tenant_id=scope.tenant_id if scope else None
    )
    async with (
        AsyncSession(
            engine, sync_session_class=session_class, expire_on_commit=False, autoflush=False
        ) as session,
        session.begin(),
    ):
        await apply_to_database(session, system)
        async with _exclusively(session, engine, file.key) as taken:
            if not taken:
                logger.info("stored file %s kept: a transaction is storing the same bytes", file.key)
                return
            if await file.references(session, file.key):
                return
            # Under the lock: no transaction can make the file appear again until this one ends.
            await file.storage.delete(file.key)
