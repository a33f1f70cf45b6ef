"""Running the Alembic revisions from code (CLI, tests, benchmarks) with the project's configuration.

Also what the CLI needs around them: where a database stands (`status`), guarded upgrades and
downgrades, and `adopt`, which checks that an existing legacy database has exactly the shape of
`mobility.ops.legacy_schema` and stamps the baseline revision without running it.

The revision history is linear (one head, tested), so "above" and "below" are positions in one list.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Enum, inspect, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import Column, DefaultClause, ForeignKeyConstraint, Index, Table, UniqueConstraint

from mobility.core.config import Settings, get_settings
from mobility.core.db import create_engine
from mobility.ops.legacy_schema import LEGACY_TABLES, legacy_metadata

PROJECT_ROOT = Path(__file__).resolve().parents[3]
ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
BASELINE = "0000"
VERSION_TABLE = "alembic_version"

T = TypeVar("T")


class MigrationError(Exception):
    """An expected failure, with a one-line message for the user."""


class NotAdoptable(MigrationError):
    """The database differs from the legacy shape; `differences` has one line per difference."""

    def __init__(self, differences: list[str], notes: list[str] | None = None) -> None:
        super().__init__(f"the database does not have the legacy shape ({len(differences)} differences)")
        self.differences = differences
        self.notes = notes or []


def alembic_config(
    database_url: str | None = None, *, quiet: bool = True, lock_timeout: str | None = None
) -> Config:
    """Alembic's configuration for `database_url` (default: the configured database)."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # `%` would be read as interpolation by configparser.
    config.set_main_option(
        "sqlalchemy.url", (database_url or get_settings().effective_database_url).replace("%", "%%")
    )
    config.attributes["configure_logging"] = not quiet
    if lock_timeout:
        config.attributes["lock_timeout"] = lock_timeout
    return config


def upgrade(
    database_url: str | None = None,
    revision: str = "head",
    *,
    lock_timeout: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> None:
    with _reporting(progress):
        command.upgrade(alembic_config(database_url, lock_timeout=lock_timeout), revision)


def downgrade(
    database_url: str | None,
    revision: str,
    *,
    lock_timeout: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> None:
    with _reporting(progress):
        command.downgrade(alembic_config(database_url, lock_timeout=lock_timeout), revision)


# --- revisions -------------------------------------------------------------------------------------


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def ordered_revisions() -> list[Script]:
    """Every revision, oldest first."""
    return list(reversed(list(script_directory().walk_revisions())))


def head_revision() -> str:
    head = script_directory().get_current_head()
    if head is None:
        raise MigrationError("the migrations directory has no revisions")
    return head


def resolve_revision(revision: str) -> str | None:
    """A full revision id for `revision` ("head", "base", an id or a unique prefix); None for base."""
    if revision == "base":
        return None
    if revision == "head":
        return head_revision()
    known = [script.revision for script in ordered_revisions()]
    matches = [rev for rev in known if rev == revision] or [rev for rev in known if rev.startswith(revision)]
    if len(matches) != 1:
        problem = "unknown" if not matches else "ambiguous"
        raise MigrationError(
            f"{problem} revision {revision!r}; known revisions: {', '.join(known)} (or head, base)"
        )
    return matches[0]


def describe(revision: str | None) -> str:
    """`0003 (Step 3: users get ...)`; `base (no revision)` for None."""
    if revision is None:
        return "base (no revision)"
    try:
        script = script_directory().get_revision(revision)
    except CommandError:
        script = None
    return f"{revision} ({summary(script)})" if script is not None and script.doc else revision


def summary(script: Script) -> str:
    """The revision's docstring summary on one line."""
    return " ".join((script.doc or "").split())


def position(revision: str | None) -> int:
    """Index of `revision` in the history; -1 for base. MigrationError for one this code does not know."""
    if revision is None:
        return -1
    for index, script in enumerate(ordered_revisions()):
        if script.revision == revision:
            return index
    raise MigrationError(
        f"the database is at revision {revision}, which this code does not know (is the code older than the database?)"
    )


def between(lower: str | None, upper: str | None) -> list[Script]:
    """The revisions above `lower` up to and including `upper`, oldest first."""
    start, end = position(lower), position(upper)
    return ordered_revisions()[start + 1 : end + 1]


@contextmanager
def _reporting(progress: Callable[[str], None] | None) -> Iterator[None]:
    """Hands Alembic's "Running upgrade 0001 -> 0002, ..." lines to `progress` while migrating."""
    if progress is None:
        yield
        return

    class _Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if message.startswith("Running "):
                progress(message)

    logger = logging.getLogger("alembic.runtime.migration")
    handler, level = _Handler(), logger.level
    logger.addHandler(handler)
    if not logger.isEnabledFor(logging.INFO):
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# --- looking at a database -------------------------------------------------------------------------


def run_on_connection(
    database_url: str,
    work: Callable[[Connection], T],
    *,
    settings: Settings | None = None,
    write: bool = False,
) -> T:
    """Runs `work(connection)` on a synchronous view of an async connection; with `write`, in one
    transaction committed at the end (rolled back if `work` raises).

    A database that cannot be reached (refused, unknown database or role, timeout) is a MigrationError.
    """

    async def _run() -> T:
        connect_args = {"timeout": 10} if make_url(database_url).get_backend_name() == "postgresql" else {}
        engine = create_engine(
            database_url, settings=settings, poolclass=pool.NullPool, connect_args=connect_args
        )
        try:
            try:
                connection = await engine.connect()
            except (OSError, TimeoutError, DBAPIError) as exc:
                shown = make_url(database_url).render_as_string(hide_password=True)
                raise MigrationError(f"cannot reach the database {shown}: {_first_line(exc)}") from exc
            try:
                if write:
                    async with connection.begin():
                        return await connection.run_sync(work)
                return await connection.run_sync(work)
            finally:
                await connection.close()
        finally:
            await engine.dispose()

    return asyncio.run(_run())


def _first_line(exc: BaseException) -> str:
    text = str(exc.orig) if isinstance(exc, DBAPIError) and exc.orig is not None else str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def current_revision(database_url: str, *, settings: Settings | None = None) -> str | None:
    return run_on_connection(database_url, _current, settings=settings)


@dataclass
class Status:
    current: str | None
    head: str
    pending: list[Script]
    table_count: int
    # Legacy tables but no revision: `db adopt` is the next step, not `db upgrade`.
    legacy_unstamped: bool


def _status(connection: Connection) -> Status:
    current = _current(connection)
    tables = set(inspect(connection).get_table_names()) - {VERSION_TABLE}
    head = head_revision()
    return Status(
        current=current,
        head=head,
        pending=between(current, head) if position(current) <= position(head) else [],
        table_count=len(tables),
        legacy_unstamped=current is None and bool(tables & set(LEGACY_TABLES)),
    )


def status(database_url: str, *, settings: Settings | None = None) -> Status:
    return run_on_connection(database_url, _status, settings=settings)


def check_upgrade(state: Status, target: str | None) -> None:
    """MigrationError when upgrading from `state` to `target` makes no sense."""
    if state.legacy_unstamped:
        raise MigrationError(
            "the database has the legacy tables but no migration revision; run `mobility db adopt` first"
        )
    if position(target) < position(state.current):
        raise MigrationError(
            f"revision {target or 'base'} is below the current revision {state.current}; "
            f"use `mobility db downgrade --to {target or 'base'}`"
        )


def check_downgrade(state: Status, target: str | None) -> None:
    """MigrationError when downgrading from `state` to `target` makes no sense."""
    if state.current is None:
        raise MigrationError("the database has no migration revision; there is nothing to downgrade")
    if position(target) > position(state.current):
        raise MigrationError(
            f"revision {target} is above the current revision {state.current}; use `mobility db upgrade --to {target}`"
        )


# --- adopting a legacy database ------------------------------------------------------------------


@dataclass
class Adoption:
    already: bool = False
    # Things that differ from the legacy shape but are accepted (extra unrelated tables, ...).
    notes: list[str] = field(default_factory=list)


def adopt(database_url: str, *, settings: Settings | None = None) -> Adoption:
    """Checks the database has exactly the legacy shape and stamps the baseline, in one transaction.

    Raises NotAdoptable (with every difference) or MigrationError; then nothing has changed.
    """
    return run_on_connection(database_url, _adopt, settings=settings, write=True)


def _later_tables() -> set[str]:
    from mobility.models import metadata

    return set(metadata.tables) - set(LEGACY_TABLES)


def _later_enum_types() -> set[str]:
    from mobility.models import metadata

    return {
        column.type.name
        for table in metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, Enum) and column.type.name
    }


def _adopt(connection: Connection) -> Adoption:
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    if VERSION_TABLE in tables:
        versions = list(connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())
        if versions == [BASELINE]:
            return Adoption(already=True)
        if versions:
            raise MigrationError(
                f"the database is at revision {', '.join(versions)}, so it is not a legacy database "
                "waiting for adoption; see `mobility db status`"
            )
    present_legacy = tables & set(LEGACY_TABLES)
    later = sorted(tables & _later_tables())
    if not present_legacy and not later:
        raise MigrationError(
            "there is nothing to adopt: the database has none of the legacy tables "
            f"({', '.join(LEGACY_TABLES)}); `mobility db upgrade` builds a new database"
        )
    differences, notes = legacy_differences(connection)
    if differences:
        raise NotAdoptable(differences, notes)
    MigrationContext.configure(connection).stamp(script_directory(), BASELINE)
    return Adoption(notes=notes)


def legacy_differences(connection: Connection) -> tuple[list[str], list[str]]:
    """How the database differs from `legacy_metadata`: (differences, accepted notes), one line each.

    Differences: a legacy table missing; a column missing, extra or with another type, nullability or
    default; a primary key, unique constraint, index or foreign key (with its ON DELETE / ON UPDATE)
    missing, extra or different; a table or enum type of a later revision present.
    Accepted notes: tables that are neither legacy nor ours (e.g. Prisma's `_prisma_migrations`), and a
    unique index standing where a unique constraint is expected (how Prisma creates them: equivalent).
    """
    inspector = inspect(connection)
    tables = set(inspector.get_table_names()) - {VERSION_TABLE}
    differences: list[str] = []
    notes: list[str] = []

    later_tables = _later_tables()
    for name in sorted(tables - set(LEGACY_TABLES)):
        if name in later_tables:
            differences.append(f"{name}: table of a later revision present (expected only the legacy tables)")
        else:
            notes.append(f"{name}: table not part of the legacy schema; left as it is")
    if connection.dialect.name == "postgresql":
        later_types = _later_enum_types()
        for enum in inspector.get_enums():
            if enum["name"] in later_types:
                differences.append(f"type {enum['name']}: enum type of a later revision present")

    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "include_name": lambda name, type_, _parents: type_ != "table" or name in LEGACY_TABLES,
        },
    )
    diffs: list[Any] = []
    for diff in compare_metadata(context, legacy_metadata):
        # Column modifications come grouped in a list per column.
        diffs.extend(diff if isinstance(diff, list) else [diff])
    differences.extend(_describe_diffs(diffs, connection, notes))

    for name in LEGACY_TABLES:
        if name in tables:
            differences.extend(_primary_key_difference(inspector, legacy_metadata.tables[name]))
    # Grouped by table (stable: within a table, in the order found).
    differences.sort(key=lambda line: line.split(":", 1)[0].split(".", 1)[0])
    return differences, notes


def _primary_key_difference(inspector: Any, table: Table) -> list[str]:
    found = inspector.get_pk_constraint(table.name)
    expected_columns = [column.name for column in table.primary_key.columns]
    found_columns = found.get("constrained_columns") or []
    name_differs = found.get("name") is not None and found["name"] != table.primary_key.name
    if found_columns == expected_columns and not name_differs:
        return []
    shown = f"{found.get('name') or '(unnamed)'} ({', '.join(found_columns)})" if found_columns else "none"
    return [
        f"{table.name}: primary key expected {table.primary_key.name} ({', '.join(expected_columns)}), "
        f"found {shown}"
    ]


def _describe_diffs(diffs: list[Any], connection: Connection, notes: list[str]) -> list[str]:
    dialect = connection.dialect

    def type_of(column_type: Any) -> str:
        try:
            return column_type.compile(dialect=dialect)
        except Exception:  # a reflected type the dialect cannot render: its repr is still informative
            return repr(column_type)

    def column_of(column: Column) -> str:
        return f"{type_of(column.type)} {'NULL' if column.nullable else 'NOT NULL'}"

    def default_of(value: Any) -> str:
        if value is None:
            return "no default"
        if isinstance(value, DefaultClause):
            value = value.arg
        return str(getattr(value, "text", value))

    def columns_of(item: Index | UniqueConstraint) -> str:
        return ", ".join(str(getattr(column, "name", column)) for column in item.columns)

    def fk_of(fk: ForeignKeyConstraint) -> str:
        target = fk.elements[0].target_fullname.rsplit(".", 1)[0] if fk.elements else "?"
        referred = ", ".join(element.target_fullname.rsplit(".", 1)[1] for element in fk.elements)
        return (
            f"({', '.join(fk.column_keys)}) -> {target}({referred}) "
            f"ON DELETE {(fk.ondelete or 'NO ACTION').upper()} ON UPDATE {(fk.onupdate or 'NO ACTION').upper()}"
        )

    lines: list[str] = []
    # Objects by (table, kind, name): what the legacy shape expects and what the database has.
    expected: dict[tuple[str, str, str], str] = {}
    found: dict[tuple[str, str, str], str] = {}
    unique_indexes: dict[tuple[str, str], str] = {}  # (table, name) -> columns, found
    unique_constraints: dict[tuple[str, str], str] = {}  # (table, name) -> columns, expected

    for diff in diffs:
        kind = diff[0]
        if kind == "add_table":
            lines.append(f"{diff[1].name}: missing table")
        elif kind == "remove_table":
            lines.append(f"{diff[1].name}: unexpected table")
        elif kind == "add_column":
            _, _, table, column = diff
            lines.append(f"{table}.{column.name}: missing column (expected {column_of(column)})")
        elif kind == "remove_column":
            _, _, table, column = diff
            later = _later_column(table, column.name)
            lines.append(
                f"{table}.{column.name}: unexpected column (found {column_of(column)})"
                + (", a column of a later revision" if later else "")
            )
        elif kind == "modify_type":
            _, _, table, column, _, found_type, expected_type = diff
            lines.append(
                f"{table}.{column}: type expected {type_of(expected_type)}, found {type_of(found_type)}"
            )
        elif kind == "modify_nullable":
            _, _, table, column, _, found_nullable, expected_nullable = diff
            shown = {True: "NULL", False: "NOT NULL"}
            lines.append(
                f"{table}.{column}: expected {shown[expected_nullable]}, found {shown[found_nullable]}"
            )
        elif kind == "modify_default":
            _, _, table, column, _, found_default, expected_default = diff
            lines.append(
                f"{table}.{column}: default expected {default_of(expected_default)}, "
                f"found {default_of(found_default)}"
            )
        elif kind in ("add_index", "remove_index"):
            index: Index = diff[1]
            table = index.table.name if index.table is not None else "?"
            described = f"{'unique index' if index.unique else 'index'} ({columns_of(index)})"
            if kind == "add_index":
                expected[(table, "index", index.name)] = described
            elif index.unique:
                unique_indexes[(table, index.name)] = columns_of(index)
                found[(table, "index", index.name)] = described
            else:
                found[(table, "index", index.name)] = described
        elif kind in ("add_constraint", "remove_constraint") and isinstance(diff[1], UniqueConstraint):
            constraint: UniqueConstraint = diff[1]
            table = constraint.table.name
            described = f"unique constraint ({columns_of(constraint)})"
            if kind == "add_constraint":
                unique_constraints[(table, constraint.name)] = columns_of(constraint)
                expected[(table, "unique", constraint.name)] = described
            else:
                found[(table, "unique", constraint.name)] = described
        elif kind in ("add_fk", "remove_fk"):
            fk: ForeignKeyConstraint = diff[1]
            table = fk.parent.name
            (expected if kind == "add_fk" else found)[(table, "foreign key", fk.name)] = fk_of(fk)
        else:
            lines.append(f"{diff!r}")

    # Prisma makes `@unique` a UNIQUE INDEX named like the constraint: the same rule, accepted.
    for (table, name), columns in unique_constraints.items():
        if unique_indexes.get((table, name)) == columns:
            expected.pop((table, "unique", name))
            found.pop((table, "index", name))
            notes.append(
                f"{table}: unique index {name} ({columns}) stands for the expected unique constraint; equivalent"
            )

    for table, kind, name in sorted(set(expected) | set(found), key=lambda key: tuple(map(str, key))):
        want, have = expected.get((table, kind, name)), found.get((table, kind, name))
        if want and have:
            lines.append(f"{table}: {kind} {name} expected {want}, found {have}")
        elif want:
            lines.append(f"{table}: missing {kind} {name} (expected {want})")
        else:
            lines.append(f"{table}: unexpected {kind} {name} (found {have})")
    return lines


def _later_column(table: str, column: str) -> bool:
    from mobility.models import metadata

    return table in metadata.tables and column in metadata.tables[table].columns
