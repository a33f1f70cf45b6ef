"""The periodic jobs: every domain's `JOBS`, listed here once, and their leases (`job_leases`).

Once per period across all workers: a job runs when its `nextRunAt` has come and no live lease holds
it. Taking the lease is one conditional UPDATE (PostgreSQL re-checks the condition after a concurrent
taker commits; SQLite has one writer), so of any number of workers exactly one runs it. When it ends,
`nextRunAt` becomes the start of the next period, aligned to the epoch so every worker agrees; a job
that failed is tried again after a tenth of its period (at most ten minutes) and keeps its error. A
worker that dies while running one leaves a lease that expires, and the next worker runs it again:
jobs are idempotent.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mobility.auth import tasks as auth_tasks
from mobility.candidates import tasks as candidate_tasks
from mobility.core.config import Settings
from mobility.core.jobs import Job, JobContext
from mobility.core.models import utcnow
from mobility.core.scope import Scope, apply_to_database
from mobility.placements import tasks as placement_tasks
from mobility.training import tasks as training_tasks
from mobility.vetting import tasks as vetting_tasks
from mobility.worker.models import JobLease

logger = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ALL_JOBS: list[Job] = [
    *auth_tasks.JOBS,
    *candidate_tasks.JOBS,
    *training_tasks.JOBS,
    *vetting_tasks.JOBS,
    *placement_tasks.JOBS,
]


class JobBusy(Exception):
    """Another worker holds the job's lease right now."""


class UnknownJob(Exception):
    pass


def next_period(job: Job, now: datetime) -> datetime:
    periods = (now - EPOCH) // job.every
    return EPOCH + (periods + 1) * job.every


class Jobs:
    def __init__(self, jobs: list[Job] | None = None) -> None:
        self.jobs = {job.name: job for job in (jobs if jobs is not None else ALL_JOBS)}

    def get(self, name: str) -> Job:
        try:
            return self.jobs[name]
        except KeyError:
            raise UnknownJob(f"no job {name!r}; known: {', '.join(sorted(self.jobs))}") from None

    async def _take(self, sessionmaker, job: Job, worker_id: str, now: datetime, *, force: bool) -> bool:
        async with sessionmaker() as session, session.begin():
            await apply_to_database(session, Scope.for_system())
            insert = postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert
            await session.execute(
                insert(JobLease)
                .values(name=job.name, next_run_at=now)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            condition = or_(JobLease.lease_until.is_(None), JobLease.lease_until < now)
            if not force:
                condition = condition & (JobLease.next_run_at <= now)
            taken = await session.execute(
                update(JobLease)
                .where(JobLease.name == job.name, condition)
                .values(leased_by=worker_id, lease_until=now + job.lease, last_started_at=now)
                .execution_options(synchronize_session=False)
            )
            return (taken.rowcount or 0) == 1

    async def _run(
        self, sessionmaker, job: Job, settings: Settings, worker_id: str, now: datetime
    ) -> dict[str, Any]:
        report: dict[str, Any] | None = None
        error = None
        try:
            async with sessionmaker() as session, session.begin():
                await apply_to_database(session, Scope.for_system())
                report = await job.run(session, JobContext(settings=settings, now=now))
        except Exception as exc:
            logger.exception("job %s failed", job.name)
            error = f"{type(exc).__name__}: {exc}"[:2000]
        finished = utcnow()
        retry_in = min(job.every / 10, timedelta(minutes=10))
        async with sessionmaker() as session, session.begin():
            await apply_to_database(session, Scope.for_system())
            await session.execute(
                update(JobLease)
                .where(JobLease.name == job.name, JobLease.leased_by == worker_id)
                .values(
                    leased_by=None,
                    lease_until=None,
                    last_finished_at=finished,
                    last_result=report,
                    last_error=error,
                    next_run_at=next_period(job, finished) if error is None else finished + retry_in,
                )
                .execution_options(synchronize_session=False)
            )
        return report if error is None else {"error": error}

    async def run_due(self, sessionmaker, settings: Settings, *, worker_id: str) -> dict[str, Any]:
        """Every job whose period has come and that no other worker runs now; their reports."""
        reports = {}
        for job in self.jobs.values():
            now = utcnow()
            if await self._take(sessionmaker, job, worker_id, now, force=False):
                reports[job.name] = await self._run(sessionmaker, job, settings, worker_id, now)
        return reports

    async def run_now(self, sessionmaker, settings: Settings, name: str, *, worker_id: str) -> dict[str, Any]:
        """`mobility jobs run NAME`: now, whatever its schedule, unless a worker is running it."""
        job = self.get(name)
        now = utcnow()
        if not await self._take(sessionmaker, job, worker_id, now, force=True):
            raise JobBusy(f"job {name} is running in another worker now; try again when it ends")
        return await self._run(sessionmaker, job, settings, worker_id, now)

    async def leases(self, sessionmaker) -> dict[str, JobLease]:
        async with sessionmaker() as session, session.begin():
            await apply_to_database(session, Scope.for_system())
            return {row.name: row for row in (await session.execute(select(JobLease))).scalars()}
