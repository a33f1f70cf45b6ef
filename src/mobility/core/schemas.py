"""Base shapes of the API: camelCase JSON (like the columns and a JS front end expect).

Inputs forbid unknown fields: a field the caller may not set (`tenantId`, `createdBy`, `systemRole`,
...) is refused with 422, never silently dropped or, worse, applied (mass assignment).

Every string an input carries, at any depth (a field, a list item, a key or value inside a free-form
JSON value), is checked once here for what the databases cannot store: NUL (PostgreSQL refuses it in
text and JSONB, and asyncpg raises) and lone UTF-16 surrogates (not encodable as UTF-8; JSON's
`"\\ud800"` makes one). Strings without a declared bound are capped at `MAX_TEXT` characters, so no
field, present or future, takes a megabyte of text because its author forgot a `max_length`.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

# A password is taken exactly as typed: InputModel strips the whitespace around strings, which would
# silently change a password (and lock out one set with surrounding spaces through the CLI or seed).
Password = Annotated[str, StringConstraints(strip_whitespace=False, min_length=1, max_length=1024)]

# The longest string any input field takes unless it declares its own (shorter) bound.
MAX_TEXT = 10_000
# Characters no database column can hold: NUL, and the surrogate halves (invalid in UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable_reason(text: str) -> str | None:
    """Why `text` cannot be stored, or None if it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return "must not contain NUL characters" if found.group() == "\x00" else "is not valid Unicode text"


def _refuse_unstorable(value: Any) -> Any:
    """Every string in `value` (nested lists and dicts included) can be stored, or ValueError."""
    if isinstance(value, str):
        reason = unstorable_reason(value)
        if reason is not None:
            raise ValueError(f"Text {reason}")
        if len(value) > MAX_TEXT:
            raise ValueError(f"Text must have at most {MAX_TEXT} characters")
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _refuse_unstorable(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_unstorable(key)
            _refuse_unstorable(item)
    return value


# A path, query or header parameter declared on its own (not in an InputModel or QueryModel).
Text = Annotated[str, AfterValidator(_refuse_unstorable)]


class _StorableStrings(BaseModel):
    """Applies the string check above to every field of every subclass (nested models check their own)."""

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return _refuse_unstorable(value)


class InputModel(_StorableStrings):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        str_strip_whitespace=True,
        str_max_length=MAX_TEXT,
    )


class QueryModel(_StorableStrings):
    """Query parameters as a model (`Annotated[Params, Query()]`): camelCase, unknown ones refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_max_length=MAX_TEXT
    )


class OutputModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_8601_only(value: Any) -> Any:
    # Pydantic also reads numbers, and strings of digits, as Unix timestamps (`?to=0` is 1970): an API
    # that documents `format: date-time` takes RFC 3339 / ISO 8601 text only.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("Expected an ISO 8601 date-time with a time zone, e.g. 2025-01-31T12:00:00Z")
    return value


IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_8601_only)]

_ISO_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date_only(value: Any) -> Any:
    # As above: `date` would also take 0 (1970-01-01) or a date-time; a field documented as
    # `format: date` takes YYYY-MM-DD text only (or a date, from Python).
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE_ONLY.match(value):
        raise ValueError("Expected an ISO 8601 date, YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date_only)]


# Format characters that spell words in some scripts (Persian, Indic): zero-width non-joiner and joiner.
_JOINERS = frozenset("\u200c\u200d")


def invisible_characters(value: str) -> bool:
    """True when `value` holds a control or format character other than a tab or a joiner: a line
    break, an escape, a right-to-left override that makes text display other than it reads."""
    return any(
        unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") and char != "\t" and char not in _JOINERS
        for char in value
    )


def _single_line(value: str) -> str:
    # One line of text as people type it into a form field: runs of white space (tabs, no-break
    # spaces) become one space; control and format characters are refused.
    if invisible_characters(value):
        raise ValueError("Text must be one line, without control characters")
    return " ".join(value.split())


# One line of free text (a city, an employer's name, a skill): tidy white space, no control characters.
SingleLine = Annotated[str, AfterValidator(_single_line)]


class UpdateModel(InputModel):
    """A PATCH body: every field optional; a field that is sent must carry a value, unless it is one of
    `nullable` (then null clears it)."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_nulls(self):
        nulls = sorted(
            (field.alias or name)
            for name, field in type(self).model_fields.items()
            if name in self.model_fields_set and getattr(self, name) is None and name not in self.nullable
        )
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null; leave a field out to keep its value")
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        # The document says what `_no_nulls` enforces: only the `nullable` fields take null.
        schema = handler(core_schema)
        resolved = handler.resolve_ref_schema(schema)
        for name, field in cls.model_fields.items():
            prop = resolved.get("properties", {}).get(field.alias or name)
            if name in cls.nullable or prop is None or "anyOf" not in prop:
                continue
            options = [option for option in prop.pop("anyOf") if option.get("type") != "null"]
            prop.pop("default", None)
            if len(options) == 1:
                prop.update(options[0])
            else:
                prop["anyOf"] = options
        return schema

    def changes(self) -> dict[str, Any]:
        """The fields sent, as plain values (snake_case keys)."""
        return {name: plain_value(getattr(self, name)) for name in self.model_fields_set}


def plain_value(value: Any) -> Any:
    """A field's value as JSON-ready data (a nested model as its camelCase dict)."""
    if isinstance(value, InputModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    return value
