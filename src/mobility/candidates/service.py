"""Candidates: register, read, change, move along the pipeline, list and search; duplicates; history.

Rules on top of the permission matrix and the row rules (authz/rules.py: a Candidate sees their own
record, an Agent or Broker the candidates linked to their partner record):
- Who sends which fields is the caller's shape (schemas.py): staff the whole profile, links and notes;
  an Agent or Broker the profile (the service links the candidate to the caller's own partner record);
  the candidate themself their contacts, address and emergency contact. A field outside the shape is
  refused with 422 naming it (`_check_shape`).
- A partner registers candidates only while the agents service's licensing rule lets it
  (`agents.service.ensure_can_register`: active, a licence on record, not expired; 409
  `partner_not_active` / `partner_unlicensed`); staff cannot link a candidate to such a partner either.
- The reference number `<tenant code>-<year>-<sequence>` comes from the tenant's counter row for the
  year, taken by an INSERT ... ON CONFLICT DO UPDATE ... RETURNING in the registering transaction
  (`_next_reference`): the row stays locked until the transaction ends, so concurrent registrations
  get distinct numbers, and a rolled-back registration gives its number back.
- The same passport (and nationality), national id (and nationality) or e-mail as another candidate of
  the tenant is refused (409 `duplicate_candidate`) naming that record's id and reference, unless the
  caller cannot see it (another partner's candidate): then the 409 carries no details. The keys are
  unique per tenant in the database too (0018), so a concurrent registration meets the key.
- Likely duplicates (same date of birth, similar names: duplicates.py) are listed, never refused:
  in the create answer and by `possible_duplicates`, among the candidates the caller may see.
- The status changes only through `change_status`, which asks pipeline.check_transition: the one
  function the other domains call too. Manual changes are staff's; a partner may only withdraw
  their own candidate; a candidate changes no status.
- The history of a candidate is its audit trail: every create, edit and status change (who, when,
  what), the records merged into it included. Partners and the candidate do not see the internal
  notes in it.
- A merged-away record (a tombstone, candidates/merge.py) is hidden from lists, searches and likely
  duplicates, and its id answers with the survivor's, never silently a 404 (`get_candidate`, the one
  place a candidate is fetched by id): reading the record is 308 `candidate_merged` to the survivor's
  URL, anything else (a change, a status move, its history) 409 `candidate_merged`; both carry
  `survivorId`. A caller who may not see the survivor gets the 404 they got before.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import Float, String, and_, bindparam, false, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from mobility.agents import service as partners
from mobility.audit.models import AuditLog
from mobility.authz.permissions import SystemRole
from mobility.candidates import duplicates, pipeline
from mobility.candidates.models import Candidate, CandidateReferenceCounter, CandidateStatus
from mobility.candidates.profile import PassportExpiry, normalise_national_id, normalise_passport_number
from mobility.candidates.reference import format_reference, parse_reference
from mobility.candidates.schemas import (
    CandidateCreate,
    CandidateFilterParams,
    CandidateSelfUpdate,
    CandidateUpdate,
    PartnerCandidateCreate,
    PartnerCandidateUpdate,
)
from mobility.core import audit
from mobility.core.errors import AppError, Conflict, Forbidden, InvalidInput, NotFound
from mobility.core.models import new_id, utcnow
from mobility.core.pagination import (
    Keyset,
    PageParams,
    _decode,
    _encode,
    _invalid_cursor,
    after_cursor,
    contains,
    ordered,
    paginate,
    text_key,
    time_key,
)
from mobility.core.reads import Read
from mobility.core.scope import Scope, across_tenants, get_visible, require_scope
from mobility.core.storage import FileStorage
from mobility.finance.models import Invoice, Payment
from mobility.placements.models import Placement
from mobility.tenants.models import Tenant
from mobility.training.models import Enrollment
from mobility.vetting.models import VettingRecord

CANDIDATE_SORT_KEYS = {"name": text_key(Candidate.last_name), "createdAt": time_key(Candidate.created_at)}
SEARCH_NAME_LENGTH = 600
HISTORY_SORT_KEYS = {"createdAt": time_key(AuditLog.created_at)}


class DuplicateCandidate(Conflict):
    code, title = "duplicate_candidate", "The candidate is registered already"


class NoPartnerRecord(Forbidden):
    code, title = "no_partner_record", "Your login is not linked to a partner record"


class StatusChangeNotYours(Forbidden):
    code, title = "status_change_not_allowed", "You may not make this status change"


class CandidateMerged(Conflict):
    """409: the record was merged into another (`survivorId`); change that one instead."""

    code, title = "candidate_merged", "The candidate was merged into another record"


class CandidateMovedPermanently(AppError):
    """308 Permanent Redirect: reading a merged-away record; `Location` is the survivor's URL."""

    status, code, title = 308, "candidate_merged", "The candidate was merged into another record"

    def headers(self) -> dict[str, str]:
        return {"Location": f"/api/v1/candidates/{self.extra['survivorId']}"}


# --- who is calling -----------------------------------------------------------------------------


def _kind(scope: Scope) -> str:
    """'staff', 'agent', 'broker' or 'candidate': which shape and which rules apply to the caller."""
    if scope.system or scope.is_system_admin:
        return "staff"
    if scope.role == SystemRole.agent:
        return "agent"
    if scope.role == SystemRole.broker:
        return "broker"
    if scope.role == SystemRole.candidate:
        return "candidate"
    return "staff"


def is_staff(session: AsyncSession) -> bool:
    return _kind(require_scope(session)) == "staff"


_CREATE_SHAPES: dict[str, type[BaseModel]] = {
    "staff": CandidateCreate,
    "agent": PartnerCandidateCreate,
    "broker": PartnerCandidateCreate,
}
_UPDATE_SHAPES: dict[str, type[BaseModel]] = {
    "staff": CandidateUpdate,
    "agent": PartnerCandidateUpdate,
    "broker": PartnerCandidateUpdate,
    "candidate": CandidateSelfUpdate,
}


def _check_shape(body: BaseModel, shape: type[BaseModel] | None) -> None:
    """422 for a field the caller may not send (the API reads the widest shape)."""
    if shape is None:
        raise Forbidden("You may not do this.")
    outside = sorted(name for name in body.model_fields_set if name not in shape.model_fields)
    if outside:
        alias = type(body).model_fields[outside[0]].alias or outside[0]
        raise InvalidInput(f"You may not set {alias}.", field=alias)


# --- keys ---------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _refresh_keys(candidate: Candidate) -> None:
    nationality = candidate.nationality
    candidate.passport_key = (
        duplicates.passport_key(candidate.passport_number, nationality)
        if candidate.passport_number and nationality
        else None
    )
    candidate.national_id_key = (
        duplicates.national_id_key(candidate.national_id, nationality)
        if candidate.national_id and nationality
        else None
    )
    candidate.email_key = duplicates.email_key(candidate.email) if candidate.email else None
    candidate.search_name = duplicates.name_key(candidate.first_name, candidate.last_name)[
        :SEARCH_NAME_LENGTH
    ]


async def _ensure_no_duplicate(session: AsyncSession, candidate: Candidate) -> None:
    """409 when another candidate of the tenant holds one of the record's absolute keys; its id and
    reference only when the caller may see it."""
    scope = require_scope(session)
    checks = [
        ("passport", Candidate.passport_key, candidate.passport_key),
        ("national id", Candidate.national_id_key, candidate.national_id_key),
        ("e-mail", Candidate.email_key, candidate.email_key),
    ]
    wanted = [(what, column == value) for what, column, value in checks if value is not None]
    if not wanted:
        return
    # The whole tenant, whatever the caller's row rule: a partner's candidate may duplicate another's.
    statement = select(Candidate.id, Candidate.reference_number, *(clause for _what, clause in wanted)).where(
        Candidate.tenant_id == scope.tenant_id, or_(*(clause for _what, clause in wanted))
    )
    if candidate.id is not None:
        statement = statement.where(Candidate.id != candidate.id)
    async with across_tenants(session):
        found = (await session.execute(statement.limit(1))).first()
    if found is None:
        return
    existing_id, reference, *matches = found
    what = next(name for (name, _clause), matched in zip(wanted, matches, strict=True) if matched)
    visible = (await session.execute(select(Candidate.id).where(Candidate.id == existing_id))).first()
    if visible is None:
        raise DuplicateCandidate(f"A candidate with the same {what} is registered already.", matches=what)
    raise DuplicateCandidate(
        f"A candidate with the same {what} is registered already: {reference}.",
        matches=what,
        existingId=str(existing_id),
        existingReference=reference,
    )


@dataclass(frozen=True)
class KeyHolder:
    """A registered candidate holding one of the duplicate keys asked about (`candidates_holding`)."""

    id: uuid.UUID
    reference_number: str
    passport_key: str | None
    national_id_key: str | None
    email_key: str | None
    visible: bool  # whether the caller may see it (else a refusal names no details)


async def candidates_holding(
    session: AsyncSession, *, passport_keys: set[str], national_id_keys: set[str], email_keys: set[str]
) -> list[KeyHolder]:
    """The candidates of the caller's tenant holding any of these keys, whatever the caller's row rule
    (the duplicate rules hold tenant-wide, as `_ensure_no_duplicate`): an import checks a batch at once."""
    scope = require_scope(session)
    clauses = [
        column.in_(sorted(keys))
        for column, keys in (
            (Candidate.passport_key, passport_keys),
            (Candidate.national_id_key, national_id_keys),
            (Candidate.email_key, email_keys),
        )
        if keys
    ]
    if not clauses:
        return []
    statement = select(
        Candidate.id,
        Candidate.reference_number,
        Candidate.passport_key,
        Candidate.national_id_key,
        Candidate.email_key,
    ).where(Candidate.tenant_id == scope.tenant_id, or_(*clauses))
    async with across_tenants(session):
        found = (await session.execute(statement)).all()
    if not found:
        return []
    ids = [row.id for row in found]
    visible = set((await session.execute(select(Candidate.id).where(Candidate.id.in_(ids)))).scalars())
    return [KeyHolder(*row, visible=row.id in visible) for row in found]


async def _next_reference(session: AsyncSession) -> str:
    return (await reserve_references(session, 1))[0]


async def reserve_references(session: AsyncSession, count: int) -> list[str]:
    """`count` consecutive reference numbers of this year from the tenant's counter row, in one
    statement (an import takes a block per batch); the row stays locked until the transaction ends."""
    scope = require_scope(session)
    year = utcnow().year
    table = CandidateReferenceCounter.__table__
    dialect = session.bind.dialect.name if session.bind is not None else "postgresql"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(CandidateReferenceCounter)
        .values(id=new_id(), tenant_id=scope.tenant_id, year=year, last_number=count)
        .on_conflict_do_update(
            index_elements=[table.c.tenantId, table.c.year],
            set_={"lastNumber": table.c.lastNumber + count},
        )
        .returning(CandidateReferenceCounter.last_number)
    )
    last = (await session.execute(statement)).scalar_one()
    code = (await get_visible(session, Tenant, scope.tenant_id)).code
    return [format_reference(code, year, number) for number in range(last - count + 1, last + 1)]


# --- create, read, update -----------------------------------------------------------------------


@dataclass
class Registered:
    candidate: Candidate
    possible_duplicates: list[PossibleDuplicate] = field(default_factory=list)


@dataclass
class PossibleDuplicate:
    candidate: Candidate
    similarity: float

    id = property(lambda self: self.candidate.id)
    reference_number = property(lambda self: self.candidate.reference_number)
    first_name = property(lambda self: self.candidate.first_name)
    last_name = property(lambda self: self.candidate.last_name)
    date_of_birth = property(lambda self: self.candidate.date_of_birth)
    nationality = property(lambda self: self.candidate.nationality)
    status = property(lambda self: self.candidate.status)


async def create_candidate(session: AsyncSession, body: CandidateCreate) -> Registered:
    """Register a candidate in the caller's shape (schemas.py); see the module's rules."""
    scope = require_scope(session)
    kind = _kind(scope)
    _check_shape(body, _CREATE_SHAPES.get(kind))
    values = {name: _plain(getattr(body, name)) for name in type(body).model_fields}
    agent_id, broker_id = values.pop("agent_id", None), values.pop("broker_id", None)
    if kind == "agent":
        agent_id = scope.agent_id
        if agent_id is None:
            raise NoPartnerRecord()
    elif kind == "broker":
        broker_id = scope.broker_id
        if broker_id is None:
            raise NoPartnerRecord()
    await partners.ensure_can_register(session, agent_id=agent_id, broker_id=broker_id)
    candidate = Candidate(**values, agent_id=agent_id, broker_id=broker_id)
    _refresh_keys(candidate)
    await _ensure_no_duplicate(session, candidate)
    candidate.reference_number = await _next_reference(session)
    session.add(candidate)
    await audit.flush_as(session, "candidate.create", conflict="The candidate is registered already.")
    return Registered(candidate, await possible_duplicates(session, candidate))


async def get_candidate(
    session: AsyncSession, candidate_id: uuid.UUID, *, reading: bool = False, field_name: str | None = None
) -> Candidate:
    """The candidate with this id if the caller may see it (404 otherwise; with `field_name`, an id
    sent in a body, 422). A merged-away record answers with its survivor (see the module's rules):
    `reading` the record itself, 308; anything else, 409."""
    candidate = await get_visible(session, Candidate, candidate_id, field_name=field_name)
    await refuse_merged(session, candidate, reading=reading, field_name=field_name)
    return candidate


async def refuse_merged(
    session: AsyncSession, candidate: Candidate, *, reading: bool = False, field_name: str | None = None
) -> None:
    """The tombstone rule (module doc): nothing for a live record; for a merged-away one the survivor's
    id (308 when `reading`, else 409), or, when the caller may not see the survivor, what they would
    get for a record that does not exist."""
    if candidate.merged_into_id is None:
        return
    survivor = (
        await session.execute(select(Candidate.id).where(Candidate.id == candidate.merged_into_id))
    ).first()
    if survivor is None:
        if field_name is not None:
            raise InvalidInput(f"{field_name} does not refer to an existing record.", field=field_name)
        raise NotFound("No such candidate.")
    error = CandidateMovedPermanently if reading else CandidateMerged
    raise error(
        f"The candidate {candidate.reference_number} was merged into {survivor.id}.",
        survivorId=str(survivor.id),
    )


async def update_candidate(
    session: AsyncSession, candidate_id: uuid.UUID, body: CandidateUpdate
) -> Candidate:
    scope = require_scope(session)
    kind = _kind(scope)
    candidate = await get_candidate(session, candidate_id)
    _check_shape(body, _UPDATE_SHAPES.get(kind))
    changes = {name: _plain(getattr(body, name)) for name in body.model_fields_set}
    # A new link is a registration with that partner: the licensing rule again.
    relinked = {
        name: new
        for name in ("agent_id", "broker_id")
        if (new := changes.get(name)) is not None and new != getattr(candidate, name)
    }
    await partners.ensure_can_register(session, **relinked)
    for name, value in changes.items():
        setattr(candidate, name, value)
    if candidate.passport_expiry is not None and candidate.passport_number is None:
        raise InvalidInput("passportExpiry needs passportNumber", field="passportExpiry")
    _refresh_keys(candidate)
    await _ensure_no_duplicate(session, candidate)
    await audit.flush_as(session, "candidate.update", conflict="The candidate is registered already.")
    return candidate


async def record_passport(
    session: AsyncSession,
    candidate: Candidate,
    *,
    number: str | None,
    expiry: date | None,
    number_field: str = "passportNumber",
    expiry_field: str = "passportExpiry",
    action: str = "candidate.passport",
) -> Candidate:
    """A passport's number and expiry (from an uploaded passport document) onto the candidate's passport
    fields, whoever uploads it (a candidate may not edit these fields, but may send their passport): the
    number normalised and the expiry in range as on the profile (422 naming `number_field` /
    `expiry_field`), the duplicate keys kept and checked (409 as on an edit), the change audited as
    `action`. A new number without an expiry clears the old passport's expiry (it was another
    passport's); an expiry alone needs a number on record."""
    if number is not None:
        try:
            number = normalise_passport_number(number)
        except ValueError as exc:
            raise InvalidInput(f"{number_field}: {exc}.", field=number_field) from None
    if expiry is not None:
        try:
            TypeAdapter(PassportExpiry).validate_python(expiry)
        except ValidationError as exc:
            raise InvalidInput(f"{expiry_field}: {exc.errors()[0]['msg']}.", field=expiry_field) from None
    if number is not None and number != candidate.passport_number:
        candidate.passport_number, candidate.passport_expiry = number, expiry
    elif expiry is not None:
        if candidate.passport_number is None:
            raise InvalidInput(
                f"A passport's expiry needs its number: send {number_field} too.", field=number_field
            )
        candidate.passport_expiry = expiry
    _refresh_keys(candidate)
    await _ensure_no_duplicate(session, candidate)
    await audit.flush_as(session, action, conflict="The candidate is registered already.")
    return candidate


async def clear_passport(
    session: AsyncSession, candidate: Candidate, *, action: str = "candidate.passport"
) -> None:
    """The candidate's passport fields emptied: the passport document they came from was rejected and no
    earlier passport stands in for it (documents service). Audited as `action`."""
    candidate.passport_number = candidate.passport_expiry = None
    _refresh_keys(candidate)
    await audit.flush_as(session, action, conflict="The candidate was changed meanwhile.")


# --- deleting -----------------------------------------------------------------------------------


class CandidateInUse(Conflict):
    code, title = "candidate_in_use", "The candidate's records are in use"


# What a candidate's deletion refuses to take with it: training, placements and money (their trail
# outlives the person's file; certificates are verified publicly).
KEPT_ON_DELETION: dict[str, type] = {
    "enrollments": Enrollment,
    "placements": Placement,
    "payments": Payment,
    "invoices": Invoice,
}


async def delete_candidate(session: AsyncSession, storage: FileStorage, candidate_id: uuid.UUID) -> None:
    """Delete a candidate (a mistaken or withdrawn registration) with what hangs off it alone: its
    documents (rows now, stored files once the transaction commits, a file shared by content kept
    while another row names it), its vetting records and the records merged into it (tombstones), each
    row in the audit trail; a merged-away record itself is refused (409, the tombstone rule). Refused (409
    `candidate_in_use`, listing what and how many) while enrollments, placements, payments or invoices
    refer to it: those records outlive the file."""
    # Imported here: the documents service imports this one (a passport document updates the candidate).
    from mobility.documents import service as documents_service

    candidate = await get_candidate(session, candidate_id)
    in_use = {}
    for name, model in KEPT_ON_DELETION.items():
        count = await session.scalar(
            select(func.count()).select_from(model).where(model.candidate_id == candidate.id)
        )
        if count:
            in_use[name] = count
    if in_use:
        listed = ", ".join(f"{name} ({count})" for name, count in in_use.items())
        raise CandidateInUse(
            f"The candidate {candidate.reference_number} has {listed}: it cannot be deleted. Withdraw it "
            "instead.",
            references=in_use,
        )
    await documents_service.delete_documents_of(session, storage, candidate)
    for record in (
        await session.execute(select(VettingRecord).where(VettingRecord.candidate_id == candidate.id))
    ).scalars():
        await session.delete(record)
    # Records merged into this one (tombstones, holding no rows of their own) go with it, each in the trail.
    for tombstone in (
        await session.execute(select(Candidate).where(Candidate.merged_into_id == candidate.id))
    ).scalars():
        await session.delete(tombstone)
    # Flushed first: deleting the survivor would take them by its foreign key's cascade, unaudited.
    await audit.flush_as(session, "candidate.delete", conflict="The candidate was changed meanwhile.")
    await session.delete(candidate)
    await audit.flush_as(session, "candidate.delete", conflict="The candidate was changed meanwhile.")


# --- the pipeline -------------------------------------------------------------------------------


async def change_status(
    session: AsyncSession,
    candidate: Candidate,
    target: CandidateStatus | str,
    reason: str | None = None,
    *,
    action: str = "candidate.status",
) -> Candidate:
    """Move `candidate` to `target` if the pipeline allows it (pipeline.check_transition: 409 listing
    the allowed moves, 422 without a needed reason). The one way a candidate's status changes; other
    domains call it with their own `action` (e.g. "enrollment.create"). The reason, when given, is in
    the audit trail's entry of the change (`after.reason`)."""
    target = CandidateStatus(target)
    await refuse_merged(session, candidate)
    reason = pipeline.check_transition(candidate.status, target, reason)
    candidate.status = target
    await audit.flush_as(
        session,
        action,
        conflict="The candidate was changed meanwhile.",
        details={"reason": reason} if reason else None,
    )
    return candidate


async def manual_status_change(
    session: AsyncSession, candidate_id: uuid.UUID, *, target: CandidateStatus, reason: str | None
) -> Candidate:
    """The manual endpoint: staff any allowed move, a partner only withdrawing its own candidate."""
    scope = require_scope(session)
    kind = _kind(scope)
    if kind == "candidate":
        raise Forbidden("A candidate's status is changed by the institute.")
    candidate = await get_candidate(session, candidate_id)
    if kind in ("agent", "broker") and target != CandidateStatus.withdrawn:
        raise StatusChangeNotYours(
            "A partner may only withdraw its candidates; the institute makes the other moves."
        )
    return await change_status(session, candidate, target, reason)


# --- lists --------------------------------------------------------------------------------------


@dataclass
class CandidateFilters:
    status: CandidateStatus | None = None
    agent_id: uuid.UUID | None = None
    broker_id: uuid.UUID | None = None
    nationality: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    passport_expiring_before: date | None = None
    q: str | None = None

    @classmethod
    def of(cls, params: CandidateFilterParams) -> CandidateFilters:
        """The filters of a list's or an export's query parameters."""
        return cls(**{name: getattr(params, name) for name in cls.__dataclass_fields__})


def _is_postgresql(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


def _names_only(q: str) -> bool:
    """Reference, passport and national id numbers all hold a digit: a text without one is looked for
    in names only, which the tenant's trigram index answers alone (0022, 0023); one more OR arm that no
    index serves (a reference's substring) made PostgreSQL read every row of the tenant instead."""
    return not any(character.isdigit() for character in q)


def _name_match(key: Any, candidate: Any = Candidate) -> tuple[Any, Any]:
    """PostgreSQL: a name matches `key` (a name key, or a parameter for one), and its rank.

    Word similarity alone (it finds every name a word of which starts like the text, and the misspelt
    ones): the tenant's trigram index answers `%>` under row-level security (0022 marks it LEAKPROOF);
    an ILIKE beside it is not LEAKPROOF and made PostgreSQL read every row. `%>` compares with the
    threshold every connection starts with (settings.name_search_similarity, core/db.server_settings)."""
    return candidate.search_name.op("%>")(key), func.word_similarity(key, candidate.search_name)


def _text_matches(q: str, postgres: bool) -> tuple[Any, Any | None]:
    """The WHERE clause of a text search, and on PostgreSQL the rank of a row (name similarity)."""
    clauses = []
    if not _names_only(q):
        clauses.append(contains(Candidate.reference_number, text=q.strip()))
        with contextlib.suppress(ValueError):
            clauses.append(Candidate.reference_number == str(parse_reference(q)))
        for normalise, column in (
            (normalise_passport_number, Candidate.passport_number),
            (normalise_national_id, Candidate.national_id),
        ):
            with contextlib.suppress(ValueError):
                clauses.append(column == normalise(q))
    key = duplicates.name_key(q, "")
    rank = None
    if key and postgres:
        match, rank = _name_match(key)
        clauses.append(match)
    elif key:
        clauses.append(contains(Candidate.search_name, text=key))
    return (or_(*clauses) if clauses else false()), rank


def _after_rank(rank: Any, last_rank: Any, last_id: Any, candidate: Any = Candidate) -> Any:
    """Rows after (`last_rank`, `last_id`) in the ranked order: best match first, then by id."""
    return or_(rank < last_rank, and_(rank == last_rank, candidate.id > last_id))


def _rank_cursor(cursor: str) -> tuple[float, uuid.UUID]:
    """The last row's (rank, id) a ranked page's cursor carries."""
    raw_rank, raw_id = _decode(cursor)
    if not isinstance(raw_rank, int | float) or isinstance(raw_rank, bool):
        raise _invalid_cursor()
    try:
        return float(raw_rank), uuid.UUID(raw_id)
    except (TypeError, ValueError, AttributeError):
        raise _invalid_cursor() from None


# The list's filters (CandidateFilters, but the text search): each a condition on its value (of
# `candidate`, the model or an alias of it).
FILTERS: dict[str, Any] = {
    "status": lambda value, candidate=Candidate: candidate.status == value,
    "agent_id": lambda value, candidate=Candidate: candidate.agent_id == value,
    "broker_id": lambda value, candidate=Candidate: candidate.broker_id == value,
    "nationality": lambda value, candidate=Candidate: candidate.nationality == value,
    "created_from": lambda value, candidate=Candidate: candidate.created_at >= value,
    "created_to": lambda value, candidate=Candidate: candidate.created_at < value,
    "passport_expiring_before": lambda value, candidate=Candidate: candidate.passport_expiry < value,
}


def _given(filters: CandidateFilters) -> dict[str, Any]:
    """The filters given (all but the text search), by name; refuses an empty created range."""
    if filters.created_from and filters.created_to and filters.created_from >= filters.created_to:
        raise InvalidInput("createdFrom must be before createdTo.", field="createdFrom")
    return {name: getattr(filters, name) for name in FILTERS if getattr(filters, name) is not None}


@functools.lru_cache(maxsize=512)
def _list_read(
    given: tuple[str, ...], columns: tuple[str, ...], sort: str, descending: bool, after: bool
) -> Read:
    """The list without a text search as a `Read` (core/reads.py), one per shape of request: which
    filters are given, the sort, and whether it starts after a cursor. The same conditions, order
    and row rules as `list_candidates`, compiled once per shape."""

    def build() -> Any:
        column = CANDIDATE_SORT_KEYS[sort].column
        statement = select(*(getattr(Candidate, name) for name in columns)).where(
            Candidate.merged_into_id.is_(None), *(FILTERS[name](bindparam(name)) for name in given)
        )
        if after:
            cursor = (
                bindparam("after_value", type_=column.type),
                bindparam("after_id", type_=Candidate.id.type),
            )
            statement = statement.where(after_cursor(column, Candidate.id, cursor, descending=descending))
        return ordered(statement, column, Candidate.id, descending=descending).limit(bindparam("limit"))

    return Read(build)


@functools.lru_cache(maxsize=512)
def _ranked_read(given: tuple[str, ...], columns: tuple[str, ...], after: bool) -> Read:
    """A name search on PostgreSQL ranked by similarity as a `Read`, one per shape of request (which
    filters are given, whether it starts after a cursor): the conditions, order and row rules of
    `list_candidates`' ranked page. The rank comes as `rank`.

    In two steps: the page's ids and ranks from the search index alone (it holds each name, id and
    merge pointer, 0023: an index-only scan over every match), then those rows' columns by key; one
    step read every match's whole row only to rank it (476 rows for a page of 51 at a million
    candidates)."""

    def build() -> Any:
        matched = aliased(Candidate)
        match, rank = _name_match(bindparam("key", type_=String), matched)
        page = select(matched.id.label("matched_id"), rank.label("rank")).where(
            matched.merged_into_id.is_(None),
            *(FILTERS[name](bindparam(name), matched) for name in given),
            match,
        )
        if after:
            page = page.where(
                _after_rank(
                    rank,
                    bindparam("after_rank", type_=Float),
                    bindparam("after_id", type_=Candidate.id.type),
                    matched,
                )
            )
        page = page.order_by(rank.desc(), matched.id.asc()).limit(bindparam("limit")).subquery("page")
        return (
            select(*(getattr(Candidate, name) for name in columns), page.c.rank)
            .join(page, Candidate.id == page.c.matched_id)
            .order_by(page.c.rank.desc(), Candidate.id.asc())
        )

    return Read(build)


async def _ranked_values(
    session: AsyncSession, params: PageParams, filters: CandidateFilters, columns: tuple[str, ...], key: str
) -> tuple[list[dict[str, Any]], str | None]:
    given = _given(filters)
    values: dict[str, Any] = {**given, "key": key, "limit": params.limit + 1}
    if params.cursor:
        values["after_rank"], values["after_id"] = _rank_cursor(params.cursor)
    read = _ranked_read(tuple(given), tuple(dict.fromkeys((*columns, "id"))), params.cursor is not None)
    rows = await read.all(session, **values)
    next_cursor = None
    if len(rows) > params.limit:
        rows = rows[: params.limit]
        next_cursor = _encode([float(rows[-1]["rank"]), str(rows[-1]["id"])])
    for row in rows:
        del row["rank"]
    return rows, next_cursor


async def list_candidate_values(
    session: AsyncSession, *, params: PageParams, filters: CandidateFilters, columns: tuple[str, ...]
) -> tuple[list[dict[str, Any]], str | None]:
    """`list_candidates` as plain values (by attribute name, the `columns` asked for): the API's list,
    its busiest read, runs it as a compiled `Read` on the request's read connection without the ORM
    (bench/candidates.py). A name search on PostgreSQL, ranked, runs as a `Read` too; any other text
    search goes through `list_candidates`."""
    if filters.q:
        key = duplicates.name_key(filters.q, "")
        if key and not params.sort and _names_only(filters.q) and _is_postgresql(session):
            return await _ranked_values(session, params, filters, columns, key)
        rows, next_cursor = await list_candidates(session, params=params, filters=filters)
        return [{name: getattr(row, name) for name in columns} for row in rows], next_cursor
    given = _given(filters)
    page = Keyset.of(params, CANDIDATE_SORT_KEYS, "-createdAt")
    sort_attribute = page.key.column.key
    wanted = tuple(dict.fromkeys((*columns, "id", sort_attribute)))
    values: dict[str, Any] = {**given, "limit": params.limit + 1}
    if page.after is not None:
        values["after_value"], values["after_id"] = page.after
    read = _list_read(tuple(given), wanted, page.sort, page.descending, page.after is not None)
    rows = await read.all(session, **values)
    next_cursor = None
    if len(rows) > params.limit:
        rows = rows[: params.limit]
        next_cursor = page.next_cursor(rows[-1][sort_attribute], rows[-1]["id"])
    return rows, next_cursor


async def list_candidates(
    session: AsyncSession, *, params: PageParams, filters: CandidateFilters
) -> tuple[list[Candidate], str | None]:
    """The candidates the caller may see, filtered; keyset-paginated. With a text search and no sort
    asked for, PostgreSQL ranks by name similarity (best first)."""
    statement = select(Candidate).where(
        Candidate.merged_into_id.is_(None),
        *(FILTERS[name](value) for name, value in _given(filters).items()),
    )
    rank = None
    if filters.q:
        postgres = _is_postgresql(session)
        clause, rank = _text_matches(filters.q, postgres)
        statement = statement.where(clause)
    if rank is not None and not params.sort:
        return await _ranked_page(session, statement, rank, params)
    return await paginate(
        session,
        statement,
        params=params,
        sort_keys=CANDIDATE_SORT_KEYS,
        default_sort="-createdAt",
        id_column=Candidate.id,
    )


async def _ranked_page(
    session: AsyncSession, statement: Any, rank: Any, params: PageParams
) -> tuple[list[Candidate], str | None]:
    """A page of search results, best match first; the cursor carries the last (rank, id)."""
    if params.cursor:
        statement = statement.where(_after_rank(rank, *_rank_cursor(params.cursor)))
    rows = (
        await session.execute(
            statement.add_columns(rank).order_by(rank.desc(), Candidate.id.asc()).limit(params.limit + 1)
        )
    ).all()
    next_cursor = None
    if len(rows) > params.limit:
        rows = rows[: params.limit]
        next_cursor = _encode([float(rows[-1][1]), str(rows[-1][0].id)])
    return [row[0] for row in rows], next_cursor


# --- likely duplicates --------------------------------------------------------------------------


async def possible_duplicates(session: AsyncSession, candidate: Candidate) -> list[PossibleDuplicate]:
    """Candidates the caller may see with the same date of birth and a similar name, most alike first."""
    if candidate.date_of_birth is None:
        return []
    others = (
        (
            await session.execute(
                select(Candidate).where(
                    Candidate.date_of_birth == candidate.date_of_birth,
                    Candidate.id != candidate.id,
                    Candidate.merged_into_id.is_(None),
                )
            )
        )
        .scalars()
        .all()
    )
    mine = duplicates.PersonKey.of(candidate.first_name, candidate.last_name, candidate.date_of_birth)
    found = []
    for other in others:
        theirs = duplicates.PersonKey.of(other.first_name, other.last_name, other.date_of_birth)
        if duplicates.likely_same_person(mine, theirs):
            found.append(PossibleDuplicate(other, duplicates.name_similarity(mine.name_key, theirs.name_key)))
    return sorted(found, key=lambda item: (-item.similarity, str(item.candidate.id)))


async def possible_duplicates_of(session: AsyncSession, candidate_id: uuid.UUID) -> list[PossibleDuplicate]:
    return await possible_duplicates(session, await get_candidate(session, candidate_id))


# --- history ------------------------------------------------------------------------------------


@dataclass
class HistoryEntry:
    id: uuid.UUID
    candidate_id: uuid.UUID
    at: datetime
    actor_id: uuid.UUID | None
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


# "merge": what a merge moved (candidates/merge.py), row ids of tables a partner may not see.
_INTERNAL = frozenset(
    {"notes", "passportKey", "nationalIdKey", "emailKey", "searchName", "updatedBy", "createdBy", "merge"}
)


def _shown(values: dict[str, Any] | None, staff: bool) -> dict[str, Any] | None:
    if values is None:
        return None
    hidden = {"passportKey", "nationalIdKey", "emailKey", "searchName"} | (set() if staff else _INTERNAL)
    return {key: value for key, value in values.items() if key not in hidden}


async def history(
    session: AsyncSession, candidate_id: uuid.UUID, params: PageParams
) -> tuple[list[HistoryEntry], str | None]:
    """Every change of the candidate's record in the audit trail, a keyset page at a time, oldest first
    by default: registration, each edit and each status change, with who and when; and those of the
    records merged into it (that the caller may see), each entry naming its record. An edit of
    internal fields only is left out of a partner's or the candidate's page (which may then hold fewer
    entries than `limit`)."""
    candidate = await get_candidate(session, candidate_id)
    staff = is_staff(session)
    merged = select(Candidate.id).where(Candidate.merged_into_id == candidate.id)
    records = [candidate.id, *(await session.execute(merged)).scalars()]
    rows, next_cursor = await paginate(
        session,
        select(AuditLog).where(
            AuditLog.entity_type == Candidate.__tablename__, AuditLog.entity_id.in_(records)
        ),
        params=params,
        sort_keys=HISTORY_SORT_KEYS,
        default_sort="createdAt",
        id_column=AuditLog.id,
    )
    entries = []
    for row in rows:
        before, after = _shown(row.before, staff), _shown(row.after, staff)
        if row.action.endswith(".update") and not after and not before:
            continue  # only internal fields changed
        entries.append(
            HistoryEntry(row.id, row.entity_id, row.created_at, row.actor_id, row.action, before, after)
        )
    return entries, next_cursor


__all__ = [
    "CandidateFilters",
    "CandidateMerged",
    "CandidateMovedPermanently",
    "DuplicateCandidate",
    "HistoryEntry",
    "PossibleDuplicate",
    "Registered",
    "change_status",
    "clear_passport",
    "create_candidate",
    "delete_candidate",
    "get_candidate",
    "history",
    "list_candidates",
    "manual_status_change",
    "possible_duplicates",
    "possible_duplicates_of",
    "record_passport",
    "refuse_merged",
    "update_candidate",
]
