"""Candidates: register, read, change, list and search; the pipeline's manual moves; likely duplicates;
merging a duplicate into the record that survives; the history of a record. Who sees which candidates is the row rules' (authz/rules.py); who may send
which fields, the service's (schemas.py shapes). Internal notes are shown to staff only (null
otherwise)."""

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, Response, UploadFile, status
from fastapi.responses import StreamingResponse
from pydantic import TypeAdapter

from mobility.candidates import exports, imports, merge, service
from mobility.candidates.models import Candidate
from mobility.candidates.schemas import (
    CandidateCreate,
    CandidateCreated,
    CandidateFilterParams,
    CandidateHistoryEntry,
    CandidateHistoryParams,
    CandidateImportParams,
    CandidateImportReport,
    CandidateListParams,
    CandidateMergeRequest,
    CandidateMergeResult,
    CandidateStaffRead,
    CandidateUpdate,
    PossibleDuplicateRead,
    StatusChange,
)
from mobility.core.auth import client_address, require
from mobility.core.deps import DbSession, FileStore
from mobility.core.errors import PROBLEM_JSON
from mobility.core.openapi import PROBLEM_REF, problem_responses
from mobility.core.pagination import Page
from mobility.core.responses import json_response
from mobility.core.routing import ApiRoute
from mobility.core.uploads import content_disposition

router = APIRouter(prefix="/api/v1", tags=["candidates"], route_class=ApiRoute)

# A merged-away record (service.get_candidate): reading it answers 308 with the survivor's URL,
# anything else 409 `candidate_merged`; both name `survivorId`.
MERGED_REDIRECT = {
    308: {
        "description": "The candidate was merged into another record: `Location` is the survivor's URL, "
        "`survivorId` its id (problem `candidate_merged`)",
        "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
        "headers": {"Location": {"schema": {"type": "string"}, "description": "The survivor's URL"}},
    }
}


def _shown(candidate: Candidate, staff: bool) -> CandidateStaffRead:
    read = CandidateStaffRead.model_validate(candidate)
    return read if staff else read.model_copy(update={"notes": None})


_PAGE_ITEMS = TypeAdapter(list[CandidateStaffRead])
_READ_FIELDS = tuple(CandidateStaffRead.model_fields)


@router.get("/candidates", response_model=Page[CandidateStaffRead], dependencies=[require("candidates:read")])
async def list_candidates(session: DbSession, params: Annotated[CandidateListParams, Query()]):
    filters = service.CandidateFilters.of(params)
    rows, next_cursor = await service.list_candidate_values(
        session, params=params, filters=filters, columns=_READ_FIELDS
    )
    if not service.is_staff(session):
        for row in rows:
            row["notes"] = None
    # The platform's busiest read: plain values (service.list_candidate_values), validated in one call
    # and serialized once (core/responses.py).
    items = _PAGE_ITEMS.validate_python(rows)
    return json_response(Page[CandidateStaffRead](items=items, next_cursor=next_cursor))


# Before /candidates/{candidate_id}: a path that is a literal must be matched before the pattern.
@router.get(
    "/candidates/export.csv",
    response_class=StreamingResponse,
    dependencies=[require("candidates:read")],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV, UTF-8"}},
)
async def export_candidates_csv(
    request: Request, session: DbSession, params: Annotated[CandidateFilterParams, Query()]
):
    """The candidates of the list (same filters, search, order and row rules) as CSV, streamed; cells
    that a spreadsheet would run as formulas start with an apostrophe (candidates/exports.py). Each
    export is recorded in the activity log (who, when, from where, which filters)."""
    return await _export(request, session, params, "csv")


@router.get(
    "/candidates/export.xlsx",
    response_class=StreamingResponse,
    dependencies=[require("candidates:read")],
    responses={
        200: {"content": {exports.XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}
    },
)
async def export_candidates_xlsx(
    request: Request, session: DbSession, params: Annotated[CandidateFilterParams, Query()]
):
    """The candidates of the list as an Excel workbook (.xlsx), streamed; recorded as the CSV's is."""
    return await _export(request, session, params, "xlsx")


async def _export(
    request: Request, session: DbSession, params: CandidateFilterParams, fmt: str
) -> StreamingResponse:
    body = await exports.export(session, params, fmt, ip=client_address(request))
    media_type = exports.CSV_MEDIA_TYPE if fmt == "csv" else exports.XLSX_MEDIA_TYPE
    name = f"candidates-{date.today().isoformat()}.{fmt}"
    return StreamingResponse(
        body, media_type=media_type, headers={"Content-Disposition": content_disposition(name)}
    )


@router.post(
    "/candidates/import",
    response_model=CandidateImportReport,
    dependencies=[require("candidates:create")],
    responses=problem_responses(409, 413, 415),
)
async def import_candidates(
    request: Request,
    session: DbSession,
    params: Annotated[CandidateImportParams, Query()],
    file: Annotated[UploadFile, File(description="CSV (UTF-8) or .xlsx; README: the columns")],
):
    """Register the candidates of a spreadsheet, every row checked as `POST /candidates` checks one
    (duplicates within the file too). All or nothing: one refused row refuses the file (422
    `import_rejected` with the report: each refused row's line and reasons), unless `skipInvalid`.
    `dryRun` checks and writes nothing (200 with the report, refused rows included). 413 past the upload cap, 415 for a file that is neither CSV
    text nor a workbook."""
    settings = request.app.state.settings
    limits = imports.ImportLimits(
        max_bytes=settings.max_file_bytes,
        max_unpacked_bytes=imports.API_UNPACK_FACTOR * settings.max_file_bytes,
    )
    report = await imports.import_candidates(
        session, file.file, dry_run=params.dry_run, skip_invalid=params.skip_invalid, limits=limits
    )
    read = CandidateImportReport.model_validate(report)
    if report.rejected and not report.written and not report.dry_run:
        raise imports.ImportRejected(
            f"{report.summary()[:1].upper()}{report.summary()[1:]}.",
            **read.model_dump(mode="json", by_alias=True),
        )
    return read


@router.post(
    "/candidates",
    response_model=CandidateCreated,
    status_code=status.HTTP_201_CREATED,
    dependencies=[require("candidates:create")],
    responses=problem_responses(409),
)
async def create_candidate(body: CandidateCreate, session: DbSession):
    """Staff send the whole shape; an Agent or Broker the profile only (the candidate is linked to the
    caller's partner record; `agentId`, `brokerId` and `notes` are refused). 409 for the same passport,
    national id or e-mail as a registered candidate, or a partner that may not register candidates."""
    registered = await service.create_candidate(session, body)
    read = _shown(registered.candidate, service.is_staff(session))
    return CandidateCreated(
        **read.model_dump(),
        possible_duplicates=[
            PossibleDuplicateRead.model_validate(item) for item in registered.possible_duplicates
        ],
    )


@router.get(
    "/candidates/{candidate_id}",
    response_model=CandidateStaffRead,
    dependencies=[require("candidates:read")],
    responses=MERGED_REDIRECT,
)
async def get_candidate(candidate_id: uuid.UUID, session: DbSession):
    """308 `candidate_merged` for a record merged into another (`Location`: the survivor)."""
    return _shown(await service.get_candidate(session, candidate_id, reading=True), service.is_staff(session))


@router.patch(
    "/candidates/{candidate_id}",
    response_model=CandidateStaffRead,
    dependencies=[require("candidates:update")],
    responses=problem_responses(409),
)
async def update_candidate(candidate_id: uuid.UUID, body: CandidateUpdate, session: DbSession):
    """Staff change the profile, the partner links and the notes; an Agent or Broker the profile; the
    candidate themself their e-mail, phone, address and emergency contact. Never the status. 409
    `candidate_merged` (with `survivorId`) for a record merged into another."""
    candidate = await service.update_candidate(session, candidate_id, body)
    return _shown(candidate, service.is_staff(session))


@router.post(
    "/candidates/{candidate_id}/status",
    response_model=CandidateStaffRead,
    dependencies=[require("candidates:update")],
    responses=problem_responses(409),
)
async def change_candidate_status(candidate_id: uuid.UUID, body: StatusChange, session: DbSession):
    """A manual move along the pipeline (withdrawing included). 409 `transition_not_allowed` lists
    the moves allowed from the current status (`allowedTransitions`), `candidate_merged` for a record
    merged into another; 422 when the move needs a reason. A partner may only withdraw its own
    candidates."""
    candidate = await service.manual_status_change(
        session, candidate_id, target=body.status, reason=body.reason
    )
    return _shown(candidate, service.is_staff(session))


@router.get(
    "/candidates/{candidate_id}/history",
    response_model=Page[CandidateHistoryEntry],
    dependencies=[require("candidates:read")],
    responses=problem_responses(409),
)
async def get_candidate_history(
    candidate_id: uuid.UUID, session: DbSession, params: Annotated[CandidateHistoryParams, Query()]
):
    """Every registration, edit, status change and merge of the record, and of the records merged into
    it, oldest first, from the audit trail. 409 `candidate_merged` (with `survivorId`) for a record
    merged into another: its history is in the survivor's. Keyset pages (`limit`, `cursor`)."""
    entries, next_cursor = await service.history(session, candidate_id, params)
    return Page[CandidateHistoryEntry](
        items=[CandidateHistoryEntry.model_validate(entry) for entry in entries], next_cursor=next_cursor
    )


@router.get(
    "/candidates/{candidate_id}/possible-duplicates",
    response_model=list[PossibleDuplicateRead],
    dependencies=[require("candidates:read")],
    responses=problem_responses(409),
)
async def list_possible_duplicates(candidate_id: uuid.UUID, session: DbSession):
    """Candidates with the same date of birth and a similar name (not refused: staff merge them with
    `POST /candidates/{id}/merge`). 409 `candidate_merged` for a record merged into another."""
    return await service.possible_duplicates_of(session, candidate_id)


@router.delete(
    "/candidates/{candidate_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    dependencies=[require("candidates:delete")],
    responses=problem_responses(409),
)
async def delete_candidate(candidate_id: uuid.UUID, session: DbSession, storage: FileStore):
    """Admin: delete a candidate with its documents (their files once the deletion is committed) and
    vetting records. 409 `candidate_in_use` while enrollments, placements, payments or invoices refer
    to it (`references` counts them): withdraw the candidate instead."""
    await service.delete_candidate(session, storage, candidate_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/candidates/{candidate_id}/merge",
    response_model=CandidateMergeResult,
    dependencies=[require("candidates:delete")],
    responses=problem_responses(409),
)
async def merge_candidates(candidate_id: uuid.UUID, body: CandidateMergeRequest, session: DbSession):
    """Fold the record `duplicateCandidateId` into this one (the survivor), in one transaction: its
    documents, enrollments (with their attendance, assessments and certificates), vetting records,
    placements, payments and invoices move here; this record's empty fields are filled from it; it is
    kept as a tombstone pointing here. 409: `merge_conflict` listing `conflicts` (both enrolled in one
    course, both with a login, the duplicate further along the pipeline), `merge_not_allowed` (a
    record into itself), `candidate_merged` (either is a tombstone), `duplicate_candidate`. 422: no
    such duplicate. Rules: candidates/merge.py."""
    merged = await merge.merge_candidates(
        session, survivor_id=candidate_id, duplicate_id=body.duplicate_candidate_id
    )
    return CandidateMergeResult(
        survivor=CandidateStaffRead.model_validate(merged.survivor),
        merged_id=merged.merged_id,
        moved=merged.moved,
        filled_fields=merged.filled_fields,
    )
