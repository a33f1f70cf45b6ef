"""Vetting checks about to lapse, and lapsing them (vetting/tasks.py).

Expected answers come from the rules in the module's docstring: a cleared check whose `expiresAt` has
come (at or before the run) is `expired`, audited as `vetting_record.lapse`, and its people are told
once unless another record covers the check or the candidate left the pipeline; a candidate in `ready`
stays there (DESIGN.md does not move them), told whether the lapsed check is a required one. Reminders:
one per "vettingExpiry" lead time bucket of a cleared, unlapsed check, unless a record of the same check
is cleared until later.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select

from mobility.audit.models import AuditLog
from mobility.candidates.models import Candidate, CandidateStatus
from mobility.core.config import Settings
from mobility.core.jobs import JobContext
from mobility.notifications import templates
from mobility.vetting.models import VettingCheckType, VettingRecord, VettingStatus
from mobility.vetting.tasks import lapse_expired_checks, vetting_expiry_reminders
from tests.support.factories import make_candidate
from tests.support.reminders import make_people, notifications_in, queued, set_setting, to_each
from tests.support.rows import RowBuilder
from tests.support.sessions import Db, get_row, system_session

LAPSED = "reminders.vetting_lapsed"
EXPIRING = "reminders.vetting_expiry"
C, S = VettingCheckType, VettingStatus


def context(now: datetime) -> JobContext:
    return JobContext(settings=Settings(), now=now)


async def check(session, people, candidate, *, expires_at, kind=C.police_clearance, status=S.cleared):
    return await RowBuilder(session, people.tenant).build(
        VettingRecord,
        candidate_id=candidate.id,
        check_type=kind,
        status=status,
        expires_at=expires_at,
        completed_at=None if expires_at is None else expires_at - timedelta(days=365),
    )


async def candidate_of(session, people, *, login=False, status=CandidateStatus.ready):
    return await make_candidate(
        session,
        people.tenant,
        agent_id=people.agent.id,
        user_id=people.candidate_login.id if login else None,
        status=status,
    )


async def test_checks_whose_expiry_has_come_lapse_audited_and_their_people_are_told_once(db: Db) -> None:
    now = datetime(2052, 5, 20, 6, 0, tzinfo=UTC)
    second = timedelta(seconds=1)
    async with system_session(db.url) as session:
        people = await make_people(session)
        ready = await candidate_of(session, people, login=True)  # in the work-ready pool
        vetting = await candidate_of(session, people, status=CandidateStatus.vetting)
        withdrawn = await candidate_of(session, people, status=CandidateStatus.withdrawn)
        renewed = await candidate_of(session, people)
        lapses = {  # record -> told (the candidate's status, whether the check is required); None: not told
            await check(session, people, ready, expires_at=now - second): ("ready", True),
            await check(session, people, ready, expires_at=now, kind=C.skills): (
                "ready",
                False,
            ),  # exactly now
            await check(session, people, vetting, expires_at=now - timedelta(days=3)): ("vetting", True),
            await check(session, people, withdrawn, expires_at=now - second): None,  # left the pipeline
            # Redone in time: a newer cleared police clearance covers it.
            await check(session, people, renewed, expires_at=now - second): None,
        }
        await check(session, people, renewed, expires_at=now + timedelta(days=300))
        untouched = [
            await check(session, people, vetting, expires_at=now + second, kind=C.medical),  # not yet
            await check(session, people, vetting, expires_at=None, kind=C.identity),  # never expires
            await check(
                session, people, vetting, expires_at=now - second, status=S.pending, kind=C.reference
            ),
            await check(session, people, vetting, expires_at=now - second, status=S.waived, kind=C.skills),
            await check(session, people, vetting, expires_at=now - second, status=S.failed, kind=C.medical),
        ]
    async with system_session(db.url) as session:
        first = await lapse_expired_checks(session, context(now))
    async with system_session(db.url) as session:
        second_run = await lapse_expired_checks(session, context(now))
    assert first["lapsed"] >= 5 and first["notified"] >= 3 and first["ready_candidates"] >= 1
    assert second_run == {"lapsed": 0, "notified": 0, "ready_candidates": 0, "queued": 0}
    for record in lapses:
        assert (await get_row(db.url, VettingRecord, record.id)).status == S.expired
    for record in untouched:
        assert (await get_row(db.url, VettingRecord, record.id)).status == record.status
    # The candidate in the work-ready pool stays there: staff are told and decide.
    assert (await get_row(db.url, Candidate, ready.id)).status == CandidateStatus.ready
    async with system_session(db.url) as session:
        trail = list(
            (
                await session.execute(
                    select(AuditLog).where(
                        AuditLog.entity_id.in_([r.id for r in [*lapses, *untouched]]),
                        AuditLog.action != "vetting_records.create",
                    )
                )
            ).scalars()
        )
    assert sorted(entry.entity_id for entry in trail) == sorted(r.id for r in lapses)  # one each
    for entry in trail:
        assert entry.action == "vetting_record.lapse" and entry.actor_id is None
        assert entry.tenant_id == people.tenant.id
        assert entry.before == {"status": "cleared"}
        assert entry.after["status"] == "expired" and entry.after["reason"].startswith("expired at ")
    staff = to_each(people.agent_login, people.admin)
    assert await queued(db.url, people.tenant, LAPSED) == {
        f"vetting-lapsed:{record.id}:{record.expires_at.isoformat()}": (
            staff | to_each(people.candidate_login) if told[0] == "ready" else staff
        )
        for record, told in lapses.items()
        if told is not None
    }
    notices = {  # record id -> what its Admin was told
        row.dedupe_key.split(":")[1]: row.payload
        for row in await notifications_in(db.url, people.tenant, template=LAPSED)
        if row.recipient_id == people.admin.id
    }
    # Each told record: the required flag and whether its candidate is in the work-ready pool.
    assert {
        record.check_type.value: (
            notices[str(record.id)]["required"],
            notices[str(record.id)]["in_ready_pool"],
        )
        for record, told in lapses.items()
        if told is not None and told[0] == "vetting"
    } == {"police_clearance": (True, False)}
    assert {
        (notices[str(record.id)]["required"], notices[str(record.id)]["in_ready_pool"])
        for record, told in lapses.items()
        if told is not None and told[0] == "ready"
    } == {(True, True), (False, True)}
    payloads = {payload["check_type"]: payload for payload in notices.values()}
    assert payloads["skills"] == {
        "candidate_name": "Sera Tuilagi",
        "check_type": "skills",
        "expired_on": now.date().isoformat(),
        "required": False,  # not among the default required checks
        "in_ready_pool": True,
    }
    ready_notice = next(
        row.payload
        for row in await notifications_in(db.url, people.tenant, template=LAPSED)
        if row.payload["in_ready_pool"] and row.payload["required"]
    )
    text = templates.render(
        LAPSED, ready_notice, language="en", brand=templates.branding("WTI", None, None)
    ).text
    assert "work-ready pool" in text and "no placement can be offered" in text
    assert not await notifications_in(db.url, people.other_tenant)


async def test_the_tenants_required_checks_decide_what_a_lapse_means(db: Db) -> None:
    now = datetime(2055, 2, 1, 6, 0, tzinfo=UTC)
    async with system_session(db.url) as session:
        people = await make_people(session)
        set_setting(session, people.tenant, "vetting.requiredChecks", ["skills"])
        ready = await candidate_of(session, people)
        await check(session, people, ready, expires_at=now - timedelta(hours=1), kind=C.skills)
        await check(session, people, ready, expires_at=now - timedelta(hours=1), kind=C.police_clearance)
    async with system_session(db.url) as session:
        await lapse_expired_checks(session, context(now))
    required = {
        row.payload["check_type"]: row.payload["required"]
        for row in await notifications_in(db.url, people.tenant, template=LAPSED)
    }
    assert required == {"skills": True, "police clearance": False}


async def test_cleared_checks_are_reminded_once_per_lead_time_bucket_before_they_lapse(db: Db) -> None:
    today = date(2058, 8, 10)
    now = datetime.combine(today, time(6), tzinfo=UTC)

    def at(days: int, hour: int = 12) -> datetime:
        return datetime.combine(today + timedelta(days=days), time(hour), tzinfo=UTC)

    async with system_session(db.url) as session:
        people = await make_people(session)
        set_setting(session, people.tenant, "notifications.reminderLeadDays", {"vettingExpiry": [30, 7]})
        sera = await candidate_of(session, people, login=True)
        withdrawn = await candidate_of(session, people, status=CandidateStatus.withdrawn)
        renewed = await candidate_of(session, people)

        async def alone(**values):
            """A check of a candidate of its own (another record of theirs could cover it)."""
            return await check(session, people, await candidate_of(session, people), **values)

        expected = {  # record -> bucket (None: no reminder)
            await alone(expires_at=at(31)): None,
            await alone(expires_at=at(30)): 30,  # on the lead day
            await alone(expires_at=at(29), kind=C.medical): 30,  # a day after it
            await alone(expires_at=at(8), kind=C.identity): 30,
            await alone(expires_at=at(7), kind=C.reference): 7,
            await alone(expires_at=at(6), kind=C.skills): 7,
            await check(session, people, sera, expires_at=at(0, 23), kind=C.visa_eligibility): 7,  # today
            await alone(expires_at=at(0, 5), kind=C.medical): None,  # lapsing now
            await alone(expires_at=at(-1), kind=C.identity): None,
            await alone(expires_at=None, kind=C.reference): None,
            await alone(expires_at=at(7), kind=C.skills, status=S.pending): None,
            await alone(expires_at=at(7), kind=C.skills, status=S.expired): None,
            await check(session, people, withdrawn, expires_at=at(7)): None,
            # A newer clearance runs past it: nothing to remind.
            await check(session, people, renewed, expires_at=at(7)): None,
        }
        await check(session, people, renewed, expires_at=at(400))
        # Covered only until earlier: still reminded.
        earlier = await check(session, people, renewed, expires_at=at(10), kind=C.medical)
        expected[earlier] = 30
        await check(session, people, renewed, expires_at=at(5), kind=C.medical)
    for run in range(2):
        async with system_session(db.url) as session:
            report = await vetting_expiry_reminders(session, context(now))
        if run == 0:
            assert report["checks"] >= 7
        else:
            assert report["queued"] == 0
    staff = to_each(people.agent_login, people.admin)
    assert await queued(db.url, people.tenant, EXPIRING) == {
        f"vetting-expiry:{record.id}:{record.expires_at.date().isoformat()}:{lead}": (
            staff | to_each(people.candidate_login) if record.candidate_id == sera.id else staff
        )
        for record, lead in expected.items()
        if lead is not None
    }
    assert not await notifications_in(db.url, people.other_tenant)
    [row] = [
        row
        for row in await notifications_in(db.url, people.tenant, template=EXPIRING)
        if row.payload["days_left"] == 0 and row.recipient_id == people.candidate_login.id
        if row.channel == "email"
    ]
    assert row.payload == {
        "candidate_name": "Sera Tuilagi",
        "check_type": "visa eligibility",
        "expiry_date": today.isoformat(),
        "days_left": 0,
    }
