"""The documents service's rules (issue 12, parts 6 and 7), on PostgreSQL and SQLite, with each file
storage where files matter: versions, a passport's data on the candidate, review by staff only,
deletion (files after the commit, shared files kept), who sees which documents, the expiring list
and its one lead-time setting, deleting a candidate. Expected answers come from the issue and the
service's module doc."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from mobility.audit.models import AuditLog
from mobility.candidates import service as candidates_service
from mobility.candidates.models import Candidate
from mobility.candidates.service import CandidateInUse, DuplicateCandidate
from mobility.candidates.tasks import document_expiry_reminders
from mobility.core.config import Settings
from mobility.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from mobility.core.jobs import JobContext
from mobility.core.models import utcnow
from mobility.core.storage import FileStorage
from mobility.documents import service
from mobility.documents.models import CandidateDocument, DocumentStatus, DocumentType
from mobility.documents.schemas import ExpiringParams
from mobility.notifications.models import Notification
from mobility.placements.models import Placement
from mobility.settings.models import Setting
from mobility.tenants.models import Tenant
from mobility.vetting.models import VettingRecord
from tests.documents.support import committed, make_people, rows_of, unique_pdf, upload
from tests.support.factories import make_candidate
from tests.support.rows import RowBuilder
from tests.support.sessions import Db, get_row, system_session
from tests.support.storage import stored_names

T = DocumentType


# --- upload and versions --------------------------------------------------------------------------


async def test_an_upload_is_stored_by_content_with_a_safe_name(db: Db, file_storage: FileStorage) -> None:
    people = await make_people(db)
    data = unique_pdf()
    async with committed(db, people.agent) as session:
        document = await upload(session, file_storage, people.mine, data, name="../../Scans/pass\x00port.PDF")
    row = await get_row(db.url, CandidateDocument, document.id)
    assert (row.file_name, row.content_type, row.size_bytes) == ("passport.pdf", "application/pdf", len(data))
    assert row.storage_key == f"{people.tenant_id}/sha256/{row.sha256[:2]}/{row.sha256}"
    assert (row.status, row.current, row.created_by) == (DocumentStatus.pending, True, people.agent.actor_id)
    assert stored_names(file_storage) == {row.storage_key}


async def test_a_newer_document_of_the_same_type_supersedes_the_current_one(db: Db, file_storage) -> None:
    people = await make_people(db)
    async with committed(db, people.admin) as session:
        first = await upload(session, file_storage, people.mine, unique_pdf(), type=T.medical)
        certificate = await upload(session, file_storage, people.mine, unique_pdf(), type=T.certificate)
    async with committed(db, people.admin) as session:
        second = await upload(session, file_storage, people.mine, unique_pdf(), type=T.medical)
        another_certificate = await upload(
            session, file_storage, people.mine, unique_pdf(), type=T.certificate
        )
    old = await get_row(db.url, CandidateDocument, first.id)
    assert (old.current, old.superseded_by_id) == (False, second.id)
    assert old.superseded_at is not None
    async with db.acting(people.admin) as session:
        current = {row.id for row in await service.list_candidate_documents(session, people.mine)}
        history = {
            row.id
            for row in await service.list_candidate_documents(session, people.mine, include_superseded=True)
        }
    # Certificates come several at a time: neither supersedes the other.
    assert current == {second.id, certificate.id, another_certificate.id}
    assert history == {first.id, second.id, certificate.id, another_certificate.id}
    async with system_session(db.url) as session:
        actions = (
            await session.execute(
                select(AuditLog.action).where(AuditLog.entity_id == first.id).order_by(AuditLog.id)
            )
        ).scalars()
        assert list(actions) == ["document.upload", "document.supersede"]


async def test_a_passport_document_updates_the_candidates_passport(db: Db, file_storage) -> None:
    people = await make_people(db)
    expiry = date.today() + timedelta(days=3000)
    # The candidate themself may not edit their passport fields, but may upload their passport.
    async with committed(db, people.candidate) as session:
        document = await upload(
            session,
            file_storage,
            people.mine,
            type=T.passport,
            document_number="fb 12-3456",
            expires_on=expiry,
        )
    candidate = await get_row(db.url, Candidate, people.mine)
    assert (candidate.passport_number, candidate.passport_expiry) == ("FB123456", expiry)
    assert candidate.passport_key == "FJ:FB123456"
    assert (await get_row(db.url, CandidateDocument, document.id)).document_number == "FB123456"
    async with system_session(db.url) as session:
        entry = (
            await session.execute(
                select(AuditLog).where(
                    AuditLog.entity_id == people.mine, AuditLog.action == "candidate.passport"
                )
            )
        ).scalar_one()
        assert entry.after["passportNumber"] == "FB123456" and entry.actor_id == people.candidate.actor_id


async def test_another_candidates_passport_is_refused_and_nothing_is_left(db: Db, file_storage) -> None:
    people = await make_people(db)
    async with committed(db, people.admin) as session:
        await upload(session, file_storage, people.theirs, type=T.passport, document_number="FB654321")
    kept = stored_names(file_storage)
    with pytest.raises(DuplicateCandidate):
        async with committed(db, people.admin) as session:
            await upload(
                session, file_storage, people.mine, unique_pdf(), type=T.passport, document_number="FB654321"
            )
    assert await rows_of(db, people.mine) == []
    assert stored_names(file_storage) == kept  # the rolled-back upload's file is gone again
    assert (await get_row(db.url, Candidate, people.mine)).passport_number is None


async def test_a_passport_expiry_needs_a_number(db: Db, file_storage) -> None:
    people = await make_people(db)
    with pytest.raises(InvalidInput) as refused:
        async with committed(db, people.admin) as session:
            await upload(
                session,
                file_storage,
                people.mine,
                type=T.passport,
                expires_on=date.today() + timedelta(days=400),
            )
    assert refused.value.extra["field"] == "documentNumber"
    assert stored_names(file_storage) == set()


async def test_uploads_reach_only_candidates_the_uploader_sees(db: Db, file_storage) -> None:
    people = await make_people(db)
    for scope in (people.other_agent, people.candidate):
        async with db.acting(scope) as session:
            with pytest.raises(NotFound):
                await service.candidate_for_upload(
                    session, people.mine if scope is people.other_agent else people.theirs
                )
    for scope in (people.agent, people.broker, people.candidate, people.recruiter):
        async with db.acting(scope) as session:
            assert (await service.candidate_for_upload(session, people.mine)).id == people.mine


async def test_a_document_is_visible_exactly_when_its_candidate_is(db: Db, file_storage) -> None:
    people = await make_people(db)
    async with committed(db, people.admin) as session:
        mine = await upload(session, file_storage, people.mine, unique_pdf())
        theirs = await upload(session, file_storage, people.theirs, unique_pdf())
    expected = {
        "agent": {mine.id},
        "broker": {mine.id},
        "candidate": {mine.id},
        "other_agent": {theirs.id},
        "trainer": set(),  # courses, not passports: not even of a candidate they teach
        "recruiter": {mine.id, theirs.id},
    }
    async with db.acting(people.trainer) as session:
        assert (await session.get(Candidate, people.mine)) is not None  # the candidate they teach
    for name, ids in expected.items():
        async with db.acting(getattr(people, name)) as session:
            seen = set((await session.execute(select(CandidateDocument.id))).scalars()) & {mine.id, theirs.id}
            assert seen == ids, name
            for document in (mine, theirs):
                if document.id not in ids:
                    with pytest.raises(NotFound):
                        await service.get_document(session, document.id)


# --- review ---------------------------------------------------------------------------------------


async def test_staff_verify_and_reject_recording_who_when_and_why(db: Db, file_storage) -> None:
    people = await make_people(db)
    async with committed(db, people.agent) as session:
        document = await upload(session, file_storage, people.mine)
    async with committed(db, people.recruiter) as session:
        await service.reject_document(session, document.id, reason="  The scan is\nunreadable ")
    row = await get_row(db.url, CandidateDocument, document.id)
    assert (row.status, row.reviewed_by, row.review_reason) == (
        DocumentStatus.rejected,
        people.recruiter.actor_id,
        "The scan is unreadable",
    )
    assert row.reviewed_at is not None and row.verified_by is None
    async with committed(db, people.admin) as session:
        await service.verify_document(session, document.id, note="Checked against the original")
    row = await get_row(db.url, CandidateDocument, document.id)
    assert (row.status, row.verified_by, row.reviewed_by) == (
        DocumentStatus.verified,
        people.admin.actor_id,
        people.admin.actor_id,
    )
    async with db.acting(people.admin) as session:
        with pytest.raises(service.AlreadyReviewed):
            await service.verify_document(session, document.id)
        with pytest.raises(InvalidInput):
            await service.reject_document(session, document.id, reason=" \n ")
    async with system_session(db.url) as session:
        entry = (
            await session.execute(
                select(AuditLog).where(
                    AuditLog.entity_id == document.id, AuditLog.action == "document.reject"
                )
            )
        ).scalar_one()
        assert entry.after["reason"] == "The scan is unreadable" and entry.after["status"] == "rejected"


async def test_partners_and_candidates_never_review(db: Db, file_storage) -> None:
    people = await make_people(db)
    async with committed(db, people.admin) as session:
        document = await upload(session, file_storage, people.mine)
    for scope in (people.agent, people.broker, people.candidate):
        async with db.acting(scope) as session:
            with pytest.raises(Forbidden):
                await service.verify_document(session, document.id)
            with pytest.raises(Forbidden):
                await service.reject_document(session, document.id, reason="no")
            with pytest.raises(Forbidden):
                await service.expiring_documents(session, params=ExpiringParams())


async def test_only_the_current_version_is_reviewed(db: Db, file_storage) -> None:
    people = await make_people(db)
    async with committed(db, people.admin) as session:
        old = await upload(session, file_storage, people.mine, unique_pdf(), type=T.visa)
        await upload(session, file_storage, people.mine, unique_pdf(), type=T.visa)
    async with db.acting(people.admin) as session:
        with pytest.raises(service.DocumentSuperseded):
            await service.verify_document(session, old.id)


async def test_two_uploads_of_one_type_at_once_leave_one_current_version(db: Db, file_storage) -> None:
    """Concurrent uploads of the same type to one candidate take turns (the candidate's row lock; on
    SQLite the database's write lock): the later one supersedes the earlier, never both current."""
    people = await make_people(db)

    async def one() -> CandidateDocument:
        async with committed(db, people.admin) as session:
            return await upload(session, file_storage, people.mine, unique_pdf(), type=T.police_clearance)

    first, second = await asyncio.gather(one(), one())
    rows = [row for row in await rows_of(db, people.mine) if row.type == T.police_clearance]
    assert {row.id for row in rows} == {first.id, second.id}
    assert len([row for row in rows if row.current]) == 1
    [older] = [row for row in rows if not row.current]
    assert older.superseded_by_id == ({first.id, second.id} - {older.id}).pop()


async def _passport_of(db: Db, candidate_id) -> tuple[str | None, date | None]:
    candidate = await get_row(db.url, Candidate, candidate_id)
    return candidate.passport_number, candidate.passport_expiry


async def test_a_rejected_passport_gives_way_to_the_earlier_one_and_frees_its_number(
    db: Db, file_storage
) -> None:
    """Rejecting the current passport takes its number off the candidate: the latest earlier version
    that is not rejected stands in; the rejected number is free for the person it belongs to."""
    people = await make_people(db)
    first_expiry, second_expiry = date.today() + timedelta(days=1000), date.today() + timedelta(days=3000)
    async with committed(db, people.admin) as session:
        for number, expiry in (("FB300000", None), ("FB300001", first_expiry), ("FB300002", second_expiry)):
            document = await upload(
                session,
                file_storage,
                people.mine,
                unique_pdf(),
                type=T.passport,
                document_number=number,
                expires_on=expiry,
            )
    # The middle version was rejected before the newest came: it never stands in.
    async with system_session(db.url) as session:
        middle = (
            await session.execute(
                select(CandidateDocument).where(
                    CandidateDocument.candidate_id == people.mine,
                    CandidateDocument.document_number == "FB300001",
                )
            )
        ).scalar_one()
        middle.status = DocumentStatus.rejected
    assert await _passport_of(db, people.mine) == ("FB300002", second_expiry)
    async with committed(db, people.recruiter) as session:
        await service.reject_document(session, document.id, reason="Not the candidate's photo")
    assert await _passport_of(db, people.mine) == ("FB300000", None)
    async with committed(db, people.admin) as session:
        await upload(
            session, file_storage, people.theirs, unique_pdf(), type=T.passport, document_number="FB300002"
        )
    assert (await get_row(db.url, Candidate, people.theirs)).passport_number == "FB300002"


async def test_a_rejected_only_passport_empties_the_fields_and_verifying_it_restores_them(
    db: Db, file_storage
) -> None:
    people = await make_people(db)
    expiry = date.today() + timedelta(days=2000)
    async with committed(db, people.candidate) as session:
        document = await upload(
            session, file_storage, people.mine, type=T.passport, document_number="FB400001", expires_on=expiry
        )
    async with committed(db, people.admin) as session:
        await service.reject_document(session, document.id, reason="Blurred")
    candidate = await get_row(db.url, Candidate, people.mine)
    assert (candidate.passport_number, candidate.passport_expiry, candidate.passport_key) == (
        None,
        None,
        None,
    )
    async with committed(db, people.admin) as session:
        await service.verify_document(session, document.id, note="The original was shown")
    assert await _passport_of(db, people.mine) == ("FB400001", expiry)
    async with system_session(db.url) as session:
        actions = (
            await session.execute(
                select(AuditLog.action).where(
                    AuditLog.entity_id == people.mine, AuditLog.action == "candidate.passport"
                )
            )
        ).scalars()
        assert len(list(actions)) == 3  # the upload, the rejection, the verification


async def test_a_rejected_passport_leaves_a_number_typed_since_alone(db: Db, file_storage) -> None:
    people = await make_people(db)
    async with committed(db, people.admin) as session:
        document = await upload(
            session, file_storage, people.mine, type=T.passport, document_number="FB500001"
        )
    async with system_session(db.url) as session:
        candidate = (await session.execute(select(Candidate).where(Candidate.id == people.mine))).scalar_one()
        candidate.passport_number = "FB500009"
        candidates_service._refresh_keys(candidate)
    async with committed(db, people.admin) as session:
        await service.reject_document(session, document.id, reason="Wrong passport")
    assert await _passport_of(db, people.mine) == ("FB500009", None)


# --- delete ----------------------------------------------------------------------------------------


async def test_a_deleted_documents_file_goes_after_the_commit_and_a_shared_file_stays(
    db: Db, file_storage: FileStorage
) -> None:
    people = await make_people(db)
    data = unique_pdf()
    async with committed(db, people.admin) as session:
        first = await upload(session, file_storage, people.mine, data, type=T.certificate)
        second = await upload(session, file_storage, people.mine, data, type=T.reference)
    assert first.storage_key == second.storage_key and stored_names(file_storage) == {first.storage_key}
    # A deletion that rolls back loses nothing.
    async with db.acting(people.admin) as session:
        await service.delete_document(session, file_storage, first.id)
    assert await get_row(db.url, CandidateDocument, first.id) is not None
    assert await file_storage.exists(first.storage_key)
    # One of two referrers gone: the file stays; the last one gone: the file goes.
    async with committed(db, people.admin) as session:
        await service.delete_document(session, file_storage, first.id)
        assert await file_storage.exists(first.storage_key)  # not before the commit
    assert await get_row(db.url, CandidateDocument, first.id) is None
    assert await file_storage.exists(first.storage_key)
    async with committed(db, people.admin) as session:
        await service.delete_document(session, file_storage, second.id)
    assert stored_names(file_storage) == set()


async def test_deleting_the_current_version_brings_back_the_one_it_superseded(db: Db, file_storage) -> None:
    people = await make_people(db)
    later = date.today() + timedelta(days=2000)
    async with committed(db, people.admin) as session:
        oldest = await upload(
            session,
            file_storage,
            people.mine,
            unique_pdf(),
            type=T.passport,
            document_number="FB100001",
            expires_on=later,
        )
        middle = await upload(
            session, file_storage, people.mine, unique_pdf(), type=T.passport, document_number="FB100002"
        )
        newest = await upload(
            session, file_storage, people.mine, unique_pdf(), type=T.passport, document_number="FB100003"
        )
    # The middle version goes: the chain skips it.
    async with committed(db, people.admin) as session:
        await service.delete_document(session, file_storage, middle.id)
    assert (await get_row(db.url, CandidateDocument, oldest.id)).superseded_by_id == newest.id
    # The current one goes (uploaded by mistake): the oldest is current again, its passport the candidate's.
    async with committed(db, people.admin) as session:
        await service.delete_document(session, file_storage, newest.id)
    restored = await get_row(db.url, CandidateDocument, oldest.id)
    assert (restored.current, restored.superseded_by_id) == (True, None)
    candidate = await get_row(db.url, Candidate, people.mine)
    assert (candidate.passport_number, candidate.passport_expiry) == ("FB100001", later)
    assert stored_names(file_storage) == {oldest.storage_key}


async def test_only_staff_delete_documents(db: Db, file_storage) -> None:
    people = await make_people(db)
    async with committed(db, people.agent) as session:
        document = await upload(session, file_storage, people.mine)
    async with db.acting(people.agent) as session:
        with pytest.raises(Forbidden):
            await service.delete_document(session, file_storage, document.id)


# --- deleting a candidate ------------------------------------------------------------------------


async def test_deleting_a_candidate_deletes_its_documents_and_their_files_after_the_commit(
    db: Db, file_storage: FileStorage
) -> None:
    people = await make_people(db)
    shared = unique_pdf()
    async with committed(db, people.admin) as session:
        own = await upload(session, file_storage, people.theirs, unique_pdf(), type=T.medical)
        await upload(session, file_storage, people.theirs, unique_pdf(), type=T.medical)  # supersedes `own`
        deleted_shared = await upload(session, file_storage, people.theirs, shared, type=T.other)
        kept_shared = await upload(session, file_storage, people.mine, shared, type=T.other)
    async with system_session(db.url) as session:
        tenant = await session.get(Tenant, people.tenant_id)
        vetting = await RowBuilder(session, tenant).build(VettingRecord, candidate_id=people.theirs)
    async with db.acting(people.admin) as session:  # rolled back: everything stays
        await candidates_service.delete_candidate(session, file_storage, people.theirs)
    assert len(await rows_of(db, people.theirs)) == 3 and await file_storage.exists(own.storage_key)
    async with committed(db, people.admin) as session:
        await candidates_service.delete_candidate(session, file_storage, people.theirs)
    assert await get_row(db.url, Candidate, people.theirs) is None
    assert await rows_of(db, people.theirs) == []
    assert await get_row(db.url, VettingRecord, vetting.id) is None
    # The other candidate's document names the shared bytes: that file stays, the rest are gone.
    assert stored_names(file_storage) == {kept_shared.storage_key} == {deleted_shared.storage_key}
    async with system_session(db.url) as session:
        actions = set(
            (
                await session.execute(
                    select(AuditLog.action).where(AuditLog.entity_id.in_([people.theirs, own.id, vetting.id]))
                )
            ).scalars()
        )
    assert {"candidate.delete", "document.delete"} <= actions


async def test_a_candidate_with_placements_or_enrollments_is_not_deleted(db: Db, file_storage) -> None:
    people = await make_people(db)
    async with system_session(db.url) as session:
        builder = RowBuilder(session, await session.get(Tenant, people.tenant_id))
        await builder.build(Placement, candidate_id=people.theirs)
        await builder.build(Placement, candidate_id=people.theirs)
    async with committed(db, people.admin) as session:
        document = await upload(session, file_storage, people.theirs)
    async with db.acting(people.admin) as session:
        with pytest.raises(CandidateInUse) as refused:
            await candidates_service.delete_candidate(session, file_storage, people.theirs)
    assert refused.value.extra["references"] == {"placements": 2}
    assert "placements (2)" in refused.value.detail
    assert await get_row(db.url, CandidateDocument, document.id) is not None
    assert await file_storage.exists(document.storage_key)
    # `mine` is enrolled in the trainer's course: its training record outlives the file too.
    async with db.acting(people.admin) as session:
        with pytest.raises(CandidateInUse) as refused:
            await candidates_service.delete_candidate(session, file_storage, people.mine)
    assert refused.value.extra["references"] == {"enrollments": 1}


# --- expiring --------------------------------------------------------------------------------------


async def _expiring(db: Db, people, **params) -> dict:
    async with db.acting(people.admin) as session:
        rows, _ = await service.expiring_documents(session, params=ExpiringParams(limit=100, **params))
        return {row.document.id: (row.days_left, row.lead_days) for row in rows}


async def test_expiring_documents_within_each_types_lead_time(db: Db, file_storage) -> None:
    """The default lead times: passport 180 days, police clearance 60, medical 30 (the longest of each
    type's reminder lead days); only current, unrejected documents count."""
    people = await make_people(db)
    today = utcnow().date()

    async def doc(kind: DocumentType, days: int, candidate=None, **values):
        async with committed(db, people.admin) as session:
            document = await upload(
                session,
                file_storage,
                candidate or people.mine,
                unique_pdf(),
                type=kind,
                **values,
                expires_on=today + timedelta(days=days),
            )
        return document

    passport = await doc(T.passport, 180, document_number="FB200001")
    await doc(T.police_clearance, 61)  # past its 60 days
    police = await doc(T.police_clearance, 60, candidate=people.theirs)
    medical_old = await doc(T.medical, 10)
    medical = await doc(T.medical, 30)  # supersedes medical_old, which no longer counts
    rejected = await doc(T.visa, 5, candidate=people.theirs)
    async with committed(db, people.admin) as session:
        await service.reject_document(session, rejected.id, reason="Forged")
    found = await _expiring(db, people)
    ours = {
        key: value
        for key, value in found.items()
        if key in {passport.id, police.id, medical.id, medical_old.id, rejected.id}
    }
    assert ours == {passport.id: (180, 180), police.id: (60, 60), medical.id: (30, 30)}
    # `within` looks as far for every type.
    within = await _expiring(db, people, within="30d")
    assert set(within) & {passport.id, police.id, medical.id} == {medical.id}
    assert (await _expiring(db, people, type=T.passport)).keys() >= {passport.id}
    assert medical.id not in await _expiring(db, people, type=T.passport)


async def test_the_lead_times_are_the_reminders_setting(db: Db, file_storage) -> None:
    people = await make_people(db)
    today = utcnow().date()
    async with committed(db, people.admin) as session:
        medical = await upload(
            session,
            file_storage,
            people.mine,
            unique_pdf(),
            type=T.medical,
            expires_on=today + timedelta(days=45),
        )
        expired = await upload(
            session,
            file_storage,
            people.theirs,
            unique_pdf(),
            type=T.medical,
            expires_on=today - timedelta(days=3),
        )
    assert medical.id not in await _expiring(db, people)
    async with system_session(db.url) as session:
        session.add(
            Setting(
                tenant_id=people.tenant_id,
                key="notifications.reminderLeadDays",
                value={"documentExpiry.medical": [50, 14]},
            )
        )
    assert (await _expiring(db, people))[medical.id] == (45, 50)
    assert expired.id not in await _expiring(db, people)
    assert (await _expiring(db, people, include_expired=True))[expired.id] == (-3, 50)
    with pytest.raises(InvalidInput):
        await _expiring(db, people, within="4000d")


async def test_expiry_reminders_count_only_the_current_version(db: Db, file_storage) -> None:
    people = await make_people(db)
    today = date(2031, 3, 1)  # the job's own day: far from the other tests' documents
    async with committed(db, people.admin) as session:
        old = await upload(session, file_storage, people.mine, unique_pdf(), type=T.medical)
        new = await upload(session, file_storage, people.mine, unique_pdf(), type=T.medical)
    async with system_session(db.url) as session:
        for document in (old, new):
            row = await session.get(CandidateDocument, document.id)
            row.expires_on = today + timedelta(days=7)
    async with system_session(db.url) as session:
        await document_expiry_reminders(
            session, JobContext(settings=Settings(), now=datetime(2031, 3, 1, 6, tzinfo=UTC))
        )
    async with system_session(db.url) as session:
        keys = set(
            (
                await session.execute(
                    select(Notification.dedupe_key).where(Notification.tenant_id == people.tenant_id)
                )
            ).scalars()
        )
    assert any(str(new.id) in key for key in keys)
    assert not any(str(old.id) in key for key in keys)


async def test_a_merged_away_record_takes_no_upload_and_goes_with_its_survivor(db: Db, file_storage) -> None:
    """The candidates service's tombstone rule: a record merged into another answers with its survivor
    (409), and deleting the survivor deletes it too, in the trail."""
    people = await make_people(db)
    async with system_session(db.url) as session:
        tombstone = await make_candidate(
            session,
            await session.get(Tenant, people.tenant_id),
            merged_into_id=people.theirs,
            merged_at=utcnow(),
        )
    async with db.acting(people.admin) as session:
        with pytest.raises(Conflict) as refused:
            await service.candidate_for_upload(session, tombstone.id)
        assert refused.value.extra["survivorId"] == str(people.theirs)
        with pytest.raises(Conflict):
            await candidates_service.delete_candidate(session, file_storage, tombstone.id)
    async with committed(db, people.admin) as session:
        await candidates_service.delete_candidate(session, file_storage, people.theirs)
    assert await get_row(db.url, Candidate, tombstone.id) is None
    async with system_session(db.url) as session:
        entry = (
            (await session.execute(select(AuditLog).where(AuditLog.entity_id == tombstone.id)))
            .scalars()
            .all()
        )
    assert "candidate.delete" in {row.action for row in entry}
