"""The certificate expiry and renewal reminders (training/tasks.py): which certificates are reminded, in
which lead time bucket, to whom, once.

Expected answers come from the rule as written in the module's docstring and in
mobility.notifications.reminders: one reminder per bucket of the tenant's "certificateExpiry" lead
times (the smallest L with days left <= L, days counted by the UTC date of `expiresAt`), none for a
certificate without expiry, revoked or already expired, or of a candidate who left the pipeline; to the
candidate's login, their agent's and the tenant's active Admins.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

from mobility.candidates.models import CandidateStatus
from mobility.core.config import Settings
from mobility.core.jobs import JobContext
from mobility.notifications import templates
from mobility.training.models import Certificate
from mobility.training.tasks import certificate_expiry_reminders
from tests.support.factories import make_candidate, make_course, make_enrollment, make_tenant, make_user
from tests.support.reminders import make_people, notifications_in, queued, set_setting, to_each
from tests.support.rows import RowBuilder
from tests.support.sessions import Db, system_session

TEMPLATE = "reminders.certificate_expiry"
# Far from the other tests' certificates (a job looks at every tenant of the database).
TODAY = date(2041, 3, 10)
NOW = datetime.combine(TODAY, time(6, 0), tzinfo=UTC)


def context(now: datetime = NOW) -> JobContext:
    return JobContext(settings=Settings(), now=now)


async def their_candidate(session, people):
    """The candidate of `people`: with their login and their agent."""
    return await make_candidate(
        session, people.tenant, agent_id=people.agent.id, user_id=people.candidate_login.id
    )


async def certificate(session, people, candidate, *, expires_at, revoked=False):
    """A certificate of a new enrollment (a new course each time: one enrollment per course and candidate)."""
    course = await make_course(session, people.tenant, title="Aged care")
    enrollment = await make_enrollment(session, course, candidate)
    return await RowBuilder(session, people.tenant).build(
        Certificate,
        enrollment_id=enrollment.id,
        issued_at=NOW - timedelta(days=700),
        expires_at=expires_at,
        revoked_at=NOW - timedelta(days=1) if revoked else None,
    )


def at(days: int, hour: int = 12) -> datetime:
    return datetime.combine(TODAY + timedelta(days=days), time(hour, 0), tzinfo=UTC)


async def test_certificates_are_reminded_once_per_lead_time_bucket_edge_days_included(db: Db) -> None:
    async with system_session(db.url) as session:
        people = await make_people(session)
        set_setting(session, people.tenant, "notifications.reminderLeadDays", {"certificateExpiry": [30, 7]})
        sera = await their_candidate(session, people)
        # The other tenant has a certificate expiring too: each tenant's people hear of their own only.
        theirs = await make_candidate(session, people.other_tenant)
        their_enrollment = await make_enrollment(
            session, await make_course(session, people.other_tenant), theirs
        )
        their_certificate = await RowBuilder(session, people.other_tenant).build(
            Certificate, enrollment_id=their_enrollment.id, issued_at=NOW, expires_at=at(7)
        )
        withdrawn = await make_candidate(
            session, people.tenant, agent_id=people.agent.id, status=CandidateStatus.withdrawn
        )
        expected = {  # certificate -> the bucket it falls in (None: no reminder)
            await certificate(session, people, sera, expires_at=at(31)): None,  # a day before the first lead
            await certificate(session, people, sera, expires_at=at(30)): 30,  # exactly on it
            await certificate(session, people, sera, expires_at=at(29)): 30,  # a day after it
            await certificate(session, people, sera, expires_at=at(8)): 30,
            await certificate(session, people, sera, expires_at=at(7)): 7,
            await certificate(session, people, sera, expires_at=at(6)): 7,
            await certificate(session, people, sera, expires_at=at(0, 23)): 7,  # expires later today
            await certificate(session, people, sera, expires_at=at(0, 5)): None,  # expired earlier today
            await certificate(session, people, sera, expires_at=at(-1)): None,  # expired yesterday
            await certificate(session, people, sera, expires_at=None): None,  # never expires
            await certificate(session, people, sera, expires_at=at(7), revoked=True): None,
            await certificate(session, people, withdrawn, expires_at=at(7)): None,
            # The UTC day counts: 23:30 on day 6 at UTC-10 is 09:30 on day 7 in UTC.
            await certificate(
                session,
                people,
                sera,
                expires_at=datetime(2041, 3, 16, 23, 30, tzinfo=timezone(timedelta(hours=-10))),
            ): 7,
        }
    reports = []
    for _ in range(2):  # the second run queues nothing: the dedupe keys
        async with system_session(db.url) as session:
            reports.append(await certificate_expiry_reminders(session, context()))
    assert reports[0]["certificates"] >= 7 and reports[0]["queued"] >= 7 * 6
    assert reports[1]["queued"] == 0
    everyone = to_each(people.candidate_login, people.agent_login, people.admin)
    assert await queued(db.url, people.tenant, TEMPLATE) == {
        f"certificate-expiry:{cert.id}:{cert.expires_at.astimezone(UTC).date().isoformat()}:{lead}": everyone
        for cert, lead in expected.items()
        if lead is not None
    }
    # Neither the suspended Admin nor another tenant's Admin hears of them (and theirs only of their own,
    # in the default buckets 90/30: that tenant set no lead times).
    assert await queued(db.url, people.other_tenant, TEMPLATE) == {
        f"certificate-expiry:{their_certificate.id}:{(TODAY + timedelta(days=7)).isoformat()}:30": to_each(
            people.other_admin
        )
    }
    [one] = [
        row
        for row in await notifications_in(db.url, people.tenant, template=TEMPLATE)
        if row.payload["days_left"] == 0 and row.recipient_id == people.admin.id and row.channel == "email"
    ]
    cert = next(c for c, lead in expected.items() if c.expires_at == at(0, 23))
    assert one.payload == {
        "candidate_name": "Sera Tuilagi",
        "course_title": "Aged care",
        "certificate_number": cert.certificate_number,
        "expiry_date": TODAY.isoformat(),
        "days_left": 0,
    }
    rendered = templates.render(
        TEMPLATE, one.payload, language="en", brand=templates.branding("WTI", None, None)
    )
    assert "renew" in rendered.subject and "renew it before then" in rendered.text
    assert cert.certificate_number in rendered.html


async def test_a_certificate_whose_expiry_moves_is_reminded_again(db: Db) -> None:
    today = date(2044, 6, 1)
    now = datetime.combine(today, time(6), tzinfo=UTC)
    async with system_session(db.url) as session:
        people = await make_people(session)
        cert = await certificate(
            session, people, await their_candidate(session, people), expires_at=now + timedelta(days=20)
        )
    async with system_session(db.url) as session:
        assert (await certificate_expiry_reminders(session, context(now)))["queued"] >= 6
    async with system_session(db.url) as session:
        row = await session.get(Certificate, cert.id)
        row.expires_at = now + timedelta(days=25)
    async with system_session(db.url) as session:
        assert (await certificate_expiry_reminders(session, context(now)))["queued"] >= 6
    found = await queued(db.url, people.tenant, TEMPLATE)
    assert set(found) == {
        f"certificate-expiry:{cert.id}:{(today + timedelta(days=20)).isoformat()}:30",
        f"certificate-expiry:{cert.id}:{(today + timedelta(days=25)).isoformat()}:30",
    }


async def test_lead_times_a_tenant_did_not_set_are_the_defaults_and_an_empty_list_turns_them_off(
    db: Db,
) -> None:
    today = date(2047, 9, 1)
    now = datetime.combine(today, time(6), tzinfo=UTC)
    async with system_session(db.url) as session:
        unset = await make_people(session)  # no setting: the default 90/30
        other_kind = await make_people(session)  # only documentExpiry set: certificates keep 90/30
        set_setting(session, other_kind.tenant, "notifications.reminderLeadDays", {"documentExpiry": [10]})
        off = await make_people(session)
        set_setting(session, off.tenant, "notifications.reminderLeadDays", {"certificateExpiry": []})
        certs = {}
        for people in (unset, other_kind, off):
            sera = await their_candidate(session, people)
            certs[people.tenant.id] = [
                await certificate(session, people, sera, expires_at=now + timedelta(days=days, hours=1))
                for days in (91, 90, 30)
            ]
    async with system_session(db.url) as session:
        await certificate_expiry_reminders(session, context(now))
    for people in (unset, other_kind):
        _, on_90, on_30 = certs[people.tenant.id]
        assert set(await queued(db.url, people.tenant, TEMPLATE)) == {
            f"certificate-expiry:{on_90.id}:{(today + timedelta(days=90)).isoformat()}:90",
            f"certificate-expiry:{on_30.id}:{(today + timedelta(days=30)).isoformat()}:30",
        }
    assert await queued(db.url, off.tenant, TEMPLATE) == {}


async def test_a_suspended_tenant_is_not_reminded(db: Db) -> None:
    today = date(2050, 1, 1)
    now = datetime.combine(today, time(6), tzinfo=UTC)
    async with system_session(db.url) as session:
        people = await make_people(session, is_active=False)
        await certificate(
            session, people, await their_candidate(session, people), expires_at=now + timedelta(days=5)
        )
        # A login of the candidate alone, no agent: only they and the Admins would be told.
        tenant = await make_tenant(session)
        admin = await make_user(session, tenant)
        lone = await make_candidate(session, tenant)
        course = await make_course(session, tenant)
        enrollment = await make_enrollment(session, course, lone)
        await RowBuilder(session, tenant).build(
            Certificate, enrollment_id=enrollment.id, issued_at=now, expires_at=now + timedelta(days=5)
        )
    async with system_session(db.url) as session:
        await certificate_expiry_reminders(session, context(now))
    assert await notifications_in(db.url, people.tenant) == []
    assert {
        (row.recipient_id, row.channel.value) for row in await notifications_in(db.url, tenant)
    } == to_each(admin)
