"""Exporting candidates (issue 12, part 8): `GET /api/v1/candidates/export.csv` and `export.xlsx`.

- The rows: the list's (`GET /candidates`): the same filters, text search and order, and the same row
  rules (a partner exports its own candidates, a candidate their own record); internal notes only for
  staff. Read by keyset pages of `PAGE_SIZE` through the whole set, each page written out and dropped
  before the next is read: memory stays flat however many rows, and the first bytes leave at once.
  The first page is read before the answer starts, so a bad filter is a 422 like the list's.
- The columns: `export_columns`: the id, reference number and status, then the fields as the import
  reads them (imports.COLUMNS, under their labels: an export, less its system columns, imports
  again), the registration and change times (UTC, ISO 8601). Dates are YYYY-MM-DD text. Skills and
  languages as `Welding; Forklift operation` and `en C1; fj native` when that says everything, else
  JSON; education and work history as JSON.
- CSV: UTF-8 with a byte-order mark (so Excel reads it as UTF-8), comma-separated, CRLF lines
  (RFC 4180). Formula injection: a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return
  would be run as a formula by a spreadsheet opening the file; it is written with a leading
  apostrophe (`'=HYPERLINK(...)`, also `'+6791234567`), which spreadsheets show as text. The import
  drops that apostrophe again.
- Recorded: every export is an entry of the activity log (`candidates_exported`: who, the tenant, the
  format, the filters, the address), written with the request's transaction, which commits before
  the first byte leaves: a bulk copy of people's personal data is something a data-protection
  officer asks about afterwards.
- XLSX: written as it streams (a ZIP with data descriptors, no temporary file): one worksheet, every
  cell an inline string, never a formula, so no cell needs the apostrophe; the header row bold and
  frozen.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any
from xml.sax.saxutils import escape

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.agents.models import Agent, Broker
from mobility.auth.activity import record_activity
from mobility.candidates import service
from mobility.candidates.imports import COLUMNS, _column_letter
from mobility.candidates.models import Candidate
from mobility.candidates.schemas import CandidateFilterParams
from mobility.core.pagination import PageParams
from mobility.core.scope import require_scope

PAGE_SIZE = 500
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

Cell = Callable[[Candidate, "_Codes"], str | None]


# --- the columns ---------------------------------------------------------------------------------


def _json(value: Any) -> str | None:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) if value else None


def _skills(items: list[dict[str, Any]]) -> str | None:
    if items and all(set(item) == {"name"} and ";" not in item["name"] for item in items):
        return "; ".join(item["name"] for item in items)
    return _json(items)


def _languages(items: list[dict[str, Any]]) -> str | None:
    return "; ".join(f"{item['code']} {item['level']}" for item in items) if items else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(getattr(value, "value", value))


def _field(name: str) -> Cell:
    """A cell of a column of imports.COLUMNS, from the candidate's attribute."""
    whole, dot, part = name.partition(".")
    attribute = re.sub(r"(?<!^)([A-Z])", r"_\1", whole).lower()
    if dot:
        return lambda row, _codes: _text((getattr(row, attribute) or {}).get(part))
    if name == "skills":
        return lambda row, _codes: _skills(row.skills or [])
    if name == "languages":
        return lambda row, _codes: _languages(row.languages or [])
    if name in ("education", "workHistory"):
        return lambda row, _codes: _json(getattr(row, attribute) or [])
    return lambda row, _codes: _text(getattr(row, attribute))


_SKIPPED = {"address", "emergencyContact", "agentId", "brokerId"}  # given in parts, or by code


def export_columns(staff: bool) -> list[tuple[str, Cell]]:
    """(header, cell) of each column of an export; `notes` for staff only."""
    columns: list[tuple[str, Cell]] = [
        ("Id", lambda row, _codes: str(row.id)),
        ("Reference number", lambda row, _codes: row.reference_number),
        ("Status", lambda row, _codes: _text(row.status)),
    ]
    for column in COLUMNS:
        if column.field in _SKIPPED or (column.staff_only and not staff and column.field == "notes"):
            continue
        if column.field == "agentCode":
            columns.append((column.label, lambda row, codes: codes.agents.get(row.agent_id)))
        elif column.field == "brokerCode":
            columns.append((column.label, lambda row, codes: codes.brokers.get(row.broker_id)))
        else:
            columns.append((column.label, _field(column.field)))
    columns += [
        ("Registered at", lambda row, _codes: _text(row.created_at)),
        ("Updated at", lambda row, _codes: _text(row.updated_at)),
    ]
    return columns


class _Codes:
    """The codes of the partners the exported rows name, looked up once per partner."""

    def __init__(self) -> None:
        self.agents: dict[Any, str] = {}
        self.brokers: dict[Any, str] = {}

    async def learn(self, session: AsyncSession, rows: list[Candidate]) -> None:
        for model, known, attribute in (
            (Agent, self.agents, "agent_id"),
            (Broker, self.brokers, "broker_id"),
        ):
            wanted = {getattr(row, attribute) for row in rows} - set(known) - {None}
            if wanted:
                found = await session.execute(select(model.id, model.code).where(model.id.in_(wanted)))
                known.update(dict(found.tuples().all()))


def protect(text: str) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (see the module's doc)."""
    return "'" + text if text.startswith(FORMULA_START) else text


# --- reading the rows ----------------------------------------------------------------------------


async def _pages(session: AsyncSession, params: CandidateFilterParams) -> AsyncIterator[list[Candidate]]:
    """The pages of the list through the whole set; the first is read before this returns."""
    filters = service.CandidateFilters.of(params)
    page = PageParams.model_construct(limit=PAGE_SIZE, cursor=None, sort=params.sort)
    rows, cursor = await service.list_candidates(session, params=page, filters=filters)

    async def pages() -> AsyncIterator[list[Candidate]]:
        nonlocal rows, cursor
        while True:
            yield rows
            for row in rows:
                session.expunge(row)
            if cursor is None:
                return
            next_page = PageParams.model_construct(limit=PAGE_SIZE, cursor=cursor, sort=params.sort)
            rows, cursor = await service.list_candidates(session, params=next_page, filters=filters)

    return pages()


async def export(
    session: AsyncSession, params: CandidateFilterParams, fmt: str, *, ip: str | None = None
) -> AsyncIterator[bytes]:
    """The export's bytes as they are made, `fmt` "csv" or "xlsx"; the first page (and any error in
    the filters) is read before this returns, and the export recorded (module doc)."""
    staff = service.is_staff(session)
    columns = export_columns(staff)
    pages = await _pages(session, params)
    scope = require_scope(session)
    record_activity(
        session,
        "candidates_exported",
        user_id=scope.actor_id,
        ip=ip,
        tenantId=str(scope.tenant_id),
        format=fmt,
        filters=params.model_dump(mode="json", by_alias=True, exclude_none=True),
    )
    codes = _Codes()

    async def rows() -> AsyncIterator[list[list[str | None]]]:
        async for page in pages:
            await codes.learn(session, page)
            yield [[cell(row, codes) for _header, cell in columns] for row in page]

    header = [name for name, _cell in columns]
    return _csv(header, rows()) if fmt == "csv" else _xlsx(header, rows())


# --- CSV -----------------------------------------------------------------------------------------


async def _csv(header: list[str], pages: AsyncIterator[list[list[str | None]]]) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    yield b"\xef\xbb\xbf" + buffer.getvalue().encode()
    async for page in pages:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([protect(cell) if cell else "" for cell in row] for row in page)
        yield buffer.getvalue().encode()


# --- XLSX ----------------------------------------------------------------------------------------

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_PARTS = {
    "[Content_Types].xml": (
        f'{_XML}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/styles.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        "</Types>"
    ),
    "_rels/.rels": (
        f'{_XML}<Relationships xmlns="{_RELS}"><Relationship Id="rId1" '
        f'Type="{_DOC_RELS}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
    ),
    "xl/workbook.xml": (
        f'{_XML}<workbook xmlns="{_MAIN}" xmlns:r="{_DOC_RELS}"><sheets>'
        '<sheet name="Candidates" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        f'{_XML}<Relationships xmlns="{_RELS}">'
        f'<Relationship Id="rId1" Type="{_DOC_RELS}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{_DOC_RELS}/styles" Target="styles.xml"/></Relationships>'
    ),
    "xl/styles.xml": (
        f'{_XML}<styleSheet xmlns="{_MAIN}">'
        '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
        '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
        '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        "</styleSheet>"
    ),
}
_SHEET_START = (
    f'{_XML}<worksheet xmlns="{_MAIN}"><sheetViews><sheetView workbookViewId="0">'
    '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>'
    "<sheetData>"
)
_SHEET_END = "</sheetData></worksheet>"
# Characters XML 1.0 cannot hold at all.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class _Sink:
    """Where the ZIP writer writes: no seek or tell, so zipfile streams (data descriptors)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


def _row_xml(number: int, letters: list[str], cells: Iterable[str | None], style: str = "") -> str:
    parts = [f'<row r="{number}">']
    for letter, value in zip(letters, cells, strict=True):
        if not value:
            continue
        text = escape(_NOT_XML.sub("", value))
        space = ' xml:space="preserve"' if text != text.strip() or "\n" in text else ""
        parts.append(f'<c r="{letter}{number}" t="inlineStr"{style}><is><t{space}>{text}</t></is></c>')
    parts.append("</row>")
    return "".join(parts)


async def _xlsx(header: list[str], pages: AsyncIterator[list[list[str | None]]]) -> AsyncIterator[bytes]:
    sink = _Sink()
    letters = [_column_letter(index) for index in range(len(header))]
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:  # type: ignore[arg-type]
        for name, text in _PARTS.items():
            archive.writestr(name, text)
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write((_SHEET_START + _row_xml(1, letters, header, ' s="1"')).encode())
            yield sink.take()
            number = 1
            async for page in pages:
                chunk = []
                for cells in page:
                    number += 1
                    chunk.append(_row_xml(number, letters, cells))
                sheet.write("".join(chunk).encode())
                yield sink.take()
            sheet.write(_SHEET_END.encode())
    yield sink.take()
