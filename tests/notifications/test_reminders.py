"""What the reminder jobs share (notifications/reminders.py): lead time buckets, each tenant's lead
times with the defaults for kinds a tenant did not name, and who a reminder may go to."""

from __future__ import annotations

import uuid

import pytest

from mobility.authz.permissions import SystemRole
from mobility.notifications.reminders import LeadTimes, Reminders, bucket
from mobility.settings.service import REMINDER_LEAD_DAYS
from tests.support.factories import make_tenant, make_user
from tests.support.reminders import notifications_in, to_each
from tests.support.sessions import Db, system_session


@pytest.mark.parametrize(
    ("days_left", "expected"),
    [(61, None), (60, 60), (59, 60), (31, 60), (30, 30), (8, 30), (7, 7), (1, 7), (0, 7), (-1, None)],
)
def test_a_thing_is_in_the_bucket_of_the_smallest_lead_time_it_is_within(days_left, expected) -> None:
    assert bucket(days_left, [60, 30, 7]) == expected


def test_no_lead_times_no_bucket() -> None:
    assert bucket(0, []) is None


def test_a_tenant_keeps_the_default_of_a_kind_it_did_not_name_and_empty_turns_one_off() -> None:
    named, other, off, unset = (uuid.uuid4() for _ in range(4))
    leads = LeadTimes(
        {
            named: {"certificateExpiry": [45]},
            other: {"documentExpiry": [10]},
            off: {"vettingExpiry": []},
        }
    )
    default = REMINDER_LEAD_DAYS.default
    assert leads.of(named, "certificateExpiry") == [45]
    assert leads.of(other, "certificateExpiry") == default["certificateExpiry"]
    assert leads.of(unset, "passportValidity") == default["passportValidity"]
    assert leads.of(off, "vettingExpiry") == []
    # How far ahead a job looks: the longest lead time of any tenant or the default.
    assert leads.horizon("certificateExpiry") == max(45, *default["certificateExpiry"])
    assert LeadTimes({named: {"vettingExpiry": [400]}}).horizon("vettingExpiry") == 400
    assert LeadTimes({}).horizon("vettingExpiry") == max(default["vettingExpiry"])


async def test_reminders_go_to_active_accounts_once_each(db: Db) -> None:
    async with system_session(db.url) as session:
        tenant = await make_tenant(session)
        active = await make_user(session, tenant, SystemRole.recruiter)
        suspended = await make_user(session, tenant, SystemRole.candidate, status="suspended")
        outbox = Reminders(session, {})
        payload = {
            "candidate_name": "A",
            "document_type": "visa",
            "expiry_date": "2031-01-01",
            "days_left": 3,
        }
        written = await outbox.remind(
            "reminders.document_expiry",
            payload,
            tenant_id=tenant.id,
            recipients=[active.id, None, suspended.id, active.id],
            dedupe_key=f"test:{uuid.uuid4()}",
        )
        assert written == outbox.queued == 2  # in-app and e-mail, to the active one alone
    rows = await notifications_in(db.url, tenant)
    assert {(row.recipient_id, row.channel.value) for row in rows} == to_each(active)
