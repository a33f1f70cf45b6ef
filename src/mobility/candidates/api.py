"""Candidates: register, read, change, list and search; the pipeline's manual moves; likely duplicates;
the history of a record. Who sees which candidates is the row rules' (authz/rules.py); who may send
which fields, the service's (schemas.py shapes). Internal notes are shown to staff only (null
otherwise)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from mobility.candidates import service
from mobility.candidates.models import Candidate
from mobility.candidates.schemas import (
    CandidateCreate,
    CandidateCreated,
    CandidateHistoryEntry,
    CandidateListParams,
    CandidateStaffRead,
    CandidateUpdate,
    PossibleDuplicateRead,
    StatusChange,
)
from mobility.core.auth import require
from mobility.core.deps import DbSession, FileStore
from mobility.core.openapi import problem_responses
from mobility.core.pagination import Page
from mobility.core.routing import ApiRoute

router = APIRouter(prefix="/api/v1", tags=["candidates"], route_class=ApiRoute)


def _shown(candidate: Candidate, staff: bool) -> CandidateStaffRead:
    read = CandidateStaffRead.model_validate(candidate)
    return read if staff else read.model_copy(update={"notes": None})


@router.get("/candidates", response_model=Page[CandidateStaffRead], dependencies=[require("candidates:read")])
async def list_candidates(session: DbSession, params: Annotated[CandidateListParams, Query()]):
    filters = service.CandidateFilters(
        status=params.status,
        agent_id=params.agent_id,
        broker_id=params.broker_id,
        nationality=params.nationality,
        created_from=params.created_from,
        created_to=params.created_to,
        passport_expiring_before=params.passport_expiring_before,
        q=params.q,
    )
    rows, next_cursor = await service.list_candidates(session, params=params, filters=filters)
    staff = service.is_staff(session)
    return Page[CandidateStaffRead](items=[_shown(row, staff) for row in rows], next_cursor=next_cursor)


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
    "/candidates/{candidate_id}", response_model=CandidateStaffRead, dependencies=[require("candidates:read")]
)
async def get_candidate(candidate_id: uuid.UUID, session: DbSession):
    return _shown(await service.get_candidate(session, candidate_id), service.is_staff(session))


@router.patch(
    "/candidates/{candidate_id}",
    response_model=CandidateStaffRead,
    dependencies=[require("candidates:update")],
    responses=problem_responses(409),
)
async def update_candidate(candidate_id: uuid.UUID, body: CandidateUpdate, session: DbSession):
    """Staff change the profile, the partner links and the notes; an Agent or Broker the profile; the
    candidate themself their e-mail, phone, address and emergency contact. Never the status."""
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
    the moves allowed from the current status (`allowedTransitions`); 422 when the move needs a reason.
    A partner may only withdraw its own candidates."""
    candidate = await service.manual_status_change(
        session, candidate_id, target=body.status, reason=body.reason
    )
    return _shown(candidate, service.is_staff(session))


@router.get(
    "/candidates/{candidate_id}/history",
    response_model=list[CandidateHistoryEntry],
    dependencies=[require("candidates:read")],
)
async def get_candidate_history(candidate_id: uuid.UUID, session: DbSession):
    """Every registration, edit and status change of the record, oldest first, from the audit trail."""
    return await service.history(session, candidate_id)


@router.get(
    "/candidates/{candidate_id}/possible-duplicates",
    response_model=list[PossibleDuplicateRead],
    dependencies=[require("candidates:read")],
)
async def list_possible_duplicates(candidate_id: uuid.UUID, session: DbSession):
    """Candidates with the same date of birth and a similar name (not refused; merge comes later)."""
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
