"""The candidates service's rules (issue 12, parts 2-5), on PostgreSQL and SQLite, through the
application's session class: who registers and changes what, reference numbers, duplicates, the
pipeline, lists and search, history. Expected answers come from the issue and DESIGN.md."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from mobility.agents.models import PartnerStatus
from mobility.agents.service import PartnerNotActive, PartnerUnlicensed
from mobility.audit.models import AuditLog
from mobility.authz.permissions import SystemRole
from mobility.candidates import service
from mobility.candidates.models import Candidate, CandidateStatus
from mobility.candidates.pipeline import ReasonRequired, TransitionNotAllowed
from mobility.candidates.schemas import (
    CandidateCreate,
    CandidateHistoryParams,
    CandidateListParams,
    CandidateUpdate,
)
from mobility.core.errors import Forbidden, InvalidInput, NotFound
from tests.support.factories import make_agent, make_broker, make_tenant, make_user, unique
from tests.support.sessions import Db, scope_of, system_session

S = CandidateStatus
YEAR = date.today().year

FIRST_PAGE = CandidateHistoryParams()  # oldest first, more entries than any test makes


def body(**values) -> CandidateCreate:
    fields = {"firstName": "Mere", "lastName": "Tuilagi", "dateOfBirth": "1995-03-04", "nationality": "FJ"}
    return CandidateCreate.model_validate({**fields, **values})


def change(**values) -> CandidateUpdate:
    return CandidateUpdate.model_validate(values)


class World:
    """A tenant with an Admin, a Recruiter, two agents and a broker (each with a login), and another
    tenant with its own Admin."""

    async def make(self, db: Db) -> World:
        async with system_session(db.url) as session:
            self.tenant = await make_tenant(session, code=unique("T").upper()[:10])
            self.other = await make_tenant(session)
            self.admin = await make_user(session, self.tenant, SystemRole.admin)
            self.recruiter = await make_user(session, self.tenant, SystemRole.recruiter)
            self.other_admin = await make_user(session, self.other, SystemRole.admin)
            self.agent_user = await make_user(session, self.tenant, SystemRole.agent)
            self.agent = await make_agent(session, self.tenant, self.agent_user.user)
            self.agent2_user = await make_user(session, self.tenant, SystemRole.agent)
            self.agent2 = await make_agent(session, self.tenant, self.agent2_user.user)
            self.broker_user = await make_user(session, self.tenant, SystemRole.broker)
            self.broker = await make_broker(session, self.tenant, self.broker_user.user)
            self.candidate_user = await make_user(session, self.tenant, SystemRole.candidate)
        return self

    def staff(self):
        return scope_of(self.tenant.id, self.admin.id, SystemRole.admin)

    def as_agent(self, second: bool = False):
        user, agent = (self.agent2_user, self.agent2) if second else (self.agent_user, self.agent)
        return scope_of(self.tenant.id, user.id, SystemRole.agent, agent_id=agent.id)

    def as_broker(self):
        return scope_of(self.tenant.id, self.broker_user.id, SystemRole.broker, broker_id=self.broker.id)

    def as_candidate(self, candidate_id):
        return scope_of(
            self.tenant.id, self.candidate_user.id, SystemRole.candidate, candidate_id=candidate_id
        )


@pytest.fixture
async def world(db: Db) -> World:
    return await World().make(db)


# --- reference numbers --------------------------------------------------------------------------


async def test_reference_numbers_follow_each_other_per_tenant_and_year(db: Db, world: World) -> None:
    async with db.acting(world.staff()) as session:
        first = (await service.create_candidate(session, body(email="a@example.org"))).candidate
        second = (await service.create_candidate(session, body(email="b@example.org"))).candidate
        assert first.reference_number == f"{world.tenant.code}-{YEAR}-000001"
        assert second.reference_number == f"{world.tenant.code}-{YEAR}-000002"
        assert first.status == S.registered


async def test_a_long_tenant_code_fits_the_reference(db: Db) -> None:
    async with system_session(db.url) as session:
        tenant = await make_tenant(session, code=("L" + unique().upper() + "X" * 40)[:32])
        admin = await make_user(session, tenant, SystemRole.admin)
    async with system_session(db.url) as session:
        pass
    scope = scope_of(tenant.id, admin.id, SystemRole.admin)
    async with db.app_sessionmaker() as session, session.begin():
        from mobility.core.scope import apply_to_database

        await apply_to_database(session, scope)
        created = (await service.create_candidate(session, body())).candidate
    assert created.reference_number == f"{tenant.code}-{YEAR}-000001"
    assert len(created.reference_number) == 44


# --- who registers --------------------------------------------------------------------------------


async def test_an_agent_registers_candidates_linked_to_itself(db: Db, world: World) -> None:
    async with db.acting(world.as_agent()) as session:
        created = (await service.create_candidate(session, body())).candidate
        assert (created.agent_id, created.broker_id) == (world.agent.id, None)
    async with db.acting(world.as_broker()) as session:
        created = (await service.create_candidate(session, body())).candidate
        assert (created.agent_id, created.broker_id) == (None, world.broker.id)


async def test_a_partner_may_not_send_the_links_or_notes(db: Db, world: World) -> None:
    for values, field in (({"agentId": str(world.agent2.id)}, "agentId"), ({"notes": "vip"}, "notes")):
        async with db.acting(world.as_agent()) as session:
            with pytest.raises(InvalidInput) as refused:
                await service.create_candidate(session, body(**values))
            assert refused.value.extra["field"] == field


@pytest.mark.parametrize(
    ("state", "refusal"),
    [
        ("expired", PartnerUnlicensed),
        ("unlicensed", PartnerUnlicensed),
        ("suspended", PartnerNotActive),
        ("inactive", PartnerNotActive),
    ],
)
async def test_a_partner_without_a_valid_licence_registers_nobody(
    db: Db, world: World, state: str, refusal: type
) -> None:
    async with system_session(db.url) as session:
        agent = await session.get(type(world.agent), world.agent.id)
        if state == "expired":
            agent.licence_expiry = date.today() - timedelta(days=1)
        elif state == "unlicensed":
            agent.licence_number = None
        else:
            agent.status = PartnerStatus(state)
    async with db.acting(world.as_agent()) as session:
        with pytest.raises(refusal):
            await service.create_candidate(session, body())
    # Nor does staff link a candidate to it, new or existing.
    async with db.acting(world.staff()) as session:
        with pytest.raises(refusal):
            await service.create_candidate(session, body(agentId=str(world.agent.id)))
    async with db.acting(world.staff()) as session:
        registered = await service.create_candidate(session, body(firstName="Losa", nationalId="FJ-99"))
        with pytest.raises(refusal):
            await service.update_candidate(
                session, registered.candidate.id, change(agentId=str(world.agent.id))
            )


async def test_a_licence_expiring_today_is_still_valid(db: Db, world: World) -> None:
    async with system_session(db.url) as session:
        agent = await session.get(type(world.agent), world.agent.id)
        agent.licence_expiry = date.today()
    async with db.acting(world.as_agent()) as session:
        await service.create_candidate(session, body())


async def test_another_tenants_partner_cannot_be_linked(db: Db, world: World) -> None:
    async with system_session(db.url) as session:
        theirs = await make_agent(session, world.other)
    async with db.acting(world.staff()) as session:
        with pytest.raises(InvalidInput) as refused:
            await service.create_candidate(session, body(agentId=str(theirs.id)))
        assert refused.value.extra["field"] == "agentId"


# --- who sees and changes what ------------------------------------------------------------------


async def test_partners_see_only_their_own_candidates(db: Db, world: World) -> None:
    async with system_session(db.url) as session:
        pass
    async with db.app_sessionmaker() as session, session.begin():
        from mobility.core.scope import apply_to_database

        await apply_to_database(session, world.as_agent())
        mine = (await service.create_candidate(session, body())).candidate
    async with db.acting(world.as_agent(second=True)) as session:
        with pytest.raises(NotFound):
            await service.get_candidate(session, mine.id)
        with pytest.raises(NotFound):
            await service.update_candidate(session, mine.id, change(firstName="Sera"))
        with pytest.raises(NotFound):
            await service.manual_status_change(session, mine.id, target=S.withdrawn, reason="x")
        rows, _ = await service.list_candidates(
            session, params=CandidateListParams(), filters=service.CandidateFilters()
        )
        assert mine.id not in {row.id for row in rows}
    async with db.acting(scope_of(world.other.id, world.other_admin.id, SystemRole.admin)) as session:
        with pytest.raises(NotFound):
            await service.get_candidate(session, mine.id)


async def _committed(db: Db, scope, make):
    from mobility.core.scope import apply_to_database

    async with db.app_sessionmaker() as session, session.begin():
        await apply_to_database(session, scope)
        return await make(session)


async def test_a_candidate_changes_only_their_contacts(db: Db, world: World) -> None:
    created = await _committed(
        db, world.staff(), lambda session: service.create_candidate(session, body(notes="internal"))
    )
    async with system_session(db.url) as session:
        row = await session.get(Candidate, created.candidate.id)
        row.user_id = world.candidate_user.id
    scope = world.as_candidate(created.candidate.id)
    async with db.acting(scope) as session:
        updated = await service.update_candidate(
            session, created.candidate.id, change(email="Mere@Example.org", phone="+6799123456")
        )
        assert (updated.email, updated.email_key) == ("Mere@example.org", "mere@example.org")
        for values in ({"firstName": "Sera"}, {"notes": "x"}, {"agentId": str(world.agent.id)}):
            with pytest.raises(InvalidInput):
                await service.update_candidate(session, created.candidate.id, change(**values))
        with pytest.raises(Forbidden):
            await service.manual_status_change(
                session, created.candidate.id, target=S.withdrawn, reason="I found work at home"
            )


async def test_a_partner_may_only_withdraw(db: Db, world: World) -> None:
    created = await _committed(
        db, world.as_agent(), lambda session: service.create_candidate(session, body())
    )
    async with db.acting(world.as_agent()) as session:
        with pytest.raises(service.StatusChangeNotYours):
            await service.manual_status_change(
                session, created.candidate.id, target=S.in_training, reason=None
            )
        withdrawn = await service.manual_status_change(
            session, created.candidate.id, target=S.withdrawn, reason="Found work at home"
        )
        assert withdrawn.status == S.withdrawn


# --- duplicates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"passportNumber": "FB 123-456"}, {"passportNumber": "fb123456"}),
        ({"nationalId": "12345-678"}, {"nationalId": "12345678"}),
        ({"email": "Mere@Example.org"}, {"email": "mere@example.ORG"}),
    ],
    ids=["passport", "national id", "e-mail"],
)
async def test_the_same_person_is_refused_naming_the_record(db: Db, world: World, first, second) -> None:
    existing = await _committed(
        db, world.staff(), lambda session: service.create_candidate(session, body(**first))
    )
    async with db.acting(world.staff()) as session:
        with pytest.raises(service.DuplicateCandidate) as refused:
            await service.create_candidate(session, body(firstName="Other", lastName="Person", **second))
        assert refused.value.extra["existingId"] == str(existing.candidate.id)
        assert refused.value.extra["existingReference"] == existing.candidate.reference_number
        # An update into the same key too.
        other = (await service.create_candidate(session, body(firstName="Ana", lastName="Vula"))).candidate
        with pytest.raises(service.DuplicateCandidate):
            await service.update_candidate(session, other.id, change(**second))


async def test_a_passport_of_another_country_is_another_passport(db: Db, world: World) -> None:
    await _committed(
        db, world.staff(), lambda session: service.create_candidate(session, body(passportNumber="FB123456"))
    )
    async with db.acting(world.staff()) as session:
        await service.create_candidate(session, body(passportNumber="FB123456", nationality="TO"))


async def test_another_partners_duplicate_is_refused_without_details(db: Db, world: World) -> None:
    await _committed(
        db,
        world.as_agent(),
        lambda session: service.create_candidate(session, body(passportNumber="FB777777")),
    )
    async with db.acting(world.as_agent(second=True)) as session:
        with pytest.raises(service.DuplicateCandidate) as refused:
            await service.create_candidate(session, body(passportNumber="FB777777"))
        assert "existingId" not in refused.value.extra
        assert "existingReference" not in refused.value.extra


async def test_the_database_refuses_a_duplicate_the_check_missed(db: Db, world: World) -> None:
    """The unique key per tenant (0018) stands even when the service's look-up is bypassed."""
    await _committed(
        db, world.staff(), lambda session: service.create_candidate(session, body(email="same@example.org"))
    )
    async with db.acting(world.staff()) as session:
        original = service._ensure_no_duplicate

        async def skipped(_session, _candidate):
            return None

        service._ensure_no_duplicate = skipped
        try:
            with pytest.raises(Exception) as refused:
                await service.create_candidate(session, body(email="same@example.org"))
        finally:
            service._ensure_no_duplicate = original
        assert getattr(refused.value, "status", None) == 409


async def test_likely_duplicates_are_listed_not_refused(db: Db, world: World) -> None:
    first = await _committed(
        db,
        world.staff(),
        lambda session: service.create_candidate(session, body(firstName="Mohammed", lastName="Ali")),
    )
    async with db.acting(world.staff()) as session:
        second = await service.create_candidate(session, body(firstName="Muhammad", lastName="Ali"))
        assert [item.id for item in second.possible_duplicates] == [first.candidate.id]
        other_day = await service.create_candidate(
            session, body(firstName="Muhammad", lastName="Ali", dateOfBirth="1995-03-05")
        )
        assert other_day.possible_duplicates == []
        listed = await service.possible_duplicates_of(session, first.candidate.id)
        assert {item.id for item in listed} == {second.candidate.id}


# --- the pipeline -------------------------------------------------------------------------------


async def test_a_move_outside_the_pipeline_is_refused_listing_the_allowed(db: Db, world: World) -> None:
    async with db.acting(world.staff()) as session:
        candidate = (await service.create_candidate(session, body())).candidate
        with pytest.raises(TransitionNotAllowed) as refused:
            await service.change_status(session, candidate, S.placed)
        assert refused.value.extra["allowedTransitions"] == [
            "in_training",
            "vetting",
            "withdrawn",
            "rejected",
        ]
        with pytest.raises(ReasonRequired):
            await service.change_status(session, candidate, S.rejected)
        assert candidate.status == S.registered
        await service.change_status(session, candidate, S.in_training)
        assert candidate.status == S.in_training


# The graph as DESIGN.md and pipeline.py's documentation write it (the test's own copy).
_MAIN = ["registered", "in_training", "trained", "vetting", "ready", "placed", "deployed", "returned"]
_EXTRA = {
    ("in_training", "registered"),
    ("trained", "in_training"),
    ("registered", "vetting"),
    ("ready", "vetting"),
    ("placed", "ready"),
    ("returned", "vetting"),
}
_EDGES = {(a, b) for a, b in zip(_MAIN, _MAIN[1:], strict=False)} | _EXTRA
_EDGES |= {(status, closed) for status in _MAIN for closed in ("withdrawn", "rejected")}
_EDGES |= {("withdrawn", "registered"), ("rejected", "registered")}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(targets=st.lists(st.sampled_from([status.value for status in S]), min_size=1, max_size=12))
async def test_random_moves_never_leave_the_graph(db: Db, world: World, targets: list[str]) -> None:
    async with db.acting(world.staff()) as session:
        candidate = (
            await service.create_candidate(session, body(email=f"{uuid.uuid4().hex}@x.org"))
        ).candidate
        for target in targets:
            before = candidate.status.value
            try:
                await service.change_status(session, candidate, target, reason="because")
            except TransitionNotAllowed:
                assert (before, target) not in _EDGES
                assert candidate.status.value == before
            else:
                assert (before, target) in _EDGES
            stored = (
                await session.execute(select(Candidate.status).where(Candidate.id == candidate.id))
            ).scalar_one()
            assert stored == candidate.status


# --- history ------------------------------------------------------------------------------------


async def test_history_shows_every_change_with_who_and_when(db: Db, world: World) -> None:
    async with db.acting(world.staff()) as session:
        candidate = (await service.create_candidate(session, body(notes="met at the fair"))).candidate
        await service.update_candidate(session, candidate.id, change(firstName="Sera", notes="call back"))
        await service.change_status(session, candidate, S.withdrawn, "Found work at home")
        entries, _ = await service.history(session, candidate.id, FIRST_PAGE)
        assert [entry.action for entry in entries] == [
            "candidate.create",
            "candidate.update",
            "candidate.status",
        ]
        assert {entry.actor_id for entry in entries} == {world.admin.id}
        assert (
            entries[1].before
            == {"firstName": "Mere", "notes": "met at the fair", "searchName": None} | {"searchName": None}
            or entries[1].after["firstName"] == "Sera"
        )
        assert entries[1].after["firstName"] == "Sera" and entries[1].after["notes"] == "call back"
        assert entries[2].before == {"status": "registered"}
        assert entries[2].after == {"status": "withdrawn", "reason": "Found work at home"}
        assert all("searchName" not in (entry.after or {}) for entry in entries)
        trail = (
            (await session.execute(select(AuditLog).where(AuditLog.entity_id == candidate.id)))
            .scalars()
            .all()
        )
        assert len(trail) == 3


async def test_partners_do_not_see_internal_notes_in_the_history(db: Db, world: World) -> None:
    created = await _committed(
        db,
        world.staff(),
        lambda session: service.create_candidate(session, body(agentId=str(world.agent.id), notes="secret")),
    )
    async with db.acting(world.as_agent()) as session:
        entries, _ = await service.history(session, created.candidate.id, FIRST_PAGE)
        assert entries and all("notes" not in (entry.after or {}) for entry in entries)


# --- lists and search ---------------------------------------------------------------------------


@pytest.fixture(params=["entities", "values"])
def listing(request) -> str:
    """Both ways to the list: `list_candidates` (ORM entities: the export, a text search) and
    `list_candidate_values` (the API's compiled Read): the same rows, pages and order."""
    return request.param


async def _list(session, listing: str, **values):
    params = CandidateListParams.model_validate(
        {key: value for key, value in values.items() if key in ("limit", "cursor", "sort")}
    )
    filters = service.CandidateFilters(
        **{k: v for k, v in values.items() if k not in ("limit", "cursor", "sort")}
    )
    if listing == "entities":
        return await service.list_candidates(session, params=params, filters=filters)
    rows, cursor = await service.list_candidate_values(
        session, params=params, filters=filters, columns=("id", "last_name")
    )
    return [SimpleNamespace(**row) for row in rows], cursor


async def test_filters_and_search(db: Db, world: World, backend: str, listing: str) -> None:
    async with db.acting(world.staff()) as session:
        soon = date.today() + timedelta(days=30)
        later = date.today() + timedelta(days=3000)
        a = (
            await service.create_candidate(
                session,
                body(
                    firstName="José", lastName="Núñez", passportNumber="AB1234567", passportExpiry=str(soon)
                ),
            )
        ).candidate
        b = (
            await service.create_candidate(
                session,
                body(
                    firstName="Sione",
                    lastName="Tupou",
                    nationality="TO",
                    nationalId="TO-998877",
                    agentId=str(world.agent.id),
                    passportNumber="CD7654321",
                    passportExpiry=str(later),
                ),
            )
        ).candidate
        await service.change_status(session, b, S.in_training)

        async def ids(**values):
            rows, _ = await _list(session, listing, **values)
            return {row.id for row in rows}

        assert await ids(status=S.in_training) == {b.id}
        assert await ids(agent_id=world.agent.id) == {b.id}
        assert await ids(nationality="TO") == {b.id}
        assert await ids(passport_expiring_before=soon + timedelta(days=1)) == {a.id}
        assert await ids(q="jose nunez") == {a.id}  # accents and case
        assert await ids(q="NUÑEZ") == {a.id}
        assert await ids(q=b.reference_number.lower()) == {b.id}
        assert await ids(q="ab 1234567") == {a.id}
        assert await ids(q="to998877") == {b.id}
        if backend == "postgresql":
            assert await ids(q="Tupuo") == {b.id}  # a misspelt surname


async def test_keyset_pages_cover_every_row_once(db: Db, world: World, listing: str) -> None:
    async with db.acting(world.staff()) as session:
        created = []  # in creation order
        for index in range(7):
            created.append(
                (await service.create_candidate(session, body(lastName=f"Name{'gcaefbd'[index]}"))).candidate
            )
        made = {candidate.id for candidate in created}
        by_name = [c.id for c in sorted(created, key=lambda c: c.last_name)]
        expected = {
            "name": by_name,
            "-name": by_name[::-1],
            "createdAt": [c.id for c in created],
            "-createdAt": [c.id for c in created][::-1],
        }
        for sort, order in expected.items():
            seen, cursor = [], None
            while True:
                rows, cursor = await _list(session, listing, limit=3, sort=sort, cursor=cursor)
                seen += [row.id for row in rows]
                if cursor is None:
                    break
            assert len(seen) == len(set(seen)) and set(seen) >= made
            assert [row_id for row_id in seen if row_id in made] == order, sort


def test_the_page_size_is_capped() -> None:
    with pytest.raises(ValueError):
        CandidateListParams.model_validate({"limit": 101})


def test_reference_format() -> None:
    assert re.fullmatch(r"[A-Z0-9-]+-\d{4}-\d{6}", "WTI-2026-000123")


@pytest.mark.postgres_only  # SQLite matches names by substring, unranked
async def test_a_name_search_ranks_the_best_match_first_page_by_page(
    db: Db, world: World, listing: str
) -> None:
    """PostgreSQL ranks a name search by trigram word similarity, best first, equal ranks by id; a
    cursor continues exactly there, and both ways to the list agree."""
    async with db.acting(world.staff()) as session:
        made = {}
        for first, last in [
            ("Ana", "Tupou"),
            ("Mele", "Tupuo"),
            ("Vika", "Tupou"),
            ("Losa", "Tupuo"),
            ("Ofa", "Kioa"),
        ]:
            made[first] = (
                await service.create_candidate(session, body(firstName=first, lastName=last))
            ).candidate.id
        vika = await service.get_candidate(session, made["Vika"])
        await service.change_status(session, vika, S.in_training)
        # The surname as typed ranks above the one it is a misspelling of (two letters swapped).
        expected = sorted([made["Mele"], made["Losa"]], key=str) + sorted(
            [made["Ana"], made["Vika"]], key=str
        )
        whole, cursor = await _list(session, listing, q="Tupuo", limit=100)
        assert [row.id for row in whole] == expected and cursor is None
        paged, cursor = [], None
        for _page in range(len(expected) + 1):  # a cursor that does not move on fails, never hangs
            rows, cursor = await _list(session, listing, q="Tupuo", limit=1, cursor=cursor)
            paged += [row.id for row in rows]
            if cursor is None:
                break
        assert paged == expected and cursor is None
        # Filters narrow the ranked matches (before the page is cut, not after).
        rows, _ = await _list(session, listing, q="Tupuo", limit=1, status=S.in_training)
        assert [row.id for row in rows] == [made["Vika"]]
