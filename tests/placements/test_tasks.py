"""Passport validity against upcoming placements (placements/tasks.py).

Expected answers come from the rule in the module's docstring and DESIGN.md ("the passport is valid
long enough past the contract start (a setting, default 6 months)"): a placement proposed, offered or
accepted whose contract starts within a "passportValidity" lead time, of a candidate whose passport
expiry is missing or before contract start + `placements.passportValidityMonths`, is reminded to the
tenant's active Admins and the placement's partners, once per bucket, passport expiry and start.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from mobility.candidates.models import Candidate, CandidateStatus
from mobility.core.config import Settings
from mobility.core.jobs import JobContext
from mobility.notifications import templates
from mobility.placements.models import Placement, PlacementStatus
from mobility.placements.tasks import passport_validity_reminders
from tests.support.factories import make_candidate
from tests.support.reminders import make_people, notifications_in, queued, set_setting, to_each
from tests.support.rows import RowBuilder
from tests.support.sessions import Db, system_session

TEMPLATE = "reminders.passport_validity"
P = PlacementStatus


def context(now: datetime) -> JobContext:
    return JobContext(settings=Settings(), now=now)


async def placement(session, people, *, start, passport, status=P.offered, candidate_status=None, agent=True):
    """A placement of a candidate of its own (the passport is the candidate's) starting on `start`."""
    candidate = await make_candidate(
        session,
        people.tenant,
        agent_id=people.agent.id,
        passport_expiry=passport,
        **({"status": candidate_status} if candidate_status else {}),
    )
    row = await RowBuilder(session, people.tenant).build(
        Placement,
        candidate_id=candidate.id,
        employer_name="Orchard Co",
        position="Fruit picker",
        country="AU",
        contract_start=start,
        status=status,
        agent_id=people.agent.id if agent else None,
        broker_id=people.broker.id,
    )
    return row, passport


def key(case: tuple[Placement, date | None], lead: int) -> str:
    row, passport = case
    return (
        f"passport-validity:{row.id}:{passport.isoformat() if passport else 'none'}:"
        f"{row.contract_start.isoformat()}:{lead}"
    )


async def test_upcoming_placements_with_a_passport_too_short_are_reminded_once_per_bucket(db: Db) -> None:
    today = date(2061, 1, 15)
    now = datetime.combine(today, time(6), tzinfo=UTC)

    def day(n: int) -> date:
        return today + timedelta(days=n)

    async with system_session(db.url) as session:
        people = await make_people(session)
        set_setting(session, people.tenant, "notifications.reminderLeadDays", {"passportValidity": [60, 14]})
        # Default validity: 6 months past the start. A start on day 60 (2061-03-16) needs 2061-09-16.
        needed_60 = date(2061, 9, 16)
        cases = [  # ((placement, passport on record), bucket or None)
            (await placement(session, people, start=day(61), passport=None), None),  # a day before the lead
            (await placement(session, people, start=day(60), passport=None), 60),  # on the lead day
            (await placement(session, people, start=day(59), passport=None), 60),  # a day after it
            (await placement(session, people, start=day(15), passport=day(15)), 60),
            (await placement(session, people, start=day(14), passport=day(100)), 14),
            (await placement(session, people, start=day(0), passport=day(10)), 14),  # starts today
            (await placement(session, people, start=day(-1), passport=None), None),  # started yesterday
            (await placement(session, people, start=None, passport=None), None),  # no start yet
            # Valid until exactly the date needed: long enough. A day short: reminded.
            (await placement(session, people, start=day(60), passport=needed_60), None),
            (await placement(session, people, start=day(60), passport=needed_60 - timedelta(days=1)), 60),
            (await placement(session, people, start=day(14), passport=None, status=P.proposed), 14),
            (await placement(session, people, start=day(14), passport=None, status=P.accepted), 14),
            (await placement(session, people, start=day(14), passport=None, status=P.declined), None),
            (await placement(session, people, start=day(14), passport=None, status=P.cancelled), None),
            (await placement(session, people, start=day(14), passport=None, status=P.deployed), None),
            (
                await placement(
                    session, people, start=day(14), passport=None, candidate_status=CandidateStatus.withdrawn
                ),
                None,
            ),
        ]
        brokered = await placement(session, people, start=day(14), passport=None, agent=False)
    for run in range(2):
        async with system_session(db.url) as session:
            report = await passport_validity_reminders(session, context(now))
        assert report["queued"] == 0 if run else report["placements"] >= 9
    partners_and_staff = to_each(people.agent_login, people.broker_login, people.admin)
    expected = {key(case, lead): partners_and_staff for case, lead in cases if lead is not None}
    expected[key(brokered, 14)] = to_each(people.broker_login, people.admin)
    assert await queued(db.url, people.tenant, TEMPLATE) == expected
    # Not the candidate (staff and partners act on it), not another tenant's Admin.
    rows = await notifications_in(db.url, people.tenant, people.other_tenant, template=TEMPLATE)
    assert {row.recipient_id for row in rows} == {
        people.agent_login.id,
        people.broker_login.id,
        people.admin.id,
    }
    [one] = [
        row
        for row in rows
        if row.payload["passport_expiry"] == (needed_60 - timedelta(days=1)).isoformat()
        and row.recipient_id == people.admin.id
        and row.channel == "email"
    ]
    assert one.payload == {
        "candidate_name": "Sera Tuilagi",
        "employer_name": "Orchard Co",
        "position": "Fruit picker",
        "country": "AU",
        "contract_start": day(60).isoformat(),
        "days_left": 60,
        "passport_expiry": "2061-09-15",
        "valid_until_needed": "2061-09-16",
        "validity_months": 6,
    }
    text = templates.render(
        TEMPLATE, one.payload, language="en", brand=templates.branding("WTI", None, None)
    ).text
    assert "expires on 2061-09-15" in text and "until at least 2061-09-16" in text


async def test_the_tenants_minimum_validity_and_a_renewed_passport(db: Db) -> None:
    today = date(2064, 4, 1)
    now = datetime.combine(today, time(6), tzinfo=UTC)
    start = today + timedelta(days=30)  # 2064-05-01
    async with system_session(db.url) as session:
        people = await make_people(session)
        set_setting(session, people.tenant, "placements.passportValidityMonths", 12)
        # Long enough for 6 months past the start, not for the tenant's 12: reminded (default leads 180/90).
        short = await placement(session, people, start=start, passport=date(2065, 4, 30))
        await placement(session, people, start=start, passport=date(2065, 5, 1))
    async with system_session(db.url) as session:
        await passport_validity_reminders(session, context(now))
    # Only the short one (the key names the placement): the one valid exactly 12 months past is enough.
    assert set(await queued(db.url, people.tenant, TEMPLATE)) == {key(short, 90)}
    # The expiry on record changes (corrected, renewed) but is still too short: told again. Long enough: no more.
    for renewed in (date(2065, 3, 1), date(2070, 1, 1)):
        async with system_session(db.url) as session:
            (await session.get(Candidate, short[0].candidate_id)).passport_expiry = renewed
        async with system_session(db.url) as session:
            await passport_validity_reminders(session, context(now))
    assert set(await queued(db.url, people.tenant, TEMPLATE)) == {
        key(short, 90),
        key((short[0], date(2065, 3, 1)), 90),
    }
