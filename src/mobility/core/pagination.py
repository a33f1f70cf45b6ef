"""Keyset pagination: stable under inserts, constant cost at any depth, page size capped.

A list endpoint sorts by one whitelisted column (ascending or descending) with the id as tie-breaker;
the opaque cursor carries the last row's (value, id).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import Field
from sqlalchemy import Select, literal, or_, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.core.errors import InvalidInput
from mobility.core.schemas import OutputModel, QueryModel

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 25

T = TypeVar("T")


class PageParams(QueryModel):
    """A list's query parameters. A subclass narrows `sort` to its keys with `sort_by(...)`, so the
    OpenAPI document enumerates them."""

    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(default=None, max_length=1024)
    sort: str | None = None


def sort_by(*keys: str) -> Any:
    """The type of a list's `sort` parameter: each key, ascending or descending ("-key")."""
    return Literal[tuple(option for key in keys for option in (key, f"-{key}"))] | None  # type: ignore[valid-type]


class ListParams(PageParams):
    """Query parameters of a list: camelCase, unknown ones refused (core.schemas.QueryModel)."""


class Page(OutputModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class SortKey:
    """A column a list may be sorted by (NOT NULL: keyset paging cannot order NULLs), and how its value
    goes into the cursor and back; `from_json` refuses a forged value with InvalidInput."""

    column: Any  # an ORM attribute
    to_json: Any = str
    from_json: Any = None


def _invalid_cursor() -> InvalidInput:
    return InvalidInput("The cursor is not valid.", field="cursor")


def _cursor_text(value: Any) -> str:
    if not isinstance(value, str):
        raise _invalid_cursor()
    return value


def _cursor_time(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise _invalid_cursor() from None
    if parsed.tzinfo is None:
        raise _invalid_cursor()
    return parsed


def text_key(column: Any) -> SortKey:
    return SortKey(column, to_json=str, from_json=_cursor_text)


def time_key(column: Any) -> SortKey:
    return SortKey(column, to_json=datetime.isoformat, from_json=_cursor_time)


def contains(*columns: Any, text: str) -> Any:
    """Case-insensitive substring match on any of `columns`; `%` and `_` in the text are literal."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return or_(*(column.ilike(pattern, escape="\\") for column in columns))


def _encode(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def _decode(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, json.JSONDecodeError) as exc:
        raise _invalid_cursor() from exc
    if not isinstance(values, list) or len(values) != 2 or values[0] is None:
        raise _invalid_cursor()
    return values


def after_cursor(column: Any, id_column: Any, cursor: tuple[Any, Any], *, descending: bool) -> Any:
    """The rows after the cursor's (value, id) in the list's order.

    One row-value comparison, not `column < v OR (column = v AND id < last)`: an index on
    (..., column, id) seeks straight to the cursor with it, where the OR form read every row before
    the cursor (PostgreSQL and SQLite both compare row values)."""
    position, cursor_at = tuple_(column, id_column), tuple_(*cursor)
    return position < cursor_at if descending else position > cursor_at


def ordered(statement: Select, column: Any, id_column: Any, *, descending: bool) -> Select:
    order = (column.desc(), id_column.desc()) if descending else (column.asc(), id_column.asc())
    return statement.order_by(*order)


@dataclass(frozen=True)
class Keyset:
    """Where a page starts: the sort key, its direction, and the cursor's (value, id) if any."""

    sort: str
    key: SortKey
    descending: bool
    after: tuple[Any, uuid.UUID] | None

    @classmethod
    def of(cls, params: PageParams, sort_keys: dict[str, SortKey], default_sort: str) -> Keyset:
        """The page `params` ask for (InvalidInput for an unknown sort or a forged cursor)."""
        sort = params.sort or default_sort
        name = sort.lstrip("-")
        key = sort_keys.get(name)
        if key is None:
            raise InvalidInput(
                f"Cannot sort by {sort!r}; one of: {', '.join(sorted(sort_keys))}.", field="sort"
            )
        after = None
        if params.cursor:
            raw_value, raw_id = _decode(params.cursor)
            value = key.from_json(raw_value) if key.from_json else raw_value
            try:
                after = (value, uuid.UUID(raw_id))
            except (TypeError, ValueError, AttributeError):
                raise _invalid_cursor() from None
        return cls(name, key, sort.startswith("-"), after)

    def next_cursor(self, value: Any, row_id: Any) -> str:
        """The cursor of the page after the one whose last row has this sort value and id."""
        return _encode([self.key.to_json(value) if value is not None else None, str(row_id)])


async def paginate(
    session: AsyncSession,
    statement: Select,
    *,
    params: PageParams,
    sort_keys: dict[str, SortKey],
    default_sort: str,
    id_column: Any,
) -> tuple[list[Any], str | None]:
    """Rows of one page of `statement` (ORM entities) and the cursor of the next page, if any.

    `sort` is a key of `sort_keys`, optionally prefixed by "-" for descending.
    """
    page = Keyset.of(params, sort_keys, default_sort)
    column, descending = page.key.column, page.descending
    if page.after is not None:
        value, last_id = page.after
        after = (literal(value, column.type), literal(last_id, id_column.type))
        statement = statement.where(after_cursor(column, id_column, after, descending=descending))
    rows = list(
        (
            await session.execute(
                ordered(statement, column, id_column, descending=descending).limit(params.limit + 1)
            )
        )
        .scalars()
        .all()
    )
    next_cursor = None
    if len(rows) > params.limit:
        rows = rows[: params.limit]
        next_cursor = page.next_cursor(getattr(rows[-1], column.key), rows[-1].id)
    return rows, next_cursor
