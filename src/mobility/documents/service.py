"""Candidates' documents: upload, read, download, review, delete; versions; the expiring list.

Rules on top of the permission matrix and the row rules (authz/rules.py: a document is visible exactly
when its candidate is, except to a Trainer):
- Upload: whoever may create documents and sees the candidate (staff; a Candidate their own record;
  an Agent or Broker their candidates). The file is checked and stored by content as it streams in
  (core/uploads.py: 413 past the size cap, 415 for a type not allowed, 422 for an empty or damaged
  file), in the tenant's namespace of the store; it follows the request's transaction (core/files.py):
  a refusal or a rollback later leaves no file behind.
- Versions: a document of a type a person holds one of at a time (models.SUPERSEDING_TYPES) supersedes
  the current one of that type: the older one is kept as history (`supersededAt`, `supersededById`),
  and only the current one counts. Uploads to one candidate take turns (its row is locked while
  the versions change; on SQLite the database's write lock). Deleting the current version makes the one it superseded
  current again; deleting a version in the middle links its neighbours.
- A passport document's number and expiry are the candidate's passport fields: set through the
  candidates service (`record_passport`: normalised, range-checked, duplicate keys kept, 409 for
  another candidate's passport, audited), on upload and when deleting brings an older passport back.
  Rejecting the current passport takes its number off the candidate (when the candidate still holds
  it: a number staff typed since is left alone): the latest unrejected earlier version that has a
  number stands in, or the fields are emptied; a rejected passport verified after all puts its number
  back. So a rejected scan never keeps another person's passport number reserved for this candidate.
- Merging two candidates (candidates/merge.py) brings two sets of versions together:
  `reconcile_versions` leaves one current version per type (below).
- Review: staff verify or reject the current version (who, when; a rejection needs a reason);
  partners and candidates never review (the matrix gives them no `candidate_documents:update`, and the
  service refuses anyone but staff). Deciding again is allowed (a rejected scan verified after a
  call), the same decision twice is a 409.
- Delete: the row in the request's transaction, the stored file once it has committed, and only if no
  other row names the same content (core/files.py).
- Expiring (staff): current, unrejected documents expiring within each type's lead time, the longest
  of its reminder lead days (settings: `notifications.reminderLeadDays`, the one setting of lead
  times), or within `within` days for every type.
Every write is audited: document.upload, document.supersede, document.verify, document.reject,
document.delete, document.restore.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import and_, exists, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.candidates import service as candidates_service
from mobility.candidates.models import Candidate
from mobility.core import audit, files, uploads
from mobility.core.config import Settings
from mobility.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from mobility.core.models import new_id, utcnow
from mobility.core.pagination import SortKey, paginate
from mobility.core.scope import get_visible, require_scope
from mobility.core.storage import Download, FileMissing, FileStorage, InvalidKey, check_key
from mobility.documents.models import (
    SUPERSEDING_TYPES,
    CandidateDocument,
    DocumentStatus,
    DocumentType,
)
from mobility.documents.schemas import DocumentUpload, ExpiringParams
from mobility.settings import service as settings_service

logger = logging.getLogger(__name__)

MAX_WITHIN_DAYS = 3650


class DocumentSuperseded(Conflict):
    code, title = "document_superseded", "A newer version replaced this document"


class AlreadyReviewed(Conflict):
    code, title = "already_reviewed", "The document has this decision already"


class DocumentFileMissing(NotFound):
    code, title = "document_file_missing", "The document's file is missing"


# --- files --------------------------------------------------------------------------------------


async def document_references(session: AsyncSession, key: str) -> bool:
    """Whether any document row still names the stored file `key` (core/files.py asks it after the
    transaction, under the system scope: every tenant's rows count)."""
    return bool(await session.scalar(select(exists().where(CandidateDocument.storage_key == key))))


async def _forget_file(session: AsyncSession, storage: FileStorage, key: str) -> None:
    """The file goes after the commit, if nothing names it then; a key no file can have (a damaged
    row) names no file."""
    try:
        check_key(key)
    except InvalidKey:
        logger.warning("document row with an invalid storage key %r: no file to remove", key)
        return
    await files.delete_after_commit(session, storage, key, references=document_references)


# --- upload -------------------------------------------------------------------------------------


async def candidate_for_upload(session: AsyncSession, candidate_id: uuid.UUID) -> Candidate:
    """The candidate the caller uploads to: one they see (404 otherwise; a merged-away record: 409 naming
    its survivor, the candidates service's tombstone rule), asked before the body is read."""
    return await candidates_service.get_candidate(session, candidate_id)


async def store_file(
    session: AsyncSession,
    storage: FileStorage,
    chunks: AsyncIterable[bytes],
    *,
    client_name: str | None,
    settings: Settings,
) -> uploads.Upload:
    """Check and store the uploaded file as it streams in, in the tenant's namespace (see module doc)."""
    return await uploads.store_upload(
        session,
        storage,
        chunks,
        client_name=client_name,
        references=document_references,
        settings=settings,
        namespace=str(require_scope(session).tenant_id),
    )


async def _lock_candidate(session: AsyncSession, candidate: Candidate) -> None:
    """Changes to one candidate's versions take turns: the row lock until commit (on SQLite, the
    database's write lock: core.db.install_sqlite_row_locks)."""
    await session.execute(select(Candidate.id).where(Candidate.id == candidate.id).with_for_update())


async def _current(session: AsyncSession, candidate_id: uuid.UUID, document_type: DocumentType):
    statement = select(CandidateDocument).where(
        CandidateDocument.candidate_id == candidate_id,
        CandidateDocument.type == document_type,
        CandidateDocument.superseded_at.is_(None),
    )
    return list((await session.execute(statement)).scalars())


async def add_document(
    session: AsyncSession, candidate: Candidate, form: DocumentUpload, upload: uploads.Upload
) -> CandidateDocument:
    """The row of a stored upload; supersedes the current version of its type, and a passport's number
    and expiry go to the candidate (see module doc)."""
    await _lock_candidate(session, candidate)
    document = CandidateDocument(
        id=new_id(),  # known before the flush: the versions it supersedes name it
        candidate_id=candidate.id,
        type=form.type,
        file_name=upload.file_name,
        content_type=upload.kind.content_type,
        size_bytes=upload.stored.size,
        sha256=upload.stored.sha256,
        storage_key=upload.stored.key,
        document_number=form.document_number,
        issued_on=form.issued_on,
        expires_on=form.expires_on,
        status=DocumentStatus.pending,
    )
    if form.type in SUPERSEDING_TYPES:
        now = utcnow()
        for older in await _current(session, candidate.id, form.type):
            older.superseded_at, older.superseded_by_id = now, document.id
        await audit.flush_as(session, "document.supersede", conflict="The documents changed meanwhile.")
    if form.type == DocumentType.passport and (form.document_number or form.expires_on):
        await candidates_service.record_passport(
            session,
            candidate,
            number=form.document_number,
            expiry=form.expires_on,
            number_field="documentNumber",
            expiry_field="expiresOn",
            action="candidate.passport",
        )
        if form.document_number:
            document.document_number = candidate.passport_number
    session.add(document)
    await audit.flush_as(session, "document.upload", conflict="The documents changed meanwhile.")
    return document


async def _passport_onto(session: AsyncSession, candidate: Candidate, document: CandidateDocument) -> None:
    """A passport version's number and expiry as the candidate's passport fields (module doc): the
    version brought back, verified after a rejection, or standing in for a rejected one."""
    await candidates_service.record_passport(
        session, candidate, number=document.document_number, expiry=document.expires_on
    )


# --- read ---------------------------------------------------------------------------------------


async def list_candidate_documents(
    session: AsyncSession, candidate_id: uuid.UUID, *, include_superseded: bool = False
) -> list[CandidateDocument]:
    """The candidate's documents, current versions only unless asked: by type, newest first."""
    candidate = await candidates_service.get_candidate(session, candidate_id)
    statement = select(CandidateDocument).where(CandidateDocument.candidate_id == candidate.id)
    if not include_superseded:
        statement = statement.where(CandidateDocument.superseded_at.is_(None))
    statement = statement.order_by(
        CandidateDocument.type, CandidateDocument.created_at.desc(), CandidateDocument.id.desc()
    )
    return list((await session.execute(statement)).scalars())


async def get_document(session: AsyncSession, document_id: uuid.UUID) -> CandidateDocument:
    return await get_visible(session, CandidateDocument, document_id)


async def open_document(
    session: AsyncSession, storage: FileStorage, document_id: uuid.UUID
) -> tuple[CandidateDocument, Download]:
    """The document and its stored file, opened (404 `document_file_missing` if the store lost it:
    said before any byte is sent)."""
    document = await get_visible(session, CandidateDocument, document_id)
    try:
        download = await storage.open(document.storage_key)
    except (FileMissing, InvalidKey):
        logger.error("the stored file of document %s (%s) is missing", document.id, document.storage_key)
        raise DocumentFileMissing(
            "The document's file is missing from the store: upload the document again."
        ) from None
    return document, download


# --- review -------------------------------------------------------------------------------------


def _ensure_staff(session: AsyncSession) -> None:
    if not candidates_service.is_staff(session):
        raise Forbidden("Documents are reviewed by the institute's staff.")


async def _reviewable(session: AsyncSession, document_id: uuid.UUID) -> CandidateDocument:
    _ensure_staff(session)
    document = await get_visible(session, CandidateDocument, document_id)
    if not document.current:
        raise DocumentSuperseded(
            "A newer version of this document was uploaded: review that one.",
            supersededById=str(document.superseded_by_id),
        )
    return document


async def verify_document(
    session: AsyncSession, document_id: uuid.UUID, *, note: str | None = None
) -> CandidateDocument:
    document = await _reviewable(session, document_id)
    if document.status == DocumentStatus.verified:
        raise AlreadyReviewed("The document is verified already.")
    was_rejected = document.status == DocumentStatus.rejected
    scope, now = require_scope(session), utcnow()
    document.status = DocumentStatus.verified
    document.verified_by, document.verified_at = scope.actor_id, now
    document.reviewed_by, document.reviewed_at, document.review_reason = scope.actor_id, now, note
    await audit.flush_as(session, "document.verify", conflict="The document was changed meanwhile.")
    if was_rejected and document.type == DocumentType.passport and document.document_number:
        candidate = await get_visible(session, Candidate, document.candidate_id)
        await _lock_candidate(session, candidate)
        await _passport_onto(session, candidate, document)
    return document


async def reject_document(session: AsyncSession, document_id: uuid.UUID, *, reason: str) -> CandidateDocument:
    document = await _reviewable(session, document_id)
    reason = " ".join(reason.split())
    if not reason:
        raise InvalidInput("A rejection needs a reason.", field="reason")
    if document.status == DocumentStatus.rejected:
        raise AlreadyReviewed("The document is rejected already.")
    scope, now = require_scope(session), utcnow()
    document.status = DocumentStatus.rejected
    document.verified_by = document.verified_at = None
    document.reviewed_by, document.reviewed_at, document.review_reason = scope.actor_id, now, reason
    await audit.flush_as(
        session, "document.reject", conflict="The document was changed meanwhile.", details={"reason": reason}
    )
    if document.type == DocumentType.passport and document.document_number:
        await _withdraw_passport(session, document)
    return document


async def _withdraw_passport(session: AsyncSession, rejected: CandidateDocument) -> None:
    """A rejected passport's number off its candidate (module doc), if the candidate still holds it."""
    candidate = await get_visible(session, Candidate, rejected.candidate_id)
    await _lock_candidate(session, candidate)
    if candidate.passport_number != rejected.document_number:
        return
    earlier = (
        await session.execute(
            select(CandidateDocument)
            .where(
                CandidateDocument.candidate_id == candidate.id,
                CandidateDocument.type == DocumentType.passport,
                CandidateDocument.id != rejected.id,
                CandidateDocument.status != DocumentStatus.rejected,
                CandidateDocument.document_number.is_not(None),
            )
            .order_by(CandidateDocument.created_at.desc(), CandidateDocument.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if earlier is None:
        await candidates_service.clear_passport(session, candidate)
    else:
        await _passport_onto(session, candidate, earlier)


async def reconcile_versions(
    session: AsyncSession, candidate_id: uuid.UUID
) -> dict[DocumentType, CandidateDocument]:
    """One current version per type held one at a time, after a merge gave the candidate two: the one
    that counts is the latest upload that is not rejected (the latest upload when all are), and the
    other current versions become versions it superseded (`supersededAt` now), as if it had been
    uploaded after them. Audited as document.supersede. Returns the current version of each such type
    the candidate holds (the merge takes the passport's number from there)."""
    rows = (
        await session.execute(
            select(CandidateDocument).where(
                CandidateDocument.candidate_id == candidate_id,
                CandidateDocument.type.in_(SUPERSEDING_TYPES),
                CandidateDocument.superseded_at.is_(None),
            )
        )
    ).scalars()
    by_type: dict[DocumentType, list[CandidateDocument]] = {}
    for row in rows:
        by_type.setdefault(row.type, []).append(row)
    current_by_type, now = {}, utcnow()
    for document_type, versions in by_type.items():
        current = max(versions, key=lambda v: (v.status != DocumentStatus.rejected, v.created_at, v.id))
        for version in versions:
            if version is not current:
                version.superseded_at, version.superseded_by_id = now, current.id
        current_by_type[document_type] = current
    await audit.flush_as(session, "document.supersede", conflict="The documents changed meanwhile.")
    return current_by_type


# --- delete -------------------------------------------------------------------------------------


async def delete_document(session: AsyncSession, storage: FileStorage, document_id: uuid.UUID) -> None:
    """Delete one version (staff). Deleting the current one brings back the version it superseded (a
    passport's number and expiry with it); a version in the middle of the history is skipped over."""
    _ensure_staff(session)
    document = await get_visible(session, CandidateDocument, document_id)
    candidate = await get_visible(session, Candidate, document.candidate_id)
    await _lock_candidate(session, candidate)
    older = list(
        (
            await session.execute(
                select(CandidateDocument).where(
                    CandidateDocument.candidate_id == document.candidate_id,
                    CandidateDocument.superseded_by_id == document.id,
                )
            )
        ).scalars()
    )
    restored = None
    for version in older:
        if document.current:
            version.superseded_at = version.superseded_by_id = None
            restored = version
        else:
            version.superseded_by_id = document.superseded_by_id
    await audit.flush_as(session, "document.restore", conflict="The documents changed meanwhile.")
    if restored is not None and restored.type == DocumentType.passport and restored.document_number:
        await _passport_onto(session, candidate, restored)
    await session.delete(document)
    await audit.flush_as(session, "document.delete", conflict="The document was changed meanwhile.")
    await _forget_file(session, storage, document.storage_key)


async def delete_documents_of(session: AsyncSession, storage: FileStorage, candidate: Candidate) -> None:
    """Every version of every document of `candidate` (its deletion, candidates service): rows now,
    files after the commit."""
    documents = list(
        (
            await session.execute(
                select(CandidateDocument).where(CandidateDocument.candidate_id == candidate.id)
            )
        ).scalars()
    )
    for document in documents:
        await session.delete(document)
    await audit.flush_as(session, "document.delete", conflict="The documents changed meanwhile.")
    for key in sorted({document.storage_key for document in documents}):
        await _forget_file(session, storage, key)


# --- expiring -----------------------------------------------------------------------------------


def _date_from_cursor(value: object) -> date:
    try:
        return date.fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput("The cursor is not valid.", field="cursor") from None


EXPIRY_KEY = SortKey(CandidateDocument.expires_on, to_json=date.isoformat, from_json=_date_from_cursor)


@dataclass
class ExpiringDocument:
    document: CandidateDocument
    candidate: Candidate
    days_left: int
    lead_days: int


async def lead_days_by_type(session: AsyncSession) -> dict[DocumentType, int | None]:
    """How far ahead each type is looked at: the longest of its reminder lead days in the tenant's
    setting (None: the tenant set no lead time for it, so it is never "expiring")."""
    setting = await settings_service.get_value(session, settings_service.REMINDER_LEAD_DAYS)
    return {
        kind: max(settings_service.document_lead_days(setting, kind.value), default=None)
        for kind in DocumentType
    }


async def expiring_documents(
    session: AsyncSession, *, params: ExpiringParams
) -> tuple[list[ExpiringDocument], str | None]:
    """Current, unrejected documents expiring within their type's lead time (or `within` days), soonest
    first; expired ones too with `include_expired`. Staff only."""
    _ensure_staff(session)
    today = utcnow().date()
    if params.within is not None:
        days = int(params.within.removesuffix("d"))
        if days > MAX_WITHIN_DAYS:
            raise InvalidInput(f"within is at most {MAX_WITHIN_DAYS}d.", field="within")
        windows: dict[DocumentType, int | None] = dict.fromkeys(DocumentType, days)
    else:
        windows = await lead_days_by_type(session)
    if params.type is not None:
        windows = {params.type: windows[params.type]}
    looked_at = [
        and_(CandidateDocument.type == kind, CandidateDocument.expires_on <= today + timedelta(days=days))
        for kind, days in windows.items()
        if days is not None
    ]
    statement = select(CandidateDocument).where(
        or_(*looked_at) if looked_at else false(),
        CandidateDocument.expires_on.is_not(None),
        CandidateDocument.superseded_at.is_(None),
        CandidateDocument.status != DocumentStatus.rejected,
    )
    if not params.include_expired:
        statement = statement.where(CandidateDocument.expires_on >= today)
    rows, next_cursor = await paginate(
        session,
        statement,
        params=params,
        sort_keys={"expiresOn": EXPIRY_KEY},
        default_sort="expiresOn",
        id_column=CandidateDocument.id,
    )
    candidates = {}
    if rows:
        found = await session.execute(
            select(Candidate).where(Candidate.id.in_({row.candidate_id for row in rows}))
        )
        candidates = {candidate.id: candidate for candidate in found.scalars()}
    return [
        ExpiringDocument(
            row, candidates[row.candidate_id], (row.expires_on - today).days, windows[row.type] or 0
        )
        for row in rows
        if row.candidate_id in candidates
    ], next_cursor
