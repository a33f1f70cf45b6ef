"""The one place that knows how to reach the database: metadata, engines and sessions."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import MetaData, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql.util import find_tables

from mobility.core.config import Settings, get_settings
from mobility.core.errors import Conflict, ServiceUnavailable

logger = logging.getLogger(__name__)

# Constraint names as Prisma creates them, so a database made by the legacy Prisma app, by our
# migrations and by `prisma migrate` agree on every name.
NAMING_CONVENTION = {
    "pk": "%(table_name)s_pkey",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ix": "%(table_name)s_%(column_0_N_name)s_idx",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "ck": "%(table_name)s_%(constraint_name)s_check",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # SQLite ignores foreign keys (and so ON DELETE CASCADE) unless asked, per connection.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _begin_before_savepoint(connection: Any, _name: str) -> None:
    # The SQLite driver (pysqlite's legacy transaction control) sends BEGIN only before an INSERT,
    # UPDATE or DELETE: a SAVEPOINT sent before any of them began a transaction of its own, and its
    # RELEASE committed it, whatever the unit of work around it did next (an API import on SQLite kept
    # its rows though the request failed). BEGIN first makes the savepoint part of the transaction;
    # the locks are the ones the savepoint took anyway (a deferred transaction).
    if not connection.connection.driver_connection.in_transaction:
        connection.exec_driver_sql("BEGIN")


def create_engine(url: str | None = None, settings: Settings | None = None, **kwargs) -> AsyncEngine:
    settings = settings or get_settings()
    url = url or settings.effective_database_url
    if is_sqlite(url):
        path = make_url(url).database
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
    # No pre-ping on PostgreSQL: it cost three round trips (BEGIN, ping, ROLLBACK) on every request.
    # A connection the server has closed (a restart, pg_terminate_backend) is known to be closed as
    # soon as the event loop sees its socket end: `_discard_closed` swaps it at checkout, for free.
    # Only a connection cut silently (a network drop) still fails its first request.
    pooling = {"pool_recycle": 1800} if not is_sqlite(url) else {"pool_pre_ping": True}
    if not is_sqlite(url):
        # An unreachable server fails a request within this, rather than asyncpg's 60 s.
        kwargs["connect_args"] = {
            "timeout": settings.database_connect_timeout,
            "server_settings": server_settings(settings),
            **kwargs.get("connect_args", {}),
        }
    engine = create_async_engine(url, echo=settings.sql_echo, **pooling, **kwargs)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "savepoint", _begin_before_savepoint)
    else:
        event.listen(engine.sync_engine, "checkout", _discard_closed)
    return engine


def server_settings(settings: Settings) -> dict[str, str]:
    """What every PostgreSQL connection of the app starts with, beside the server's defaults: as
    startup parameters, they hold for the connection's life (a pool's RESET ALL returns to them) and
    cost no statement per request. The name search's similarity threshold: set per transaction
    instead, it was one more round trip on every search."""
    return {"pg_trgm.word_similarity_threshold": str(settings.name_search_similarity)}


def _discard_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    # SQLAlchemy's documented hook: DisconnectionError at checkout makes the pool retry with a new one.
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def install_sqlite_row_locks(session_class: type[Session]) -> None:
    """`SELECT ... FOR UPDATE` holds on SQLite too, as the whole database's write lock.

    SQLite has no row locks and SQLAlchemy leaves FOR UPDATE out there, so two units of work that
    read-then-write one record (a candidate's document versions, a setting, an invitation) both read
    before either wrote, and the later one wrote over what it never saw. Before such a SELECT the
    session writes nothing to the table it reads (`UPDATE ... WHERE 0`): that opens the transaction
    as a writer, which SQLite allows one connection at a time, so the other unit waits (busy_timeout)
    until this one commits and then reads what it wrote. PostgreSQL keeps its row locks."""

    @event.listens_for(session_class, "do_orm_execute")
    def _take_write_lock(state: Any) -> None:
        if not state.is_select or state.statement._for_update_arg is None:
            return
        connection = state.session.connection()
        if connection.dialect.name != "sqlite":
            return
        # Any table will do: SQLite's write lock is the whole database's.
        tables = find_tables(state.statement, include_joins=True)
        if not tables:
            raise RuntimeError("SELECT ... FOR UPDATE on SQLite without a table to write to")
        quoted = connection.dialect.identifier_preparer.quote(tables[0].name)
        connection.exec_driver_sql(f"UPDATE {quoted} SET rowid = rowid WHERE 0")


def create_sessionmaker(
    engine: AsyncEngine, session_class: type[Session]
) -> async_sessionmaker[AsyncSession]:
    """Sessions of `session_class` (the application's: mobility.app_session) on `engine`."""
    return async_sessionmaker(
        engine, sync_session_class=session_class, expire_on_commit=False, autoflush=False
    )


# --- the request's read connection (PostgreSQL, API requests) --------------------------------------
#
# A request that only reads (most of them: every GET) need not pay for SQLAlchemy's unit of work at
# all. Its authentication and its `core.reads` statements run on a plain asyncpg connection from a
# pool of the API's own, in a READ ONLY transaction, until the request's ORM session begins a
# transaction; from then on they go to the ORM's connection, so they see the request's own writes.
# Both connections carry the same row-level-security settings (`core.scope.apply_to_database`, and
# the ORM's `after_begin`). Measured in bench/auth.py: the ORM session's begin/connection/commit/close
# cost ~0.4 ms of Python per request, against ~0.1 ms here.
#
# The next request's transaction begins when this one ends: the connection goes back to the pool
# after `COMMIT; BEGIN READ ONLY`, one round trip, so a request pays none for its BEGIN (each round
# trip costs ~20 us of the API's CPU and as much of PostgreSQL's, bench/auth.py). A transaction that
# has run no statement holds no snapshot, no lock and no transaction id: it holds back neither vacuum
# nor CREATE INDEX CONCURRENTLY, and blocks no DDL. It does fix `now()`, the transaction's start
# time, to when the previous request ended, so `core.reads` refuses statements that use it.
# (In pg_stat_activity these connections show as "idle in transaction", with no backend_xmin.)

READ_POOL = "mobility.read_pool"  # session.info: the pool of the request's read connection, if any
_READ_CONNECTION = "mobility.read_connection"  # session.info: that connection, once opened
_NEXT_TRANSACTION = "COMMIT; BEGIN READ ONLY"


class _ReadConnection(asyncpg.Connection):
    # (Called through the pool's proxy, which passes method calls on but not attribute writes.)
    _begun = False  # in a READ ONLY transaction that has run nothing yet

    async def open_transaction(self, settings: str | None) -> None:
        """Ready for a request: in a READ ONLY transaction, with these settings (SQL) if any."""
        statements = [] if self._begun and self.is_in_transaction() else ["BEGIN READ ONLY"]
        self._begun = False
        if settings:
            statements.append(settings)
        if statements:
            await self.execute("; ".join(statements))

    async def begin_next_transaction(self) -> None:
        """Ends the request's transaction (it only read) and begins the next request's."""
        self._begun = False
        await self.execute(_NEXT_TRANSACTION)
        self._begun = True

    def is_begun(self) -> bool:
        return self._begun and self.is_in_transaction()

    def get_reset_query(self) -> str:
        # The rest of asyncpg's default reset (RESET ALL, UNLISTEN, CLOSE ALL, advisory unlocks)
        # undoes things these connections never do: the tenant settings are transaction-local.
        return ""

    async def reset(self, *, timeout: float | None = None) -> None:
        # The pool resets a connection it takes back: asyncpg's reset would roll the next request's
        # transaction back. Anything else (a connection given back mid-request) is rolled back.
        if self.is_begun():
            return
        self._begun = False
        await super().reset(timeout=timeout)


class ReadPool(asyncpg.Pool):
    """asyncpg's pool of the read connections, handed out in turn: requests waiting for one get it in
    the order they asked (`acquire_in_turn`, `release_in_turn`).

    asyncpg's own queue (asyncio.Queue) wakes the first waiter when a connection comes back, but a
    request that asks before that waiter runs takes the connection, and the woken one queues again at
    the back. Under load a few requests lost many turns: the API's p99 was three to four times its
    median, a bare endpoint's under twice (bench/candidates.py). asyncio.Semaphore hands a released
    turn straight to its first waiter, and with as many turns as connections the pool itself never
    makes anyone wait."""

    def __init__(self, *args: Any, max_size: int, **kwargs: Any) -> None:
        super().__init__(*args, max_size=max_size, **kwargs)
        self._turns = asyncio.Semaphore(max_size)

    async def acquire_in_turn(self) -> Any:
        await self._turns.acquire()
        try:
            return await self.acquire()
        except BaseException:
            self._turns.release()
            raise

    async def release_in_turn(self, connection: Any) -> None:
        try:
            await self.release(connection)
        finally:
            self._turns.release()


async def _json_codecs(connection: asyncpg.Connection) -> None:
    # As SQLAlchemy's asyncpg dialect does: json and jsonb come back decoded.
    for name in ("json", "jsonb"):
        await connection.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_read_pool(url: str, settings: Settings) -> ReadPool | None:
    """The pool of the requests' read connections; None on SQLite (everything goes through the ORM)."""
    if is_sqlite(url):
        return None
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return await ReadPool(
        dsn,
        # Required by asyncpg.Pool's constructor (create_pool fills them in): create_pool's defaults.
        loop=None,
        max_queries=50_000,
        record_class=asyncpg.Record,
        # None at start: the app starts (and /health answers 503) while the database is down.
        min_size=0,
        max_size=settings.read_pool_size,
        max_inactive_connection_lifetime=300,
        init=_json_codecs,
        connection_class=_ReadConnection,
        timeout=settings.database_connect_timeout,
        server_settings={
            **server_settings(settings),
            # The hot path's statements are lookups by key, prepared once per connection. Left to
            # choose, PostgreSQL re-planned them on every execution (custom plans: ~1-4 ms of planning
            # each with the row-level-security policies, for ~0.1 ms of execution).
            "plan_cache_mode": "force_generic_plan",
            # Idle connections wait in an empty transaction (above), which a server-wide timeout
            # for idle transactions would end by closing the connection under the next request.
            "idle_in_transaction_session_timeout": "0",
        },
    )


async def driver_connection(session: AsyncSession, settings: Callable[[], str] | None = None) -> Any:
    """The asyncpg connection the session's hot-path statements go to (see above): the ORM's own
    when it has begun a transaction, else the request's read connection. When that opens, its
    transaction gets the SQL of `settings` (this transaction's settings, asked only then), in one
    round trip with the BEGIN if the connection has not begun one already."""
    sync = session.sync_session
    pool = sync.info.get(READ_POOL)
    if pool is None or sync.in_transaction():
        return await _orm_driver_connection(session)
    connection = sync.info.get(_READ_CONNECTION)
    if connection is None:
        connection = await pool.acquire_in_turn()
        sync.info[_READ_CONNECTION] = connection  # released by release_read_connection, whatever follows
        await connection.open_transaction(settings() if settings is not None else None)
    elif _closed_under_us(connection):
        # Its transaction (and the request's settings) went with it: not silently swapped.
        raise asyncpg.ConnectionDoesNotExistError("the request's read connection was closed")
    return connection


def _closed_under_us(connection: Any) -> bool:
    """The pool's proxy of a connection the server closed while a request held it: asyncpg then takes
    the connection's place in the pool back by itself (a new connection will fill it) and detaches the
    proxy (its `_con`, the check `Pool.release` makes too), so the request's handle leads nowhere."""
    return connection._con is None or connection.is_closed()


def read_connection(session: AsyncSession) -> Any:
    """The request's read connection if it is open, else None."""
    return session.sync_session.info.get(_READ_CONNECTION)


async def release_read_connection(session: AsyncSession) -> None:
    """Ends the read connection's transaction (it only read), begins the next request's, and gives
    the connection back."""
    info = session.sync_session.info
    connection = info.pop(_READ_CONNECTION, None)
    if connection is None:
        return
    pool = info[READ_POOL]
    try:
        if not _closed_under_us(connection):
            await connection.begin_next_transaction()
    except Exception as exc:  # the answer is out already; the connection only read
        if not is_unavailable(exc):
            logger.warning("a read connection failed to end its transaction: %r", exc)
    finally:
        # Given back even when the request's task is cancelled meanwhile: else the connection and its
        # turn were lost to every later request.
        try:
            # Rolls back whatever is still open (a failed COMMIT), terminates a closed connection, and
            # does nothing for one the pool took back already (closed under the request).
            await pool.release_in_turn(connection)
        except Exception as exc:  # asyncpg terminated the connection: its place in the pool is free
            if not is_unavailable(exc):
                logger.warning("a read connection could not be reset and was closed: %r", exc)


async def _orm_driver_connection(session: AsyncSession) -> Any:
    """The driver connection under the ORM session, inside its transaction. SQLAlchemy's asyncpg
    adapter sends BEGIN lazily, with the first statement that goes through it; it is started here when
    none has, so the session's COMMIT or ROLLBACK ends it. (Private attributes of the adapter: pinned to
    SQLAlchemy 2.x in pyproject.toml and covered by tests/core/test_reads.py.)"""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    adapted = raw.dbapi_connection
    if adapted._transaction is None:
        await adapted._start_transaction()
    return raw.driver_connection


async def lock_for_transaction(session: AsyncSession, name: str) -> None:
    """Make the transactions that call this with the same `name` take turns until each ends: for a rule
    about several rows that no unique key can hold ("a tenant keeps an Admin"), where two requests
    checking at once would each see the other's row still there. PostgreSQL: an advisory lock of the
    transaction; SQLite has a single writer already."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"), {"name": name}
        )


@asynccontextmanager
async def transaction(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits when the block ends cleanly, rolls back on any error."""
    async with sessionmaker() as session, session.begin():
        yield session


# --- when the database fails under a request ------------------------------------------------------
#
# Two kinds of failure are the database's state, not a bug, and answered as such (core/deps.py):
# - unavailable (503 + Retry-After): the server is down, restarting, refusing connections, or closed
#   the request's connection (a restart, pg_terminate_backend, a network cut). Nothing of the request
#   was committed; the next request gets a fresh connection.
# - a concurrent change (409): a unique key taken by a concurrent request that passed the same
#   pre-check, a deadlock, a serialization failure, a row deleted under an UPDATE. Trying again sees
#   the other request's result.

RETRY_AFTER_SECONDS = 2


class DatabaseUnavailable(ServiceUnavailable):
    code, title = "database_unavailable", "The database is not available"

    def __init__(self) -> None:
        super().__init__("The database cannot be reached just now; nothing was changed. Try again shortly.")

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(RETRY_AFTER_SECONDS)}


class ConcurrentChange(Conflict):
    code, title = "concurrent_change", "Changed concurrently"

    def __init__(self) -> None:
        super().__init__(
            "Another request changed the same data at the same time; nothing was changed. Try again."
        )


# SQLSTATE classes and codes: 08 connection exception, 57 operator intervention (admin shutdown,
# crash shutdown, cannot connect now: starting up or shutting down), 53300 too many connections.
_UNAVAILABLE_STATES = ("08", "57")
_UNAVAILABLE_CODES = frozenset({"53300"})
_CONCURRENT_CODES = frozenset({"23505", "40001", "40P01"})


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (SQLAlchemy's `orig`, the driver adapter's cause), a few deep."""
    seen: list[BaseException] = []
    while exc is not None and len(seen) < 6 and exc not in seen:
        seen.append(exc)
        exc = getattr(exc, "orig", None) or exc.__cause__
    return seen


def _sqlstate(exc: BaseException) -> str | None:
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return code if isinstance(code, str) else None


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be reached or dropped the connection."""
    for cause in _causes(exc):
        if isinstance(cause, sa_exc.DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(
            cause,
            ConnectionError  # refused, reset, broken pipe
            | TimeoutError  # connecting took longer than database_connect_timeout
            | socket.gaierror  # the host name does not resolve
            | asyncpg.InterfaceError  # "connection is closed", a protocol left mid-operation
            | asyncpg.InternalClientError  # "cannot switch to state ...": the protocol of a dead connection
            | asyncpg.PostgresConnectionError
            | sa_exc.DisconnectionError
            | sa_exc.TimeoutError,  # no pooled connection free in time: overloaded, as good as down
        ):
            return True
        if type(cause) is OSError:  # asyncpg's "Multiple exceptions": every address of the host refused
            return True
        code = _sqlstate(cause)
        if code and (code[:2] in _UNAVAILABLE_STATES or code in _UNAVAILABLE_CODES):
            return True
    return False


def is_concurrent_change(exc: BaseException) -> bool:
    """Whether `exc` is a write that met a concurrent twin (see above)."""
    return any(
        isinstance(cause, StaleDataError) or _sqlstate(cause) in _CONCURRENT_CODES for cause in _causes(exc)
    )


class OutageLog:
    """One log line when the database becomes unavailable, and one when it answers again.

    Requests refused meanwhile log nothing each (a restart would otherwise write a stack trace per
    request). The first refusal starts a probe that connects once a second until the database answers.
    """

    PROBE_INTERVAL = 1.0
    # After the database is back, pooled connections that died with it still fail one by one: refusals
    # this soon after recovery belong to the episode that just ended (probed again, not logged again).
    SETTLING = 30.0

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._probe: asyncio.Task | None = None
        self._since = 0.0
        self._back_at: float | None = None
        self.refused = 0  # requests answered 503 in the current (or last) episode

    @property
    def ongoing(self) -> bool:
        return self._probe is not None

    def report(self, exc: BaseException) -> None:
        self.refused += 1
        if self._probe is not None:
            return
        now = time.monotonic()
        settling = self._back_at is not None and now - self._back_at < self.SETTLING
        self._since, self.refused = now, 1
        if not settling:
            logger.warning("database unavailable (%s); answering 503 until it is back", _summary(exc))
        self._probe = asyncio.get_running_loop().create_task(
            self._wait_until_back(quiet=settling, cause=_summary(exc))
        )

    async def _wait_until_back(self, *, quiet: bool = False, cause: str = "") -> None:
        # Soon after an episode (quiet), a fresh connection is tried at once: a restart is often over
        # within a probe interval, and waiting one would take a new outage for stale connections.
        first = quiet
        while True:
            if not first:
                await asyncio.sleep(self.PROBE_INTERVAL)
            first = False
            try:
                async with self._engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
            except Exception:  # still down: the one line was logged
                if quiet:
                    # A fresh connection fails too: not pooled connections left over from the last
                    # episode but a new outage, which gets its own line.
                    quiet = False
                    logger.warning("database unavailable (%s); answering 503 until it is back", cause)
                continue
            break
        if not quiet:
            logger.warning(
                "database available again after %.1f s (%d request(s) answered 503)",
                time.monotonic() - self._since,
                self.refused,
            )
        self._back_at = time.monotonic()
        self._probe = None

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
            self._probe = None


def _summary(exc: BaseException) -> str:
    innermost = _causes(exc)[-1]
    return f"{type(innermost).__name__}: {str(innermost).strip().splitlines()[0] if str(innermost).strip() else ''}"
