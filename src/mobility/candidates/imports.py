"""Importing candidates from a spreadsheet (issue 12, part 8): `mobility import candidates FILE` and
`POST /api/v1/candidates/import`, one service for both.

The file
- CSV (UTF-8, with or without a byte-order mark; comma, semicolon or tab between values, read from the
  header line) or an Excel workbook (.xlsx: its first worksheet). The kind is judged by the content,
  never by the name: a ZIP that is a workbook is read as one, anything else binary is refused (415).
- The first non-empty row is the header. Each header names a field by the API's camelCase name
  (`firstName`) or its label (`First name`), compared without case, spaces, dashes, dots and
  underscores (`first_name`, `FIRST NAME` and `First-Name` are the same); `COLUMNS` is the table,
  README "Importing and exporting candidates" shows it. An unknown header, a field named twice, a
  required field missing, or (for an Agent or Broker) a staff-only field refuses the whole file
  before any row is read.
- Cells: empty means absent. Dates as YYYY-MM-DD (an Excel date cell is read as its date), as the
  API takes them. A leading apostrophe before `= + - @` (how exports.py protects a cell from being
  read as a formula) is dropped. The address and the emergency contact come as their parts' columns
  (`Address line 1`, `City`, ...) or whole as JSON (`address`, `emergencyContact`); `skills` and
  `languages` as JSON lists or simply as `Welding; Forklift operation` and `en C1; fj native`;
  `education` and `workHistory` as JSON lists. Staff may name the partner by `agentCode` /
  `brokerCode` (or `agentId` / `brokerId`).

The rules: the API's, on every row
- each row validated by the caller's create shape (`CandidateCreate` for staff, `PartnerCandidateCreate`
  for an Agent or Broker, whose candidates are linked to its record), with the same messages;
- a partner that may not register candidates (inactive, licence expired) refuses the file (409), or,
  named on a row by staff, that row;
- duplicates (the same passport and nationality, national id and nationality, or e-mail:
  duplicates.py) are refused against the tenant's candidates AND against the rows before it in the
  file ("the same passport as line 12"); as with the API, a partner is not told which record of
  another partner's it duplicates. Likely duplicates (similar names, same date of birth) are not
  looked for: the API lists them, never refuses them, and each record shows them later.
- Line numbers are the file's: the CSV line a row starts on, the worksheet's row number.

All or nothing: by default one refused row refuses the whole import (nothing is written; the report
lists every refused row with its line and reasons). `skip_invalid` writes the valid rows and reports
the others. `dry_run` checks everything, exactly as an import would (duplicates within the file and
reference numbers included), then writes nothing. The work runs in a savepoint of the caller's
transaction, rolled back unless the rows are to be kept: the caller commits.

Speed and memory
- Rows are read one at a time (csv module; openpyxl's read-only mode for .xlsx, which keeps only the
  workbook's shared-strings table in memory) and handled in batches of `BATCH_SIZE`: one query for
  the batch's duplicate keys, one block of reference numbers (service.reserve_references), one
  INSERT of the batch's rows (an ORM bulk insert: tenant-checked like any statement, no objects in
  the session) and one of their audit entries (core.audit.record_bulk_insert: one `candidate.import`
  entry per candidate, as the flush writes them; the trail of personal data is per person). What is kept for the whole file
  is its counts, the refused rows' report (the first `MAX_REPORTED`) and, per created row, its
  reference's sequence number and line (12 bytes) to name the line a later duplicate repeats.
- Checking a row (reading its cells, the create shape's validation, its duplicate keys) needs nothing
  of the database and is most of an import's work: the command line has it done by processes of
  their own (`checking_processes`: from `POOL_MIN_BYTES` on, one per core but one), a few batches
  ahead of the batch being written, while this process looks partners and duplicates up and writes.
  The API checks in its own process (an upload is capped at 10 MiB), in a thread, so that its event loop
  serves other requests meanwhile.
- The reference counter row stays locked from the first batch until the import's transaction ends
  (as for any registration): registrations in the tenant by others wait for the import to finish.

Zip bombs: a workbook is a ZIP archive. Before openpyxl opens it, its directory is read: at most
`MAX_ZIP_ENTRIES` members, unpacking to at most `limits.max_unpacked_bytes` in all, none compressed
more than `MAX_RATIO` to 1 (spreadsheet XML compresses 5-30 to 1). Python's zipfile never unpacks a
member past the size its directory declares, so the declared sizes bound what is read. XML entity
expansion is defused (defusedxml, which openpyxl uses when it is installed).
"""

from __future__ import annotations

import asyncio
import bisect
import codecs
import contextlib
import csv
import io
import json
import multiprocessing
import os
import re
import unicodedata
import uuid
import zipfile
from array import array
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, time
from types import SimpleNamespace
from typing import IO, Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from mobility.agents import service as partners
from mobility.agents.models import Agent, Broker
from mobility.auth.caller import memberships
from mobility.auth.credentials import normalise_email
from mobility.authz.permissions import SystemRole, permissions_for_role
from mobility.candidates import service
from mobility.candidates.models import Candidate, CandidateStatus
from mobility.candidates.reference import parse_reference
from mobility.core import audit
from mobility.core.errors import AppError, Conflict, Forbidden
from mobility.core.models import new_id, utcnow
from mobility.core.scope import Scope, bind_scope, require_scope
from mobility.core.uploads import EmptyFile, FileTooLarge
from mobility.tenants.models import Tenant
from mobility.users.models import user_by_email

BATCH_SIZE = 1000
# Files from this size on are checked by processes of their own (`checking_processes`): about 8,000 rows.
POOL_MIN_BYTES = 1 << 20
MAX_CHECKING_PROCESSES = 4
MAX_REPORTED = 10_000  # refused rows listed in a report (all are counted)
MAX_REASONS = 10  # reasons listed per refused row
MAX_ZIP_ENTRIES = 1000
MAX_RATIO = 200
# What a workbook sent to the API may unpack to: this many times the upload cap.
API_UNPACK_FACTOR = 50
SNIFF_BYTES = 8192
# A leading apostrophe before these is exports.py's guard against formulas; an import drops it.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# --- the answers ---------------------------------------------------------------------------------


class UnsupportedSpreadsheet(AppError):
    status, code, title = 415, "unsupported_file_type", "Unsupported file type"

    def __init__(self, what: str) -> None:
        super().__init__(
            f"The file is {what}. Import a CSV file (UTF-8 text) or an Excel workbook (.xlsx); "
            "judged by the content, not the name.",
            allowed=["text/csv", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"],
        )


class UnreadableSpreadsheet(AppError):
    status, code, title = 422, "unreadable_spreadsheet", "The spreadsheet cannot be read"


class HeaderMismatch(AppError):
    status, code, title = 422, "header_mismatch", "The header row does not fit"


class ImportRejected(AppError):
    """Some rows were refused and the import was all-or-nothing: nothing was written."""

    status, code, title = 422, "import_rejected", "Rows of the file were refused"


# --- the header mapping --------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A field a file's column may give: `field` is the API's name (dotted for a part of an object),
    `label` the header an export writes; `aliases` other headers read as it."""

    field: str
    label: str
    aliases: tuple[str, ...] = ()
    kind: str = "text"  # "text", "json" (an object or list as JSON), "list" (JSON, or `a; b`)
    staff_only: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("firstName", "First name", ("Given name", "Given names", "Forename")),
    Column("middleName", "Middle name", ("Middle names",)),
    Column("lastName", "Last name", ("Surname", "Family name")),
    Column("dateOfBirth", "Date of birth", ("Birth date", "DOB")),
    Column("gender", "Gender", ("Sex",)),
    Column("nationality", "Nationality", ("Citizenship",)),
    Column("nationalId", "National ID", ("National ID number",)),
    Column("passportNumber", "Passport number", ("Passport no", "Passport")),
    Column("passportExpiry", "Passport expiry", ("Passport expiry date", "Passport expires")),
    Column("email", "E-mail", ("Email address", "E-mail address")),
    Column("phone", "Phone", ("Phone number", "Mobile", "Mobile number")),
    Column("address", "Address", kind="json"),
    Column("address.line1", "Address line 1", ("Address 1",)),
    Column("address.line2", "Address line 2", ("Address 2",)),
    Column("address.city", "City", ("Town", "Address city")),
    Column("address.region", "Region", ("Province", "State", "Address region")),
    Column("address.postalCode", "Postal code", ("Postcode", "ZIP code", "Address postal code")),
    Column("address.country", "Address country", ()),
    Column("emergencyContact", "Emergency contact", kind="json"),
    Column("emergencyContact.name", "Emergency contact name", ()),
    Column("emergencyContact.relationship", "Emergency contact relationship", ()),
    Column("emergencyContact.phone", "Emergency contact phone", ()),
    Column("emergencyContact.email", "Emergency contact e-mail", ()),
    Column("skills", "Skills", kind="list"),
    Column("languages", "Languages", kind="list"),
    Column("education", "Education", kind="json"),
    Column("workHistory", "Work history", kind="json"),
    Column("agentCode", "Agent code", ("Agent",), staff_only=True),
    Column("agentId", "Agent id", (), staff_only=True),
    Column("brokerCode", "Broker code", ("Broker",), staff_only=True),
    Column("brokerId", "Broker id", (), staff_only=True),
    Column("notes", "Notes", (), staff_only=True),
)
# What an export writes that an import does not take: set by the system.
SYSTEM_COLUMNS = ("id", "Reference number", "Status", "Registered at", "Updated at", "referenceNumber",
                  "createdAt", "updatedAt")  # fmt: skip


def header_key(text: str) -> str:
    """A header as compared: no case, spaces, dashes, dots or underscores ("First name" = "firstName")."""
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text).casefold())


def _by_key() -> dict[str, Column]:
    found: dict[str, Column] = {}
    for column in COLUMNS:
        for name in (column.field, column.label, *column.aliases):
            key = header_key(name)
            assert found.get(key, column) is column, f"{name!r} names two columns"
            found[key] = column
    return found


_COLUMN_BY_KEY = _by_key()
_SYSTEM_KEYS = frozenset(header_key(name) for name in SYSTEM_COLUMNS)


def _column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: how a spreadsheet names the column."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


@dataclass
class Header:
    columns: list[Column | None]  # by position; None: a column without a header (must stay empty)
    shown: dict[str, str]  # field -> the header the file used, for the report


def map_header(cells: list[Any], *, required: list[str], staff: bool) -> Header:
    """The file's header as columns; HeaderMismatch naming every problem at once."""
    columns: list[Column | None] = []
    shown: dict[str, str] = {}
    unknown, system, twice, not_yours = [], [], [], []
    for index, cell in enumerate(cells):
        text = _cell_text(cell)
        if text is None:
            columns.append(None)
            continue
        key = header_key(text)
        column = _COLUMN_BY_KEY.get(key)
        where = f"{text!r} (column {_column_letter(index)})"
        if column is None:
            (system if key in _SYSTEM_KEYS else unknown).append(where)
        elif column.field in shown:
            twice.append(f"{shown[column.field]!r} and {text!r}")
        elif column.staff_only and not staff:
            not_yours.append(text)
        columns.append(column)
        if column is not None:
            shown.setdefault(column.field, text)
    fields = set(shown)
    problems = []
    if unknown:
        problems.append(f"unknown column(s) {', '.join(unknown)}")
    if system:
        problems.append(f"column(s) the system sets, which an import cannot: {', '.join(system)}")
    if twice:
        problems.append(f"the same field twice: {'; '.join(twice)}")
    if not_yours:
        problems.append(f"column(s) only staff may set: {', '.join(not_yours)}")
    for whole in ("address", "emergencyContact"):
        if whole in fields and any(name.startswith(f"{whole}.") for name in fields):
            problems.append(f"{whole} both whole (JSON) and in parts")
    for pair in (("agentCode", "agentId"), ("brokerCode", "brokerId")):
        if set(pair) <= fields:
            problems.append(f"both {pair[0]} and {pair[1]}: give one")
    missing = [name for name in required if name not in fields]
    if missing:
        labels = {column.field: column.label for column in COLUMNS}
        problems.append("missing required column(s) " + ", ".join(f"{labels[name]!r}" for name in missing))
    if problems:
        raise HeaderMismatch(
            "The header row does not fit: " + "; ".join(problems) + ". See README, "
            '"Importing and exporting candidates", for the columns.',
            unknownColumns=unknown + system,
            missingColumns=missing,
        )
    return Header(columns, shown)


# --- reading the file, a row at a time -----------------------------------------------------------


@dataclass(frozen=True)
class ImportLimits:
    """The largest file (None: any, the CLI's operator's own file) and what a workbook may unpack to."""

    max_bytes: int | None = None
    max_unpacked_bytes: int = 2 * 1024**3


class Spreadsheet:
    """An open file's rows: `rows()` yields (line, cells) for each non-empty row; `done()` and
    `total` tell the progress (bytes for CSV, rows for a workbook)."""

    format: str
    total: int | None

    def rows(self) -> Iterator[tuple[int, list[Any]]]:
        raise NotImplementedError

    def done(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass


def open_spreadsheet(file: IO[bytes], limits: ImportLimits) -> Spreadsheet:
    """The file (binary, seekable) as a Spreadsheet, its kind judged by its first bytes."""
    file.seek(0, io.SEEK_END)
    size = file.tell()
    file.seek(0)
    if size == 0:
        raise EmptyFile()
    if limits.max_bytes is not None and size > limits.max_bytes:
        raise FileTooLarge(limits.max_bytes)
    head = file.read(SNIFF_BYTES)
    file.seek(0)
    if head.startswith(b"PK\x03\x04"):
        return _Workbook(file, limits)
    refused = _binary_kind(head)
    if refused:
        raise UnsupportedSpreadsheet(refused)
    return _Csv(file, size)


_BINARY = (
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel workbook (.xls): save it as .xlsx or CSV UTF-8"),
    (b"%PDF-", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"MZ", "a Windows program"),
    (b"\x7fELF", "a program"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG", "a PNG image"),
)


def _binary_kind(head: bytes) -> str | None:
    for signature, what in _BINARY:
        if head.startswith(signature):
            return what
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "UTF-16 text: save it as CSV UTF-8"
    if b"\x00" in head:
        return "binary, not text"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not merely a character cut at the sniffed length
            return "not UTF-8 text (save it as CSV UTF-8)"
    return None


class _Csv(Spreadsheet):
    format = "csv"

    def __init__(self, file: IO[bytes], size: int) -> None:
        self.raw = file
        self.total = size
        self.text = io.TextIOWrapper(file, encoding="utf-8-sig", newline="")
        first = self.text.readline()
        self.text.seek(0)
        # The separator most used in the first line: Excel writes ; where , is the decimal comma.
        self.delimiter = max((",", ";", "\t"), key=first.count)

    def rows(self) -> Iterator[tuple[int, list[Any]]]:
        reader = csv.reader(self.text, delimiter=self.delimiter)
        while True:
            line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError:
                raise UnreadableSpreadsheet(
                    f"The file is not UTF-8 text near line {line}: save it as CSV UTF-8."
                ) from None
            except csv.Error as exc:
                raise UnreadableSpreadsheet(f"Line {line} cannot be read as CSV: {exc}.") from None
            if any(cell.strip() for cell in cells):
                yield line, cells

    def done(self) -> int:
        with contextlib.suppress(OSError, ValueError):
            return self.raw.tell()
        return 0

    def close(self) -> None:
        self.text.detach()  # the caller closes the file


class _Workbook(Spreadsheet):
    format = "xlsx"

    def __init__(self, file: IO[bytes], limits: ImportLimits) -> None:
        _check_archive(file, limits)
        import openpyxl  # here: the API needs it only for an import
        from openpyxl.utils.exceptions import InvalidFileException

        file.seek(0)
        try:
            self.book = openpyxl.load_workbook(file, read_only=True, data_only=True, keep_links=False)
            self.sheet = self.book.worksheets[0]
        except (InvalidFileException, zipfile.BadZipFile, KeyError, IndexError, ValueError, OSError) as exc:
            raise UnreadableSpreadsheet(f"The workbook cannot be read: {_reason(exc)}.") from None
        except Exception as exc:  # XML errors of a damaged part
            raise UnreadableSpreadsheet(f"The workbook cannot be read: {_reason(exc)}.") from None
        self.total = self.sheet.max_row
        # A sheet's declared dimensions may be wrong: read every row there is.
        self.sheet.reset_dimensions()
        self.line = 0

    def rows(self) -> Iterator[tuple[int, list[Any]]]:
        try:
            for line, cells in enumerate(self.sheet.iter_rows(values_only=True), start=1):
                self.line = line
                if any(_cell_text(cell) is not None for cell in cells):
                    yield line, list(cells)
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
            raise UnreadableSpreadsheet(
                f"The workbook cannot be read near row {self.line}: {_reason(exc)}."
            ) from None
        except Exception as exc:
            if isinstance(exc, AppError):
                raise
            raise UnreadableSpreadsheet(
                f"The workbook cannot be read near row {self.line}: {_reason(exc)}."
            ) from None

    def done(self) -> int:
        return self.line

    def close(self) -> None:
        self.book.close()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _check_archive(file: IO[bytes], limits: ImportLimits) -> None:
    """A workbook's ZIP directory before anything is unpacked (the module's doc: zip bombs)."""
    file.seek(0)
    try:
        with zipfile.ZipFile(file) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnreadableSpreadsheet(f"The workbook is damaged or incomplete: {_reason(exc)}.") from None
    names = {member.filename for member in members}
    if "[Content_Types].xml" not in names or not any(name.startswith("xl/") for name in names):
        raise UnsupportedSpreadsheet("a ZIP archive that is not an Excel workbook (.xlsx)")
    unpacked = sum(member.file_size for member in members)
    too_dense = [
        member.filename
        for member in members
        if member.file_size > 1024 * 1024 and member.file_size > MAX_RATIO * max(member.compress_size, 1)
    ]
    if len(members) > MAX_ZIP_ENTRIES or unpacked > limits.max_unpacked_bytes or too_dense:
        raise UnreadableSpreadsheet(
            f"The workbook unpacks to more than is allowed (at most {MAX_ZIP_ENTRIES} parts, "
            f"{limits.max_unpacked_bytes} bytes in all, each compressed at most {MAX_RATIO} to 1): "
            "it is refused unread. Save it as CSV, or split it.",
            maxUnpackedBytes=limits.max_unpacked_bytes,
        )


# --- cells to the API's body ---------------------------------------------------------------------


def _cell_text(value: Any) -> str | None:
    """A cell as text, None when empty (see the module's doc)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value).strip()
    if not text:
        return None
    if len(text) > 1 and text[0] == "'" and text[1] in "=+-@":
        text = text[1:]
    return text


def _list_cell(column: Column, text: str) -> Any:
    """`skills` / `languages` written simply: `Welding; Forklift operation`, `en C1; fj native`."""
    items = [item.strip() for item in re.split(r"[;\n]", text) if item.strip()]
    if column.field == "skills":
        return [{"name": item} for item in items]
    languages = []
    for item in items:
        parts = re.split(r"[\s:]+", item)
        if len(parts) != 2:
            raise ValueError(
                f"write each language as its code and level, e.g. 'en C1; fj native', not {item!r}"
            )
        languages.append({"code": parts[0], "level": parts[1]})
    return languages


def row_body(header: Header, cells: list[Any]) -> tuple[dict[str, Any], list[str]]:
    """A row as the API's JSON body (camelCase, nested), and what could not be read."""
    body: dict[str, Any] = {}
    problems = []
    for index, cell in enumerate(cells):
        text = _cell_text(cell)
        if text is None:
            continue
        column = header.columns[index] if index < len(header.columns) else None
        if column is None:
            problems.append(f"column {_column_letter(index)} holds a value but has no header")
            continue
        if column.kind != "text":
            try:
                if column.kind == "list" and not text.startswith("["):
                    value = _list_cell(column, text)
                else:
                    value = json.loads(text)
            except (ValueError, RecursionError) as exc:
                problems.append(f"{header.shown[column.field]}: {str(exc).split(':')[0]}")
                continue
            body[column.field] = value
            continue
        whole, dot, part = column.field.partition(".")
        if dot:
            body.setdefault(whole, {})[part] = text
        else:
            body[column.field] = text
    return body, problems


def _reasons(exc: ValidationError, header: Header) -> list[str]:
    reasons = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        shown = header.shown.get(where, where)
        message = error["msg"].removeprefix("Value error, ")
        reasons.append(f"{shown}: {message}" if shown else message)
    return reasons


# --- the report ----------------------------------------------------------------------------------


@dataclass
class RefusedRow:
    line: int
    reasons: list[str]


@dataclass
class ImportReport:
    format: str
    dry_run: bool
    skip_invalid: bool
    rows: int = 0  # data rows read (not the header, not empty rows)
    valid: int = 0  # rows that passed every rule
    created: int = 0  # candidates written (0 unless written)
    rejected: int = 0
    rejected_rows: list[RefusedRow] = field(default_factory=list)  # the first MAX_REPORTED
    written: bool = False

    @property
    def truncated(self) -> bool:
        return self.rejected > len(self.rejected_rows)

    def summary(self) -> str:
        """One line: what happened."""
        if self.written:
            done = f"imported {self.created} candidate(s) from {self.rows} row(s)"
            return done + (f"; {self.rejected} row(s) refused and skipped" if self.rejected else "")
        if self.dry_run:
            counts = f"{self.rows} row(s), {self.valid} valid, {self.rejected} refused"
            if self.rejected and not self.skip_invalid:
                return f"dry run, nothing written: {counts}; the import would be refused (all or nothing)"
            return f"dry run, nothing written: {counts}; an import would create {self.valid} candidate(s)"
        if self.rejected and self.skip_invalid:
            return f"all {self.rows} row(s) refused; nothing was imported"
        if self.rejected:
            return f"{self.rejected} of {self.rows} row(s) refused; nothing was imported (all or nothing)"
        return f"no candidates in the file ({self.rows} row(s)); nothing was imported"

    def as_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "dryRun": self.dry_run,
            "written": self.written,
            "rows": self.rows,
            "valid": self.valid,
            "created": self.created,
            "rejected": self.rejected,
            "rejectedRows": [{"line": row.line, "reasons": row.reasons} for row in self.rejected_rows],
            "truncated": self.truncated,
        }


# --- the import ----------------------------------------------------------------------------------

Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class RowCheck:
    """What checking a row takes, nothing of the database's: sent to the checking processes."""

    header: Header
    kind: str  # the caller's kind (service._kind): its create shape


@dataclass
class CheckedRow:
    """A row checked: its values (by attribute, the duplicate keys computed) or None, the partners it
    names (looked up by the importing process), and the reasons found so far."""

    line: int
    values: dict[str, Any] | None
    partners: list[tuple[str, str, str]]  # ("agent" | "broker", the column, the value given)
    problems: list[str]  # cells that could not be read
    reasons: list[str]  # the create shape's refusals


def check_row(check: RowCheck, line: int, cells: list[Any]) -> CheckedRow:
    """One row read and validated by the API's create shape, as far as it goes without the database."""
    body, problems = row_body(check.header, cells)
    named = []
    for name in ("agent", "broker"):
        for key in (f"{name}Code", f"{name}Id"):
            given = body.pop(key, None)
            if given is not None:
                named.append((name, key, given))
    shape = service._CREATE_SHAPES[check.kind]
    try:
        valid: BaseModel = shape.model_validate(body)
    except ValidationError as exc:
        return CheckedRow(line, None, named, problems, _reasons(exc, check.header))
    values = {name: service._plain(getattr(valid, name)) for name in type(valid).model_fields}
    values.pop("agent_id", None), values.pop("broker_id", None)
    keys = SimpleNamespace(**values)
    service._refresh_keys(keys)  # the API's duplicate keys and search name
    values.update(
        passport_key=keys.passport_key,
        national_id_key=keys.national_id_key,
        email_key=keys.email_key,
        search_name=keys.search_name,
    )
    return CheckedRow(line, values, named, problems, [])


def check_rows(check: RowCheck, rows: list[tuple[int, list[Any]]]) -> list[CheckedRow]:
    """A batch of rows checked (in a checking process, or in this one)."""
    return [check_row(check, line, cells) for line, cells in rows]


class _Import:
    def __init__(
        self, session: Any, sheet: Spreadsheet, report: ImportReport, header: Header, shape: type
    ) -> None:
        self.session = session
        self.sheet = sheet
        self.report = report
        self.header = header
        self.shape = shape
        self.scope = require_scope(session)
        self.kind = service._kind(self.scope)
        self.partners: dict[tuple[type, str], Any] = {}
        # Every column of a new candidate (by attribute), as the flush would write it.
        self.blank = {attr.key: None for attr in Candidate.__mapper__.column_attrs}
        self.blank.update(
            tenant_id=self.scope.tenant_id,
            status=CandidateStatus.registered,
            skills=[],
            languages=[],
            education=[],
            work_history=[],
            created_by=self.scope.actor_id,
            updated_by=self.scope.actor_id,
        )
        # Per created row: its reference (year * 10**12 + sequence) and line, in creation order.
        self.references = array("q")
        self.lines = array("l")

    def refuse(self, line: int, reasons: list[str]) -> None:
        self.report.rejected += 1
        if len(self.report.rejected_rows) < MAX_REPORTED:
            self.report.rejected_rows.append(RefusedRow(line, reasons[:MAX_REASONS]))

    async def partner(self, model: type, key: str, by_code: bool) -> tuple[Any, str | None]:
        """The agent or broker a row names (staff), and the reason it cannot be used."""
        cache_key = (model, f"{'code' if by_code else 'id'}:{key}")
        if cache_key not in self.partners:
            what = "agent" if model is Agent else "broker"
            found = None
            if by_code:
                found = (
                    await self.session.execute(
                        select(model).where(func.upper(model.code) == key.strip().upper())
                    )
                ).scalar_one_or_none()
            else:
                with contextlib.suppress(ValueError):
                    found = (
                        await self.session.execute(select(model).where(model.id == uuid.UUID(key)))
                    ).scalar_one_or_none()
            if found is None:
                result = (None, f"{what}{'Code' if by_code else 'Id'}: no {what} {key!r}")
            elif (refusal := partners.registration_refusal(found, model)) is not None:
                result = (None, refusal.detail)
            else:
                result = (found.id, None)
            self.partners[cache_key] = result
        return self.partners[cache_key]

    async def candidate(self, checked: CheckedRow) -> dict[str, Any] | list[str]:
        """The checked row as the candidate's columns (by attribute), its partners looked up, or the
        reasons it is refused."""
        reasons = list(checked.problems)
        partner_ids: dict[str, uuid.UUID] = {}
        for name, key, given in checked.partners:
            partner_id, reason = await self.partner(
                Agent if name == "agent" else Broker, given, key.endswith("Code")
            )
            if reason:
                reasons.append(reason)
            else:
                partner_ids[name] = partner_id
        reasons += checked.reasons
        if reasons or checked.values is None:
            return reasons
        agent_id, broker_id = partner_ids.get("agent"), partner_ids.get("broker")
        if self.kind == "agent":
            agent_id = self.scope.agent_id
        elif self.kind == "broker":
            broker_id = self.scope.broker_id
        return {**self.blank, **checked.values, "id": new_id(), "agent_id": agent_id, "broker_id": broker_id}

    def line_of(self, reference: str) -> int | None:
        """The line of this import that created `reference`, if it did."""
        try:
            parsed = parse_reference(reference)
        except ValueError:
            return None
        wanted = parsed.year * 10**12 + parsed.sequence
        index = bisect.bisect_left(self.references, wanted)
        if index < len(self.references) and self.references[index] == wanted:
            return self.lines[index]
        return None

    async def batch(self, checked_rows: list[CheckedRow]) -> None:
        pending: list[tuple[int, dict[str, Any], list[tuple[str, str]]]] = []
        seen: dict[tuple[str, str], int] = {}
        for checked in checked_rows:
            line = checked.line
            result = await self.candidate(checked)
            if isinstance(result, list):
                self.refuse(line, result)
                continue
            keys = [
                (what, value)
                for what, value in (
                    ("passport", result["passport_key"]),
                    ("national id", result["national_id_key"]),
                    ("e-mail", result["email_key"]),
                )
                if value is not None
            ]
            earlier = next(
                ((what, seen[(what, value)]) for what, value in keys if (what, value) in seen), None
            )
            if earlier is not None:
                self.refuse(line, [f"The same {earlier[0]} as line {earlier[1]} of this file."])
                continue
            for key in keys:
                seen[key] = line
            pending.append((line, result, keys))
        if not pending:
            return
        holders = await service.candidates_holding(
            self.session,
            passport_keys={value for _l, _c, keys in pending for what, value in keys if what == "passport"},
            national_id_keys={
                value for _l, _c, keys in pending for what, value in keys if what == "national id"
            },
            email_keys={value for _l, _c, keys in pending for what, value in keys if what == "e-mail"},
        )
        held: dict[tuple[str, str], service.KeyHolder] = {}
        for holder in holders:
            for what, value in (
                ("passport", holder.passport_key),
                ("national id", holder.national_id_key),
                ("e-mail", holder.email_key),
            ):
                if value is not None:
                    held[(what, value)] = holder
        kept: list[tuple[int, dict[str, Any]]] = []
        for line, candidate, keys in pending:
            hit = next(((what, held[(what, value)]) for what, value in keys if (what, value) in held), None)
            if hit is None:
                kept.append((line, candidate))
                continue
            what, holder = hit
            earlier_line = self.line_of(holder.reference_number)
            if earlier_line is not None:
                self.refuse(line, [f"The same {what} as line {earlier_line} of this file."])
            elif holder.visible:
                self.refuse(
                    line,
                    [f"A candidate with the same {what} is registered already: {holder.reference_number}."],
                )
            else:
                self.refuse(line, [f"A candidate with the same {what} is registered already."])
        if not kept:
            return
        references = await service.reserve_references(self.session, len(kept))
        now = utcnow()
        for (line, candidate), reference in zip(kept, references, strict=True):
            candidate.update(reference_number=reference, created_at=now, updated_at=now)
            parsed = parse_reference(reference)
            self.references.append(parsed.year * 10**12 + parsed.sequence)
            self.lines.append(line)
        rows = [candidate for _line, candidate in kept]
        # One INSERT of many rows (no ORM objects: the unit of work cost more than the rest of an
        # import), and its audit entries, one per candidate, in one more.
        try:
            await self.session.execute(insert(Candidate), rows)
        except IntegrityError as exc:  # a key taken by a registration meanwhile
            raise Conflict("A candidate of the file was registered meanwhile; import it again.") from exc
        await audit.record_bulk_insert(self.session, Candidate, rows, "candidate.import")
        self.report.valid += len(kept)


def checking_processes(file_size: int) -> int:
    """How many processes check the rows of a file of `file_size` bytes beside the importing one: none
    for a small file (starting one costs more than it saves), else one per core but the one that
    imports (PostgreSQL wants its share too), at most `MAX_CHECKING_PROCESSES`."""
    if file_size < POOL_MIN_BYTES:
        return 0
    return max(1, min(MAX_CHECKING_PROCESSES, (os.cpu_count() or 1) - 1))


async def _checked_batches(
    rows: Iterator[tuple[int, list[Any]]],
    check: RowCheck,
    batch_size: int,
    processes: int,
    report: ImportReport,
) -> AsyncIterator[list[CheckedRow]]:
    """The file's rows in batches, checked, in the file's order. With `processes`, the batches are
    checked by a pool of that many processes (spawned: nothing of this process's connections or loop
    is copied), a few batches ahead of the one being written, so reading and checking overlap the
    database's work."""

    def batches() -> Iterator[list[tuple[int, list[Any]]]]:
        batch: list[tuple[int, list[Any]]] = []
        for row in rows:
            report.rows += 1
            batch.append(row)
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    if processes <= 0:
        # Read and checked in a thread: the API's event loop serves other requests meanwhile (about
        # 0.3 s of Python for 1,000 rows) instead of stalling them all. One batch at a time.
        pending = batches()

        def next_checked() -> list[CheckedRow] | None:
            batch = next(pending, None)
            return None if batch is None else check_rows(check, batch)

        while (checked := await asyncio.to_thread(next_checked)) is not None:
            yield checked
        return
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        ahead: deque[asyncio.Future[list[CheckedRow]]] = deque()
        try:
            for batch in batches():
                ahead.append(loop.run_in_executor(pool, check_rows, check, batch))
                if len(ahead) > 2 * processes:
                    yield await ahead.popleft()
            while ahead:
                yield await ahead.popleft()
        finally:
            for future in ahead:
                future.cancel()


async def import_candidates(
    session: Any,
    file: IO[bytes],
    *,
    dry_run: bool = False,
    skip_invalid: bool = False,
    limits: ImportLimits = ImportLimits(),
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
    processes: int = 0,
) -> ImportReport:
    """Import the candidates of `file` (binary, seekable) as the session's caller; see the module's
    doc. Returns the report; the rows are kept (in the caller's transaction, which the caller commits)
    only when `report.written`. `processes` > 0: rows are checked by that many processes beside this
    one (`checking_processes`), 0: here."""
    scope = require_scope(session)
    kind = service._kind(scope)
    shape = service._CREATE_SHAPES.get(kind)
    if shape is None or not scope.can("candidates:create"):
        raise Forbidden("You may not register candidates.")
    sheet = open_spreadsheet(file, limits)
    try:
        report = ImportReport(format=sheet.format, dry_run=dry_run, skip_invalid=skip_invalid)
        rows = sheet.rows()
        first = next(rows, None)
        if first is None:
            raise HeaderMismatch("The file has no header row (it holds no values).")
        required = [info.alias or name for name, info in shape.model_fields.items() if info.is_required()]
        header = map_header(first[1], required=required, staff=kind == "staff")
        if kind in ("agent", "broker"):
            partner_id = scope.agent_id if kind == "agent" else scope.broker_id
            if partner_id is None:
                raise service.NoPartnerRecord()
            await partners.ensure_can_register(
                session, **{"agent_id" if kind == "agent" else "broker_id": partner_id}
            )
        work = _Import(session, sheet, report, header, shape)
        batches = _checked_batches(rows, RowCheck(header, kind), batch_size, processes, report)
        async with session.begin_nested() as savepoint, contextlib.aclosing(batches):
            async for checked in batches:
                await work.batch(checked)
                if progress is not None:
                    progress(sheet.done(), sheet.total)
            report.rejected_rows.sort(key=lambda row: row.line)
            if progress is not None:
                progress(sheet.total or sheet.done(), sheet.total)
            report.written = not dry_run and report.valid > 0 and (report.rejected == 0 or skip_invalid)
            if report.written:
                report.created = report.valid
            else:
                await savepoint.rollback()
        return report
    finally:
        sheet.close()


# --- who an import from the command line acts as --------------------------------------------------


class NoSuchActor(AppError):
    status, code, title = 404, "not_found", "Not found"


async def acting_scope(session: Any, *, tenant_code: str, email: str | None) -> Scope:
    """Under the system scope (`mobility import candidates`): the scope the import acts in.

    With `email`: that active member of the tenant, as their login would act (their role's permissions;
    an Agent's or Broker's candidates are linked to its partner record), recorded as the actor. Without:
    the operator, with the tenant's Admin rights and no actor (as the other operator commands)."""
    tenant = (
        await session.execute(select(Tenant).where(func.upper(Tenant.code) == tenant_code.strip().upper()))
    ).scalar_one_or_none()
    if tenant is None or not tenant.is_active:
        raise NoSuchActor(f"No active tenant has the code {tenant_code!r}.")
    admin = SystemRole.admin.value
    operator = Scope(tenant_id=tenant.id, role=admin, permissions=permissions_for_role(admin))
    if email is None:
        return operator
    user = (await session.execute(user_by_email(normalise_email(email)))).scalars().first()
    if user is None or user.status != "active":
        raise NoSuchActor(f"No active account has the e-mail {email!r}.")
    system = require_scope(session)
    bind_scope(session, Scope.for_system(actor_id=user.id))
    try:
        held = [
            role
            for membership, member_of, role in await memberships(session)
            if member_of.id == tenant.id and membership.status == "active"
        ]
    finally:
        bind_scope(session, system)
    if not held:
        raise NoSuchActor(f"{email} is not an active member of {tenant.code}.")
    role = held[0]
    permissions = permissions_for_role(role.name, role.permissions)
    linked: dict[str, uuid.UUID | None] = {}
    for model, name in ((Agent, SystemRole.agent.value), (Broker, SystemRole.broker.value)):
        if role.name == name:
            bind_scope(session, operator)  # the tenant's partner records, whoever's
            try:
                found = (await session.execute(select(model.id).where(model.user_id == user.id))).scalar()
            finally:
                bind_scope(session, system)
            linked[f"{'agent' if model is Agent else 'broker'}_id"] = found
    return Scope(tenant_id=tenant.id, actor_id=user.id, role=role.name, permissions=permissions, **linked)
