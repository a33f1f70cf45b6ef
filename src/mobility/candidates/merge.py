"""Merging candidates: a duplicate record folded into the one that survives (issue 12, part 5).

`merge_candidates(session, survivor_id=..., duplicate_id=...)`, in the request's one transaction: all
of it happens, or (a refusal, a conflict, a failure) nothing does.

What moves. Every row that refers to the duplicate is made to refer to the survivor (`MOVED`: one entry
per foreign key to candidates, checked against the models by tests/candidates/test_merge.py, so a new
child table fails the suite until it is handled here). Rows that hang off those rows follow them
unchanged (`FOLLOWING`: attendance, assessments and certificates hang off their enrollment). Records
merged into the duplicate earlier are made to point at the survivor too (no chains of tombstones).

Refused, 409, before anything changes:
- merging a record into itself (`merge_not_allowed`); a merged-away record as survivor or duplicate
  (`candidate_merged`, with `survivorId`: the tombstone rule of service.get_candidate);
- `merge_conflict`, listing every conflict found (`conflicts: [...]`, each with its `kind`):
  - `enrollment`: both records are enrolled in the same course (an enrollment is unique per course and
    candidate, and which one's attendance, assessments and certificate count is the institute's call):
    withdraw or remove one first. Names the course and both enrollments.
  - `login`: both records have a login (`userId`): one person, one login; remove one first. When only
    the duplicate has one, the survivor takes it.
  - `status`: the duplicate is further along the pipeline than the survivor (main path order:
    registered, in_training, trained, vetting, ready, placed, deployed, returned), or the duplicate is
    open while the survivor is withdrawn or rejected. The status changes only along the pipeline's
    moves (pipeline.py), and a merge is not one of them: merge the other way round (the further record
    survives), or move the survivor first. A withdrawn or rejected duplicate never conflicts; the
    survivor keeps its own status.

Documents: the two records' versions come together, and of each type a person holds one of at a time
one stays current (documents.service.reconcile_versions: the latest upload that is not rejected; the
others become versions it superseded, kept as history).

Profile fields: the survivor's values win; a field the survivor has empty (null, an empty list) is
filled from the duplicate (`FILLED`, and the passport number and expiry as one: taken together when the
survivor has no passport number). One exception: the passport fields follow the current passport
document, as on an upload, so when that document came from the duplicate (and is not rejected and
has a number), its number and expiry are the survivor's. The partner links and the login follow the same rule. The
duplicate's values that were not taken stay on the tombstone and in its history (which the survivor's
history includes). The survivor's duplicate keys are recomputed, and a key that another record holds
is refused as on an edit (409 `duplicate_candidate`).

The tombstone: the duplicate stays, with `mergedIntoId`, `mergedAt`, `mergedBy`; its duplicate keys
(passport, national id, e-mail) and its login are cleared, so the survivor can hold them. It is hidden
from lists, searches and likely duplicates, and its id answers with the survivor's (service.py).

The audit trail: the per-row entries of the data layer (`candidate.merge.move` for each row moved,
`candidate.merged` for the tombstone), and one `candidate.merge` entry on the survivor whose `after`
holds the fields filled and `merge`: the duplicate's id and reference and, per table, the ids moved.
The survivor's history shows it (and, for staff, `merge`).

Who: staff holding `candidates:delete` (a merge ends a record; the Admins): the whole tenant is visible
to them, so every row of the two records is moved.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.candidates import pipeline, service
from mobility.candidates.models import Candidate, CandidateDocument, CandidateStatus
from mobility.core import audit
from mobility.core.errors import Conflict
from mobility.core.models import utcnow
from mobility.core.scope import require_scope
from mobility.documents import service as documents_service
from mobility.documents.models import DocumentStatus, DocumentType
from mobility.finance.models import Invoice, Payment
from mobility.placements.models import Placement
from mobility.training.models import Assessment, AttendanceRecord, Certificate, Enrollment
from mobility.vetting.models import VettingRecord

# Every reference to a candidate, as (model, attribute): its rows move to the survivor.
MOVED: tuple[tuple[type, str], ...] = (
    (CandidateDocument, "candidate_id"),
    (Enrollment, "candidate_id"),
    (VettingRecord, "candidate_id"),
    (Placement, "candidate_id"),
    (Payment, "candidate_id"),
    (Invoice, "candidate_id"),
)
# References to a candidate that are not moved, and why.
NOT_MOVED: dict[tuple[str, str], str] = {
    ("candidates", "mergedIntoId"): "a tombstone's pointer: records merged into the duplicate are "
    "pointed at the survivor (`_repoint_tombstones`)",
}
# Rows that hang off a moved row and follow it unchanged: (model, attribute, the model it refers to).
FOLLOWING: tuple[tuple[type, str, type], ...] = (
    (AttendanceRecord, "enrollment_id", Enrollment),
    (Assessment, "enrollment_id", Enrollment),
    (Certificate, "enrollment_id", Enrollment),
)
# Profile fields filled from the duplicate where the survivor's are empty (the passport is `_passport`).
FILLED: tuple[str, ...] = (
    "middle_name",
    "date_of_birth",
    "gender",
    "nationality",
    "national_id",
    "email",
    "phone",
    "address",
    "emergency_contact",
    "skills",
    "languages",
    "education",
    "work_history",
    "photo_url",
    "cv_url",
    "agent_id",
    "broker_id",
    "notes",
    "user_id",
)
MAIN_PATH: tuple[CandidateStatus, ...] = tuple(s for s in pipeline.ORDER if s not in pipeline.CLOSED)


class MergeNotAllowed(Conflict):
    code, title = "merge_not_allowed", "These records cannot be merged"


class MergeConflict(Conflict):
    """409 listing every conflict (`conflicts`), so that all can be resolved before the next try."""

    code, title = "merge_conflict", "The records conflict"

    def __init__(self, conflicts: list[dict[str, Any]]) -> None:
        kinds = sorted({conflict["kind"] for conflict in conflicts})
        super().__init__(
            f"The records cannot be merged as they are ({', '.join(kinds)}): see `conflicts`.",
            conflicts=conflicts,
        )


@dataclass
class Merged:
    survivor: Candidate
    merged_id: uuid.UUID
    moved: dict[str, list[uuid.UUID]] = field(default_factory=dict)
    filled_fields: list[str] = field(default_factory=list)


def status_conflicts(survivor: CandidateStatus, duplicate: CandidateStatus) -> bool:
    """Whether the duplicate's status forbids the merge (module doc: `status`)."""
    if duplicate in pipeline.CLOSED:
        return False
    if survivor in pipeline.CLOSED:
        return True
    return MAIN_PATH.index(duplicate) > MAIN_PATH.index(survivor)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


async def _rows_of(session: AsyncSession, model: type, attribute: str, ids: list[uuid.UUID]) -> list[Any]:
    if not ids:
        return []
    column = getattr(model, attribute)
    return list((await session.execute(select(model).where(column.in_(ids)).order_by(model.id))).scalars())


async def _lock(session: AsyncSession, *ids: uuid.UUID) -> None:
    """Both records locked (in id order) until the transaction ends: two merges of the same records,
    or a merge and an edit, run one after the other (on SQLite, the database's write lock: core.db)."""
    await session.execute(
        select(Candidate.id).where(Candidate.id.in_(ids)).order_by(Candidate.id).with_for_update()
    )


def _conflicts(
    survivor: Candidate, duplicate: Candidate, enrollments: dict[uuid.UUID, list[Enrollment]]
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    by_course = {row.course_id: row for row in enrollments[survivor.id]}
    for row in enrollments[duplicate.id]:
        theirs = by_course.get(row.course_id)
        if theirs is not None:
            found.append(
                {
                    "kind": "enrollment",
                    "courseId": str(row.course_id),
                    "survivorEnrollmentId": str(theirs.id),
                    "duplicateEnrollmentId": str(row.id),
                }
            )
    if survivor.user_id is not None and duplicate.user_id is not None:
        found.append(
            {
                "kind": "login",
                "survivorUserId": str(survivor.user_id),
                "duplicateUserId": str(duplicate.user_id),
            }
        )
    if status_conflicts(survivor.status, duplicate.status):
        found.append(
            {
                "kind": "status",
                "survivorStatus": survivor.status.value,
                "duplicateStatus": duplicate.status.value,
            }
        )
    return found


def _fill(survivor: Candidate, duplicate: dict[str, Any]) -> list[str]:
    """The survivor's empty fields taken from the duplicate's values (module doc); those filled."""
    filled = []
    for name in FILLED:
        theirs = duplicate[name]
        if _empty(getattr(survivor, name)) and not _empty(theirs):
            setattr(survivor, name, theirs)
            filled.append(name)
    if survivor.passport_number is None and duplicate["passport_number"] is not None:
        survivor.passport_number = duplicate["passport_number"]
        survivor.passport_expiry = duplicate["passport_expiry"]
        filled += (
            ["passport_number", "passport_expiry"] if duplicate["passport_expiry"] else ["passport_number"]
        )
    return filled


async def merge_candidates(
    session: AsyncSession, *, survivor_id: uuid.UUID, duplicate_id: uuid.UUID
) -> Merged:
    """Fold the duplicate into the survivor (module doc); the survivor, and what moved."""
    scope = require_scope(session)
    await _lock(session, survivor_id, duplicate_id)
    survivor = await service.get_candidate(session, survivor_id)
    if duplicate_id == survivor_id:
        raise MergeNotAllowed("A record cannot be merged into itself.")
    duplicate = await service.get_candidate(session, duplicate_id, field_name="duplicateCandidateId")

    both = [survivor.id, duplicate.id]
    enrollments: dict[uuid.UUID, list[Enrollment]] = {survivor.id: [], duplicate.id: []}
    for row in await _rows_of(session, Enrollment, "candidate_id", both):
        enrollments[row.candidate_id].append(row)
    conflicts = _conflicts(survivor, duplicate, enrollments)
    if conflicts:
        raise MergeConflict(conflicts)

    # 1. Every row of the duplicate's, to the survivor (one entry per row in the trail).
    moved: dict[str, list[uuid.UUID]] = {}
    for model, attribute in MOVED:
        rows = await _rows_of(session, model, attribute, [duplicate.id])
        for row in rows:
            setattr(row, attribute, survivor.id)
        moved[model.__tablename__] = [row.id for row in rows]
    for model, attribute, parent in FOLLOWING:
        rows = await _rows_of(session, model, attribute, moved[parent.__tablename__])
        moved[model.__tablename__] = [row.id for row in rows]
    tombstones = await _rows_of(session, Candidate, "merged_into_id", [duplicate.id])
    for tombstone in tombstones:
        tombstone.merged_into_id = survivor.id
    moved["tombstones"] = [tombstone.id for tombstone in tombstones]
    await audit.flush_as(session, "candidate.merge.move", conflict="A record was changed meanwhile.")
    current_documents = await documents_service.reconcile_versions(session, survivor.id)

    # 2. The duplicate becomes a tombstone, giving up its keys and login first (they are unique).
    values = {name: getattr(duplicate, name) for name in (*FILLED, "passport_number", "passport_expiry")}
    duplicate.merged_into_id, duplicate.merged_at, duplicate.merged_by = survivor.id, utcnow(), scope.actor_id
    duplicate.passport_key = duplicate.national_id_key = duplicate.email_key = None
    duplicate.user_id = None
    await audit.flush_as(session, "candidate.merged", conflict="The record was changed meanwhile.")

    # 3. The survivor: its empty fields filled, its keys recomputed; the one `candidate.merge` entry.
    filled = _fill(survivor, values)
    passport = current_documents.get(DocumentType.passport)
    if (
        passport is not None
        and passport.id in moved[CandidateDocument.__tablename__]
        and passport.status != DocumentStatus.rejected
        and passport.document_number
        and (passport.document_number, passport.expires_on)
        != (survivor.passport_number, survivor.passport_expiry)
    ):
        survivor.passport_number, survivor.passport_expiry = passport.document_number, passport.expires_on
        filled = [name for name in filled if not name.startswith("passport_")]
        filled += ["passport_number", "passport_expiry"]
    service._refresh_keys(survivor)
    await service._ensure_no_duplicate(session, survivor)
    survivor.updated_at = utcnow()  # the entry is written even when no field was empty
    names = {attr.key: attr.columns[0].name for attr in Candidate.__mapper__.column_attrs}
    summary = {
        "duplicateId": str(duplicate.id),
        "duplicateReference": duplicate.reference_number,
        "moved": {table: [str(row_id) for row_id in ids] for table, ids in moved.items()},
        "filledFields": [names[name] for name in filled],
    }
    await audit.flush_as(
        session,
        "candidate.merge",
        conflict="The candidate is registered already.",
        details={"merge": summary},
    )
    return Merged(survivor, duplicate.id, moved, [names[name] for name in filled])


__all__ = [
    "FILLED",
    "FOLLOWING",
    "MOVED",
    "NOT_MOVED",
    "MergeConflict",
    "MergeNotAllowed",
    "Merged",
    "merge_candidates",
]
