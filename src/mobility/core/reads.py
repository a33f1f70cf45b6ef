"""Reads on the hot path: a SELECT compiled once per shape of scope, row-filtered like every other
statement, and run on PostgreSQL straight on the driver.

An ORM `session.execute(select(...))` costs about 1 ms of Python per statement here (cache key, ORM
compile state, row filters rebuilt, result objects), against about 0.1 ms for the round trip itself
(bench/auth.py). A `Read` does the ORM's work once: the statement gets the row filters of
`authz.rules` for a *symbolic* scope, whose ids are bound parameters (`:scope_tenant_id`, ...), and is
compiled; what changes the SQL (the role, System Admin or not, which ids the scope has) picks the
compiled form. Each call then only fills in the parameters and runs the SQL on the request's own
connection and transaction, so row-level security and the request's settings apply as to any
statement. The rows come back as dicts, through the columns' own result processing (UTC on legacy
timestamps, ...).

The filters are the same ones `core.tenancy` puts on ORM statements (`row_filter_options`): there is
one definition of who sees what. On other databases (SQLite) a `Read` simply runs its statement through
the scoped ORM session.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Uuid, bindparam
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.core.scope import Scope, TenancyViolation, require_scope, scoped_driver_connection
from mobility.core.tenancy import RowRules, row_filter_options, row_filtered_entities, rules_of

# SQL whose value is the transaction's start time (statement_timestamp() and clock_timestamp() are not).
_TRANSACTION_TIME = re.compile(
    r"\b(now|transaction_timestamp)\s*\(|\b(current_timestamp|current_date|current_time|localtimestamp|localtime)\b",
    re.IGNORECASE,
)

# The ids of a scope that row rules compare with: passed as parameters, never compiled in.
SCOPE_IDS = ("tenant_id", "actor_id", "candidate_id", "agent_id", "broker_id")


def _shape(scope: Scope) -> tuple:
    """What decides the SQL of the row filters: the role and flags, and which ids are missing (a rule
    on a missing id compiles to `false`, not to `= NULL`)."""
    return (
        scope.system,
        scope.role,
        scope.is_system_admin,
        tuple(getattr(scope, name) is None for name in SCOPE_IDS),
    )


def _symbolic(scope: Scope) -> Scope:
    """The scope with each id it has replaced by a bound parameter of the same name."""
    return scope.but(
        **{
            name: bindparam(f"scope_{name}", type_=Uuid)
            for name in SCOPE_IDS
            if getattr(scope, name) is not None
        }
    )


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    # Per positional parameter: its name, and a function of the call's values giving the driver value.
    params: tuple[tuple[str, Callable[[Mapping[str, Any]], Any]], ...]
    # Per result column: its key, and the column type's result processor (or None).
    columns: tuple[tuple[str, Callable[[Any], Any] | None], ...]


class Read:
    """One SELECT of the hot path. `build` returns the statement, with `bindparam(name)` for the
    values each call passes; its selected columns must have distinct keys (label them)."""

    def __init__(self, build: Callable[[], Select]) -> None:
        self._statement = build()
        # The keys the ORM gives the row's values (attribute names, or labels), on every database.
        # (The ORM renames a second `id` to `id_1`: refused instead, so every key is chosen.)
        names = [column.key for column in self._statement.selected_columns]
        if len(set(names)) != len(names):
            raise ValueError(f"Columns of a Read need distinct keys (label them): {names}")
        if _TRANSACTION_TIME.search(str(self._statement)):
            raise ValueError(
                "A Read may run in a transaction begun when the previous request ended (core/db.py), "
                "so now() and CURRENT_TIMESTAMP are stale there: pass the time as a parameter."
            )
        keys = [description["name"] for description in self._statement.column_descriptions]
        self._keys = tuple(keys)
        self._compiled: dict[tuple, _Compiled] = {}
        self._lock = threading.Lock()

    async def one(self, session: AsyncSession, **values: Any) -> dict[str, Any] | None:
        """The one row the scope of `session` may see, as a dict keyed by column key; None if none."""
        rows = await self._run(session, values, one=True)
        return rows[0] if rows else None

    async def all(self, session: AsyncSession, **values: Any) -> list[dict[str, Any]]:
        return await self._run(session, values, one=False)

    async def _run(self, session: AsyncSession, values: dict[str, Any], *, one: bool) -> list[dict[str, Any]]:
        scope = require_scope(session)
        dialect = session.bind.dialect
        if dialect.name != "postgresql":
            result = await session.execute(self._statement, values)
            return [dict(row) for row in result.mappings()]
        compiled = self._compiled_for(dialect, scope, rules_of(session))
        values.update({f"scope_{name}": getattr(scope, name) for name in SCOPE_IDS})
        args = [param(values) for _name, param in compiled.params]
        connection = await scoped_driver_connection(session)
        if one:
            record = await connection.fetchrow(compiled.sql, *args)
            records = [] if record is None else [record]
        else:
            records = await connection.fetch(compiled.sql, *args)
        return [
            {key: (value if process is None or value is None else process(value))
             for (key, process), value in zip(compiled.columns, record.values(), strict=True)}
            for record in records
        ]  # fmt: skip

    def _compiled_for(self, dialect: Dialect, scope: Scope, rules: RowRules) -> _Compiled:
        key = (dialect.name, id(rules), _shape(scope))
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(key) or self._compile(dialect, scope, rules)
                self._compiled[key] = compiled
        return compiled

    def _compile(self, dialect: Dialect, scope: Scope, rules: RowRules) -> _Compiled:
        statement = self._statement
        if not scope.system:
            entities, by_table = row_filtered_entities(statement, (), rules)
            if by_table:
                raise TenancyViolation(f"A Read on {', '.join(sorted(by_table))} by table: use the models.")
            statement = statement.options(*row_filter_options(entities, _symbolic(scope), rules))
        compiled = statement.compile(dialect=dialect)
        params = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            if bind.expanding:
                raise ValueError(f"A Read cannot take a list parameter ({name}): compile one per length.")
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if not bind.required:
                # A constant of the statement itself (`Role.name == 'System Admin'`).
                constant = bind.effective_value
                fixed = process(constant) if process else constant
                params.append((name, lambda _values, fixed=fixed: fixed))
            elif process is None:
                params.append((name, lambda values, name=name: values[name]))
            else:
                params.append((name, lambda values, name=name, process=process: process(values[name])))
        columns = tuple(
            (key, column.type.dialect_impl(dialect).result_processor(dialect, None))
            for key, column in zip(self._keys, statement.selected_columns, strict=True)
        )
        return _Compiled(sql=compiled.string, params=tuple(params), columns=columns)
