"""Merging candidates (issue 12, part 5), the service's rules, on PostgreSQL and SQLite: every row of
the duplicate moves to the survivor, conflicts are refused with the conflicts listed, the survivor's
values win and its empty fields are filled, the duplicate stays as a tombstone that answers with the
survivor, and the trail records the whole merge. Expected answers come from the issue and the rules in
candidates/merge.py's docstring."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from mobility.audit.models import AuditLog
from mobility.authz.permissions import SystemRole
from mobility.candidates import merge, service
from mobility.candidates.merge import FOLLOWING, MOVED, NOT_MOVED, MergeConflict, MergeNotAllowed
from mobility.candidates.models import Candidate, CandidateStatus
from mobility.candidates.schemas import CandidateHistoryParams, CandidateListParams, CandidateUpdate
from mobility.core.errors import InvalidInput, NotFound
from mobility.core.scope import apply_to_database
from mobility.documents.models import CandidateDocument, DocumentStatus, DocumentType
from mobility.models import metadata
from mobility.training.models import Enrollment
from tests.support.factories import (
    make_agent,
    make_assessment,
    make_attendance,
    make_candidate,
    make_certificate,
    make_course,
    make_document,
    make_enrollment,
    make_invoice,
    make_payment,
    make_placement,
    make_tenant,
    make_user,
    make_vetting_record,
)
from tests.support.rows import model_for
from tests.support.sessions import Db, scope_of, system_session

S = CandidateStatus
DOB = date(1994, 7, 1)

FIRST_PAGE = CandidateHistoryParams()  # oldest first, more entries than any test makes


def _references_to(table: str) -> set[tuple[str, str]]:
    """(table, column) of every foreign key to `table`, from the models (the tenant column aside)."""
    found = set()
    for source in metadata.tables.values():
        for key in source.foreign_key_constraints:
            if key.referred_table.name == table:
                found |= {(source.name, column.name) for column in key.columns if column.name != "tenantId"}
    return found


def _moved() -> set[tuple[str, str]]:
    return {
        (model.__tablename__, model.__mapper__.attrs[attribute].columns[0].name) for model, attribute in MOVED
    }


# --- every child table is handled -----------------------------------------------------------------


def test_every_reference_to_a_candidate_is_moved_or_classified() -> None:
    """A new table referring to candidates fails here until merge.py moves its rows or says why not."""
    references = _references_to("candidates")
    unhandled = references - _moved() - set(NOT_MOVED)
    assert not unhandled, f"foreign keys to candidates that merge.py does not handle: {sorted(unhandled)}"
    stale = (_moved() | set(NOT_MOVED)) - references
    assert not stale, f"merge.py handles references that no longer exist: {sorted(stale)}"


def test_rows_hanging_off_moved_rows_move_themselves_or_follow() -> None:
    """A table referring to a moved table (an enrollment's attendance, ...) either refers to the
    candidate itself (it is moved) or is declared to follow its parent."""
    moved_tables = {table for table, _column in _moved()}
    following = {
        (model.__tablename__, model.__mapper__.attrs[attribute].columns[0].name, parent.__tablename__)
        for model, attribute, parent in FOLLOWING
    }
    missing = []
    for parent in moved_tables:
        for table, column in _references_to(parent):
            if table not in moved_tables and (table, column, parent) not in following:
                missing.append(f"{table}.{column} -> {parent}")
    assert not missing, f"rows of moved rows that neither move nor follow: {missing}"


# --- the world ------------------------------------------------------------------------------------


@dataclass
class World:
    db: Db
    tenant: Any
    admin: Any
    recruiter: Any
    agent_user: Any
    agent: Any

    def staff(self):
        return scope_of(self.tenant.id, self.admin.id, SystemRole.admin)

    def as_agent(self):
        return scope_of(self.tenant.id, self.agent_user.id, SystemRole.agent, agent_id=self.agent.id)

    async def candidate(self, **values) -> Candidate:
        values.setdefault("date_of_birth", DOB)
        values.setdefault("nationality", "FJ")
        async with system_session(self.db.url) as session:
            candidate = await make_candidate(session, self.tenant, **values)
            service._refresh_keys(candidate)
        return candidate

    async def merge(self, survivor: Candidate, duplicate: Candidate, scope=None):
        """Merged and committed (a unit of work of the API's kind that commits: the tests then look)."""
        async with system_session(self.db.url) as session:
            await apply_to_database(session, scope or self.staff())
            return await merge.merge_candidates(session, survivor_id=survivor.id, duplicate_id=duplicate.id)


@pytest.fixture
async def world(db: Db) -> World:
    async with system_session(db.url) as session:
        tenant = await make_tenant(session)
        admin = await make_user(session, tenant, SystemRole.admin)
        recruiter = await make_user(session, tenant, SystemRole.recruiter)
        agent_user = await make_user(session, tenant, SystemRole.agent)
        agent = await make_agent(session, tenant, agent_user.user)
    return World(db, tenant, admin, recruiter, agent_user, agent)


async def _children(world: World, candidate: Candidate) -> dict[str, list[uuid.UUID]]:
    """Rows of every child table made for `candidate`: one per table that refers to candidates (and
    to those), by table. Covers every child table the models have, or fails."""
    async with system_session(world.db.url) as session:
        course = await make_course(session, world.tenant)
        enrollment = await make_enrollment(session, course, candidate)
        rows = {
            "candidate_documents": await make_document(session, candidate),
            "enrollments": enrollment,
            "attendance_records": await make_attendance(session, enrollment),
            "assessments": await make_assessment(session, enrollment),
            "certificates": await make_certificate(session, enrollment),
            "vetting_records": await make_vetting_record(session, candidate),
            "placements": await make_placement(session, candidate),
            "payments": await make_payment(session, candidate),
            "invoices": await make_invoice(session, candidate),
        }
    expected = {table for table, _c in _moved()} | {model.__tablename__ for model, _a, _p in FOLLOWING}
    assert set(rows) == expected, f"make a row of each child table here: {sorted(expected - set(rows))}"
    return {table: [row.id] for table, row in rows.items()}


async def _referring(db: Db, candidate_id: uuid.UUID) -> dict[str, set[uuid.UUID]]:
    """Ids of the rows of each child table that refer to the candidate (directly, or through an
    enrollment), read behind the service's back."""
    found: dict[str, set[uuid.UUID]] = {}
    async with system_session(db.url) as session:
        for table, column in _moved():
            model = model_for(table)
            rows = await session.execute(select(model.id).where(model.__table__.c[column] == candidate_id))
            found[table] = set(rows.scalars())
        for model, attribute, parent in FOLLOWING:
            column = getattr(model, attribute)
            rows = await session.execute(select(model.id).where(column.in_(found[parent.__tablename__])))
            found[model.__tablename__] = set(rows.scalars())
    return found


# --- what moves -----------------------------------------------------------------------------------


async def test_a_merge_moves_every_child_row_and_leaves_a_tombstone(world: World) -> None:
    survivor = await world.candidate(first_name="Mere", last_name="Tuilagi")
    duplicate = await world.candidate(first_name="Meri", last_name="Tuilagi")
    theirs = await _children(world, duplicate)
    mine = await _children(world, survivor)

    merged = await world.merge(survivor, duplicate)

    after = await _referring(world.db, survivor.id)
    for table in theirs:
        assert after[table] == set(mine[table]) | set(theirs[table]), table
        assert merged.moved[table] == theirs[table], table
    assert all(not ids for ids in (await _referring(world.db, duplicate.id)).values())
    async with system_session(world.db.url) as session:
        # Nothing at all refers to the duplicate any more: it is a leaf.
        for table, column in _references_to("candidates"):
            count = select(func.count()).select_from(metadata.tables[table])
            count = count.where(metadata.tables[table].c[column] == duplicate.id)
            assert (await session.execute(count)).scalar() == 0, f"{table}.{column}"
        tombstone = (
            await session.execute(select(Candidate).where(Candidate.id == duplicate.id))
        ).scalar_one()
    assert (tombstone.merged_into_id, tombstone.merged_by) == (survivor.id, world.admin.id)
    assert tombstone.merged_at is not None


async def test_records_merged_into_the_duplicate_point_at_the_survivor(world: World) -> None:
    first, second, third = [c async for c in _three(world)]
    await world.merge(second, first)
    await world.merge(third, second)
    async with system_session(world.db.url) as session:
        rows = await session.execute(
            select(Candidate.id, Candidate.merged_into_id).where(Candidate.id.in_([first.id, second.id]))
        )
        assert dict(rows.all()) == {first.id: third.id, second.id: third.id}
    async with world.db.acting(world.staff()) as session:
        with pytest.raises(service.CandidateMovedPermanently) as raised:
            await service.get_candidate(session, first.id, reading=True)
        assert raised.value.extra["survivorId"] == str(third.id)


async def _three(world: World):
    for name in ("Ana", "Bui", "Cai"):
        yield await world.candidate(first_name=name)


# --- profile fields -------------------------------------------------------------------------------


async def test_the_survivors_values_win_and_its_empty_fields_are_filled(world: World) -> None:
    async with system_session(world.db.url) as session:
        login = (await make_user(session, world.tenant, SystemRole.candidate)).user
    survivor = await world.candidate(
        first_name="Mere", phone="+6799000001", skills=[], email=None, notes=None, middle_name=None
    )
    duplicate = await world.candidate(
        first_name="Meri",
        middle_name="Ana",
        phone="+6799000002",
        email="Mere@Example.org",
        passport_number="FB123456",
        passport_expiry=date(2031, 1, 1),
        national_id="123-456",
        skills=[{"name": "Welding"}],
        notes="Came through the 2025 drive",
        agent_id=world.agent.id,
        user_id=login.id,
    )
    merged = await world.merge(survivor, duplicate)
    assert set(merged.filled_fields) == {
        "middleName",
        "email",
        "nationalId",
        "passportNumber",
        "passportExpiry",
        "skills",
        "notes",
        "agentId",
        "userId",
    }
    async with system_session(world.db.url) as session:
        kept = (await session.execute(select(Candidate).where(Candidate.id == survivor.id))).scalar_one()
        tomb = (await session.execute(select(Candidate).where(Candidate.id == duplicate.id))).scalar_one()
    # Survivor's own values win.
    assert (kept.first_name, kept.phone) == ("Mere", "+6799000001")
    # Its empty fields come from the duplicate, passport number and expiry together.
    assert (kept.middle_name, kept.email, kept.national_id) == ("Ana", "Mere@Example.org", "123-456")
    assert (kept.passport_number, kept.passport_expiry) == ("FB123456", date(2031, 1, 1))
    assert (kept.skills, kept.notes, kept.agent_id, kept.user_id) == (
        [{"name": "Welding"}],
        "Came through the 2025 drive",
        world.agent.id,
        login.id,
    )
    # The keys are the survivor's now; the tombstone keeps its values but no key and no login.
    assert (kept.passport_key, kept.national_id_key, kept.email_key) == (
        "FJ:FB123456",
        "FJ:123456",
        "mere@example.org",
    )
    assert (tomb.passport_key, tomb.national_id_key, tomb.email_key, tomb.user_id) == (None,) * 4
    assert (tomb.passport_number, tomb.email) == ("FB123456", "Mere@Example.org")


async def test_a_survivor_with_a_passport_keeps_its_own(world: World) -> None:
    survivor = await world.candidate(passport_number="FB000001")
    duplicate = await world.candidate(passport_number="FB999999", passport_expiry=date(2031, 1, 1))
    merged = await world.merge(survivor, duplicate)
    assert "passportNumber" not in merged.filled_fields and "passportExpiry" not in merged.filled_fields
    assert (merged.survivor.passport_number, merged.survivor.passport_expiry) == ("FB000001", None)


async def test_a_key_the_survivor_takes_that_a_third_record_holds_is_refused(world: World) -> None:
    """The passport key is the survivor's nationality and the number: another record may hold it."""
    await world.candidate(nationality="TO", passport_number="FB123456")
    survivor = await world.candidate(nationality="TO")
    duplicate = await world.candidate(nationality="FJ", passport_number="FB123456")
    async with world.db.acting(world.staff()) as session:
        with pytest.raises(service.DuplicateCandidate):
            await merge.merge_candidates(session, survivor_id=survivor.id, duplicate_id=duplicate.id)


# --- documents ------------------------------------------------------------------------------------


def _at(month: int) -> datetime:
    return datetime(2026, month, 1, tzinfo=UTC)


async def test_one_version_of_each_type_stays_current_the_latest_unrejected(world: World) -> None:
    """Both records' documents come together; of a type held one at a time, the latest upload that is
    not rejected counts and the others become versions it superseded. Certificates come several at a
    time. The passport follows its current document: here the duplicate's, uploaded later."""
    survivor = await world.candidate(passport_number="FB000001", passport_expiry=date(2030, 1, 1))
    duplicate = await world.candidate(passport_number="FB000002", passport_expiry=date(2032, 1, 1))
    D, V = DocumentType, DocumentStatus
    async with system_session(world.db.url) as session:

        async def doc(candidate, kind, month, **values):
            return await make_document(session, candidate, type=kind, created_at=_at(month), **values)

        old_passport = await doc(survivor, D.passport, 1, document_number="FB000001", status=V.verified)
        new_passport = await doc(
            duplicate, D.passport, 6, document_number="FB000002", expires_on=date(2032, 1, 1)
        )
        newer_medical, older_medical = await doc(survivor, D.medical, 5), await doc(duplicate, D.medical, 2)
        pending_visa = await doc(survivor, D.visa, 1)
        rejected_visa = await doc(duplicate, D.visa, 7, status=V.rejected)
        certificates = {(await doc(c, D.certificate, 3)).id for c in (survivor, duplicate)}

    merged = await world.merge(survivor, duplicate)

    async with system_session(world.db.url) as session:
        rows = (
            await session.execute(
                select(CandidateDocument).where(CandidateDocument.candidate_id == survivor.id)
            )
        ).scalars()
        superseded_by = {row.id: row.superseded_by_id for row in rows}
    assert {key for key, newer in superseded_by.items() if newer is None} == {
        new_passport.id,
        newer_medical.id,
        pending_visa.id,
        *certificates,
    }
    assert {key: newer for key, newer in superseded_by.items() if newer is not None} == {
        old_passport.id: new_passport.id,
        older_medical.id: newer_medical.id,
        rejected_visa.id: pending_visa.id,
    }
    assert (merged.survivor.passport_number, merged.survivor.passport_expiry) == (
        "FB000002",
        date(2032, 1, 1),
    )
    assert {"passportNumber", "passportExpiry"} <= set(merged.filled_fields)
    assert merged.survivor.passport_key == "FJ:FB000002"


async def test_the_survivors_own_later_passport_stays_its_passport(world: World) -> None:
    survivor = await world.candidate(passport_number="FB000001")
    duplicate = await world.candidate(passport_number="FB000002")
    async with system_session(world.db.url) as session:
        await make_document(session, survivor, created_at=_at(6), document_number="FB000001")
        await make_document(session, duplicate, created_at=_at(1), document_number="FB000002")
    merged = await world.merge(survivor, duplicate)
    assert merged.survivor.passport_number == "FB000001"
    assert "passportNumber" not in merged.filled_fields


# --- conflicts ------------------------------------------------------------------------------------


async def test_conflicts_are_refused_and_listed_together(world: World) -> None:
    async with system_session(world.db.url) as session:
        logins = [(await make_user(session, world.tenant, SystemRole.candidate)).user for _ in range(2)]
    survivor = await world.candidate(user_id=logins[0].id, status=S.registered)
    duplicate = await world.candidate(user_id=logins[1].id, status=S.in_training)
    async with system_session(world.db.url) as session:
        course = await make_course(session, world.tenant)
        other_course = await make_course(session, world.tenant)
        mine = await make_enrollment(session, course, survivor)
        theirs = await make_enrollment(session, course, duplicate)
        await make_enrollment(session, other_course, duplicate)  # no conflict: only the survivor's course
    async with world.db.acting(world.staff()) as session:
        with pytest.raises(MergeConflict) as raised:
            await merge.merge_candidates(session, survivor_id=survivor.id, duplicate_id=duplicate.id)
    assert raised.value.status == 409 and raised.value.code == "merge_conflict"
    assert sorted(raised.value.extra["conflicts"], key=lambda c: c["kind"]) == [
        {
            "kind": "enrollment",
            "courseId": str(course.id),
            "survivorEnrollmentId": str(mine.id),
            "duplicateEnrollmentId": str(theirs.id),
        },
        {"kind": "login", "survivorUserId": str(logins[0].id), "duplicateUserId": str(logins[1].id)},
        {"kind": "status", "survivorStatus": "registered", "duplicateStatus": "in_training"},
    ]


@pytest.mark.parametrize(
    ("survivor", "duplicate", "refused"),
    [
        (S.registered, S.registered, False),
        (S.vetting, S.in_training, False),
        (S.registered, S.in_training, True),
        (S.ready, S.placed, True),
        (S.deployed, S.returned, True),
        # A closed duplicate never conflicts; an open one into a closed survivor does.
        (S.registered, S.withdrawn, False),
        (S.withdrawn, S.rejected, False),
        (S.rejected, S.registered, True),
    ],
)
def test_a_duplicate_further_along_the_pipeline_conflicts(survivor, duplicate, refused) -> None:
    assert merge.status_conflicts(survivor, duplicate) is refused


async def test_a_survivor_keeps_its_status(world: World) -> None:
    survivor = await world.candidate(status=S.vetting)
    duplicate = await world.candidate(status=S.rejected)
    merged = await world.merge(survivor, duplicate)
    assert merged.survivor.status == S.vetting


async def test_a_record_into_itself_or_a_tombstone_either_way_is_refused(world: World) -> None:
    one, two, three = [c async for c in _three(world)]
    await world.merge(two, three)  # three is a tombstone now
    async with world.db.acting(world.staff()) as session:
        with pytest.raises(MergeNotAllowed):
            await merge.merge_candidates(session, survivor_id=one.id, duplicate_id=one.id)
        for survivor, duplicate in ((three, one), (one, three)):
            with pytest.raises(service.CandidateMerged) as raised:
                await merge.merge_candidates(session, survivor_id=survivor.id, duplicate_id=duplicate.id)
            assert raised.value.extra["survivorId"] == str(two.id)


async def test_another_tenants_records_are_not_found(world: World) -> None:
    async with system_session(world.db.url) as session:
        other = await make_tenant(session)
        theirs = await make_candidate(session, other)
    mine = await world.candidate()
    async with world.db.acting(world.staff()) as session:
        with pytest.raises(NotFound):
            await merge.merge_candidates(session, survivor_id=theirs.id, duplicate_id=mine.id)
        with pytest.raises(InvalidInput):
            await merge.merge_candidates(session, survivor_id=mine.id, duplicate_id=theirs.id)


# --- the tombstone --------------------------------------------------------------------------------


async def test_a_tombstone_is_hidden_and_answers_with_the_survivor(world: World) -> None:
    survivor = await world.candidate(first_name="Losana", last_name="Vakaloloma", passport_number="FB7001")
    duplicate = await world.candidate(first_name="Losana", last_name="Vakaloloma", agent_id=world.agent.id)
    await world.merge(survivor, duplicate)
    async with world.db.acting(world.staff()) as session:
        listed, _ = await service.list_candidates(
            session, params=CandidateListParams(), filters=service.CandidateFilters(q="Vakaloloma")
        )
        assert [row.id for row in listed] == [survivor.id]
        everyone, _ = await service.list_candidates(
            session, params=CandidateListParams(limit=100), filters=service.CandidateFilters()
        )
        assert duplicate.id not in {row.id for row in everyone}
        assert await service.possible_duplicates_of(session, survivor.id) == []
        with pytest.raises(service.CandidateMovedPermanently) as read:
            await service.get_candidate(session, duplicate.id, reading=True)
        assert (read.value.status, read.value.extra) == (308, {"survivorId": str(survivor.id)})
        assert read.value.headers() == {"Location": f"/api/v1/candidates/{survivor.id}"}
        for act in (
            service.update_candidate(session, duplicate.id, CandidateUpdate(first_name="X")),
            service.manual_status_change(session, duplicate.id, target=S.withdrawn, reason="Gone"),
            service.history(session, duplicate.id, FIRST_PAGE),
            service.possible_duplicates_of(session, duplicate.id),
        ):
            with pytest.raises(service.CandidateMerged) as refused:
                await act
            assert (refused.value.status, refused.value.extra) == (409, {"survivorId": str(survivor.id)})
        # The status rule that other domains call refuses a tombstone too.
        tomb = (await session.execute(select(Candidate).where(Candidate.id == duplicate.id))).scalar_one()
        with pytest.raises(service.CandidateMerged):
            await service.change_status(session, tomb, S.in_training)


async def test_a_partner_who_cannot_see_the_survivor_learns_nothing(world: World) -> None:
    """The agent's own candidate was merged into another agent's record: a 404, as for any id. (A
    survivor without an agent would take this agent's link, and be theirs to see.)"""
    async with system_session(world.db.url) as session:
        other_agent = await make_agent(session, world.tenant)
    survivor = await world.candidate(agent_id=other_agent.id)
    duplicate = await world.candidate(agent_id=world.agent.id)
    await world.merge(survivor, duplicate)
    async with world.db.acting(world.as_agent()) as session:
        for reading in (True, False):
            with pytest.raises(NotFound) as raised:
                await service.get_candidate(session, duplicate.id, reading=reading)
            assert "survivorId" not in raised.value.extra and str(survivor.id) not in raised.value.detail
        listed, _ = await service.list_candidates(
            session, params=CandidateListParams(), filters=service.CandidateFilters()
        )
        assert listed == []


async def test_a_partner_who_sees_the_survivor_is_told_where_it_went(world: World) -> None:
    survivor = await world.candidate(agent_id=world.agent.id)
    duplicate = await world.candidate(agent_id=world.agent.id)
    await world.merge(survivor, duplicate)
    async with world.db.acting(world.as_agent()) as session:
        with pytest.raises(service.CandidateMerged) as raised:
            await service.update_candidate(session, duplicate.id, CandidateUpdate(phone="+6799000003"))
        assert raised.value.extra == {"survivorId": str(survivor.id)}


# --- the trail ------------------------------------------------------------------------------------


async def test_the_trail_records_the_whole_merge(world: World) -> None:
    survivor = await world.candidate(first_name="Mere")
    duplicate = await world.candidate(first_name="Meri", email="meri@example.org")
    theirs = await _children(world, duplicate)
    merged = await world.merge(survivor, duplicate)
    async with system_session(world.db.url) as session:
        rows = list(
            (
                await session.execute(
                    select(AuditLog).where(AuditLog.action.like("candidate.merge%")).order_by(AuditLog.id)
                )
            ).scalars()
        )
    rows = [row for row in rows if row.tenant_id == world.tenant.id]
    [summary] = [row for row in rows if row.action == "candidate.merge"]
    assert (summary.entity_type, summary.entity_id, summary.actor_id) == (
        "candidates",
        survivor.id,
        world.admin.id,
    )
    assert summary.after["email"] == "meri@example.org"
    moved = {table: [str(i) for i in ids] for table, ids in theirs.items()} | {"tombstones": []}
    assert summary.after["merge"] == {
        "duplicateId": str(duplicate.id),
        "duplicateReference": duplicate.reference_number,
        "moved": moved,
        "filledFields": merged.filled_fields,
    }
    # One entry per row moved (the rows that follow an enrollment are not changed), and the tombstone's.
    direct = {table for table, _c in _moved()}
    per_row = {(row.entity_type, row.entity_id) for row in rows if row.action == "candidate.merge.move"}
    assert per_row == {(table, theirs[table][0]) for table in direct}
    for row in rows:
        if row.action == "candidate.merge.move":
            assert (row.before["candidateId"], row.after["candidateId"]) == (
                str(duplicate.id),
                str(survivor.id),
            )
    [tomb] = [row for row in rows if row.action == "candidate.merged"]
    assert (tomb.entity_id, tomb.after["mergedIntoId"]) == (duplicate.id, str(survivor.id))

    async with world.db.acting(world.staff()) as session:
        history, _ = await service.history(session, survivor.id, FIRST_PAGE)
    actions = [(entry.candidate_id, entry.action) for entry in history]
    assert (survivor.id, "candidate.merge") in actions and (duplicate.id, "candidate.merged") in actions
    async with world.db.acting(world.staff()) as session:
        shown = [
            e
            for e in (await service.history(session, survivor.id, FIRST_PAGE))[0]
            if e.action == "candidate.merge"
        ]
    assert shown[0].after["merge"]["duplicateId"] == str(duplicate.id)


async def test_the_merge_detail_is_staffs_in_the_history(world: World) -> None:
    survivor = await world.candidate(agent_id=world.agent.id)
    duplicate = await world.candidate(agent_id=world.agent.id)
    await world.merge(survivor, duplicate)
    async with world.db.acting(world.as_agent()) as session:
        [entry] = [
            e
            for e in (await service.history(session, survivor.id, FIRST_PAGE))[0]
            if e.action == "candidate.merge"
        ]
    assert "merge" not in (entry.after or {})


async def test_enrollment_rows_stay_attached_to_their_enrollment(world: World) -> None:
    survivor = await world.candidate()
    duplicate = await world.candidate()
    theirs = await _children(world, duplicate)
    await world.merge(survivor, duplicate)
    async with system_session(world.db.url) as session:
        enrollment = (
            await session.execute(select(Enrollment).where(Enrollment.id == theirs["enrollments"][0]))
        ).scalar_one()
    assert enrollment.candidate_id == survivor.id
    assert (await _referring(world.db, survivor.id))["certificates"] == set(theirs["certificates"])
