"""Periodic jobs: once per period across workers (a lease in the database), run on demand, failures kept;
the housekeeping jobs; the document-expiry reminders with data that should and should not trigger
them, edge days included."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from mobility.app_session import create_sessionmaker
from mobility.auth.models import PasswordReset, Session
from mobility.authz.permissions import SystemRole
from mobility.candidates.models import CandidateDocument, DocumentStatus, DocumentType
from mobility.candidates.tasks import document_expiry_reminders
from mobility.core.config import Settings
from mobility.core.db import create_engine
from mobility.core.jobs import Job, JobContext
from mobility.core.models import utcnow
from mobility.notifications.models import Notification
from mobility.settings.models import Setting
from mobility.worker.jobs import JobBusy, Jobs, next_period
from mobility.worker.models import JobLease
from tests.support.factories import make_agent, make_candidate, make_tenant, make_user
from tests.support.rows import RowBuilder
from tests.support.sessions import Db, system_session


def counting_job(
    name: str, runs: list, *, every=timedelta(hours=1), fail: bool = False, pause: float = 0.2
) -> Job:
    async def run(session, context: JobContext):
        runs.append(context.now)
        await asyncio.sleep(pause)  # long enough for a second worker to try meanwhile
        if fail:
            raise RuntimeError("the job broke")
        return {"runs": len(runs)}

    return Job(name, "test", every, run)


async def test_two_workers_at_once_run_a_job_once_per_period(outbox_db: Db) -> None:
    runs: list = []
    job = counting_job(f"test.{secrets.token_hex(4)}", runs)
    settings = Settings(database_url=outbox_db.url)
    # Two workers, each with its own connections, taking their turn at the same moment.
    engines = [create_engine(outbox_db.url) for _ in range(2)]
    try:
        makers = [create_sessionmaker(engine) for engine in engines]
        reports = await asyncio.gather(
            *(Jobs([job]).run_due(maker, settings, worker_id=f"w{n}") for n, maker in enumerate(makers))
        )
        assert len(runs) == 1
        assert sorted(len(report) for report in reports) == [0, 1]
        # The period is done: neither runs it again before the next one.
        again = await asyncio.gather(
            *(Jobs([job]).run_due(maker, settings, worker_id="w") for maker in makers)
        )
        assert again == [{}, {}] and len(runs) == 1
    finally:
        for engine in engines:
            await engine.dispose()
    async with system_session(outbox_db.url) as session:
        lease = (await session.execute(select(JobLease).where(JobLease.name == job.name))).scalar_one()
    assert lease.leased_by is None and lease.lease_until is None
    assert lease.last_result == {"runs": 1} and lease.last_error is None
    assert lease.next_run_at == next_period(job, lease.last_finished_at)
    assert lease.next_run_at > utcnow() and lease.next_run_at.minute == 0 and lease.next_run_at.second == 0


async def test_run_now_runs_whatever_the_schedule_but_not_while_a_worker_runs_it(outbox_db: Db) -> None:
    runs: list = []
    job = counting_job(f"test.{secrets.token_hex(4)}", runs, pause=1.0)
    settings = Settings(database_url=outbox_db.url)
    jobs = Jobs([job])
    await jobs.run_due(create_sessionmaker(outbox_db.owner_engine), settings, worker_id="w1")
    assert len(runs) == 1
    report = await jobs.run_now(
        create_sessionmaker(outbox_db.owner_engine), settings, job.name, worker_id="cli"
    )
    assert report == {"runs": 2}
    running = asyncio.create_task(
        jobs.run_now(create_sessionmaker(outbox_db.owner_engine), settings, job.name, worker_id="w2")
    )
    await asyncio.sleep(0.3)
    with pytest.raises(JobBusy):
        await jobs.run_now(create_sessionmaker(outbox_db.owner_engine), settings, job.name, worker_id="cli")
    await running
    assert len(runs) == 3


async def test_a_failed_job_keeps_its_error_and_is_tried_again_soon(outbox_db: Db) -> None:
    job = counting_job(f"test.{secrets.token_hex(4)}", [], every=timedelta(days=1), fail=True, pause=0)
    report = await Jobs([job]).run_due(
        create_sessionmaker(outbox_db.owner_engine), Settings(database_url=outbox_db.url), worker_id="w"
    )
    assert report == {job.name: {"error": "RuntimeError: the job broke"}}
    async with system_session(outbox_db.url) as session:
        lease = (await session.execute(select(JobLease).where(JobLease.name == job.name))).scalar_one()
    assert lease.last_error == "RuntimeError: the job broke"
    # A tenth of the period, at most ten minutes: not a whole day.
    assert lease.next_run_at - lease.last_finished_at == timedelta(minutes=10)


async def test_a_lease_left_by_a_dead_worker_expires_and_the_job_runs_again(outbox_db: Db) -> None:
    runs: list = []
    job = counting_job(f"test.{secrets.token_hex(4)}", runs, pause=0)
    async with system_session(outbox_db.url) as session:
        now = utcnow()
        session.add(
            JobLease(name=job.name, next_run_at=now, leased_by="dead", lease_until=now + timedelta(seconds=1))
        )
    settings = Settings(database_url=outbox_db.url)
    assert (
        await Jobs([job]).run_due(create_sessionmaker(outbox_db.owner_engine), settings, worker_id="w") == {}
    )
    await asyncio.sleep(1.1)
    assert await Jobs([job]).run_due(
        create_sessionmaker(outbox_db.owner_engine), settings, worker_id="w"
    ) == {job.name: {"runs": 1}}


async def test_ended_sessions_and_spent_reset_links_are_deleted_live_ones_kept(db: Db) -> None:
    from mobility.auth.tasks import delete_ended_sessions, delete_spent_reset_links

    now = utcnow()
    async with system_session(db.url) as session:
        tenant = await make_tenant(session)
        user = await make_user(session, tenant)

        def a_session(expires: timedelta, revoked: timedelta | None = None) -> Session:
            row = Session(
                user_id=user.id,
                tenant_id=tenant.id,
                token=secrets.token_hex(16),
                expires_at=now + expires,
                revoked_at=None if revoked is None else now + revoked,
                created_at=now - timedelta(days=3),
            )
            session.add(row)
            return row

        gone = [a_session(timedelta(days=-2)), a_session(timedelta(hours=5), timedelta(days=-2))]
        kept = [
            a_session(timedelta(hours=5)),
            a_session(timedelta(hours=-12)),
            a_session(timedelta(hours=5), timedelta(hours=-1)),
        ]

        def a_link(expires: timedelta, used: timedelta | None = None) -> PasswordReset:
            row = PasswordReset(
                user_id=user.id,
                token_hash=secrets.token_hex(32),
                expires_at=now + expires,
                used_at=None if used is None else now + used,
            )
            session.add(row)
            return row

        links_gone = [a_link(timedelta(days=-2)), a_link(timedelta(days=-2), timedelta(days=-2))]
        links_kept = [a_link(timedelta(minutes=20)), a_link(timedelta(hours=-1), timedelta(hours=-1))]
    context = JobContext(settings=Settings(), now=now)
    async with system_session(db.url) as session:
        assert (await delete_ended_sessions(session, context))["deleted"] >= 2
        assert (await delete_spent_reset_links(session, context))["deleted"] >= 2
    async with system_session(db.url) as session:
        left = set((await session.execute(select(Session.id).where(Session.user_id == user.id))).scalars())
        links = set(
            (
                await session.execute(select(PasswordReset.id).where(PasswordReset.user_id == user.id))
            ).scalars()
        )
    assert left == {row.id for row in kept} and not {row.id for row in gone} & left
    assert links == {row.id for row in links_kept} and not {row.id for row in links_gone} & links


TODAY = date(2031, 1, 10)  # far from the other tests' documents
NOW = datetime(2031, 1, 10, 6, 0, tzinfo=UTC)


async def test_document_expiry_reminders_by_lead_time_edge_days_included(db: Db) -> None:
    async with system_session(db.url) as session:
        tenant = await make_tenant(session)
        admin = await make_user(session, tenant, SystemRole.admin)
        suspended_admin = await make_user(session, tenant, SystemRole.admin, status="suspended")
        agent_login = await make_user(session, tenant, SystemRole.agent)
        agent = await make_agent(session, tenant, agent_login.user)
        candidate_login = await make_user(session, tenant, SystemRole.candidate)
        candidate = await make_candidate(session, tenant, agent_id=agent.id, user_id=candidate_login.id)
        session.add(
            Setting(
                tenant_id=tenant.id,
                key="notifications.reminderLeadDays",
                value={"documentExpiry": [30, 7], "documentExpiry.passport": [90]},
            )
        )
        build = RowBuilder(session, tenant).build

        async def document(days: int, kind=DocumentType.medical, status=DocumentStatus.verified):
            return await build(
                CandidateDocument,
                candidate_id=candidate.id,
                type=kind,
                status=status,
                expires_on=TODAY + timedelta(days=days),
            )

        expected = {  # document -> the lead time bucket it falls in (None: no reminder)
            await document(31): None,  # before the first lead time
            await document(30): 30,  # exactly on it
            await document(8): 30,  # between the two: still the 30-day reminder
            await document(7): 7,
            await document(0): 7,  # expires today
            await document(-1): None,  # expired yesterday
            await document(7, status=DocumentStatus.rejected): None,
            await document(90, kind=DocumentType.passport): 90,  # its own lead time
            await document(91, kind=DocumentType.passport): None,
            await document(30, kind=DocumentType.passport): 90,  # passports have no 30-day reminder
        }
    context = JobContext(settings=Settings(), now=NOW)
    for _ in range(2):  # run twice: the second queues nothing (dedupe keys)
        async with system_session(db.url) as session:
            report = await document_expiry_reminders(session, context)
        assert report["documents"] >= 6
    async with system_session(db.url) as session:
        rows = list(
            (
                await session.execute(select(Notification).where(Notification.tenant_id.in_([tenant.id])))
            ).scalars()
        )
    recipients = {candidate_login.id, agent_login.id, admin.id}
    assert suspended_admin.id not in {row.recipient_id for row in rows}
    by_document: dict[str, set] = {}
    for row in rows:
        assert row.template == "reminders.document_expiry"
        by_document.setdefault(row.dedupe_key.split("|")[0], set()).add((row.recipient_id, row.channel.value))
    wanted = {
        f"document-expiry:{doc.id}:{doc.expires_on.isoformat()}:{lead}": {
            (user, channel) for user in recipients for channel in ("in_app", "email")
        }
        for doc, lead in expected.items()
        if lead is not None
    }
    assert by_document == wanted
    one = next(row for row in rows if row.payload["days_left"] == 0)
    assert one.payload == {
        "candidate_name": f"{candidate.first_name} {candidate.last_name}",
        "document_type": "medical",
        "expiry_date": TODAY.isoformat(),
        "days_left": 0,
    }
