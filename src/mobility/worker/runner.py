"""The worker loop: claim due rows of each outbox, deliver them, record the results; run due jobs.

One round per outbox: claim a batch (committed: the lease is visible to every other worker), look up
what the batch needs, deliver each row (outside any transaction), record the results in one
transaction. Rounds repeat while there is work, then the worker waits `worker_poll_seconds` (or
ends: `--once`). SIGTERM or SIGINT stops it gracefully: the message being sent is finished and
recorded, the rest of its batch goes back to the queue unattempted, nothing new is claimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mobility.core.config import Settings
from mobility.core.models import utcnow
from mobility.core.outbox import RELEASED, Outbox, Outcome
from mobility.core.scope import Scope, apply_to_database
from mobility.worker import queue

logger = logging.getLogger(__name__)


@dataclass
class Tally:
    """What a worker did (per outbox): sent, retried later, failed for good, cancelled."""

    sent: dict[str, int] = field(default_factory=dict)
    retried: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    cancelled: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, Any] = field(default_factory=dict)

    def add(self, outbox: str, outcome: Outcome) -> None:
        bucket = (
            self.sent
            if outcome.ok
            else self.cancelled
            if outcome.cancelled
            else self.failed
            if outcome.permanent
            else None
        )
        if bucket is None:
            if outcome.released:
                return
            bucket = self.retried
        bucket[outbox] = bucket.get(outbox, 0) + 1

    def lines(self) -> list[str]:
        names = sorted(set(self.sent) | set(self.retried) | set(self.failed) | set(self.cancelled))
        out = [
            f"{name}: {self.sent.get(name, 0)} sent, {self.retried.get(name, 0)} to retry, "
            f"{self.failed.get(name, 0)} failed, {self.cancelled.get(name, 0)} cancelled"
            for name in names
        ]
        out += [f"job {name}: {report}" for name, report in self.jobs.items()]
        return out or ["nothing was due"]


class Worker:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        outboxes: Iterable[Outbox],
        *,
        jobs: Any = None,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.outboxes = list(outboxes)
        self.jobs = jobs
        self.worker_id = worker_id or queue.new_worker_id()
        self.tally = Tally()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Finish the message in hand, claim nothing new."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def round(self, outbox: Outbox) -> int:
        """Claim, deliver and record one batch of `outbox`; returns how many rows were claimed."""
        now = utcnow()
        async with self.sessionmaker() as session, session.begin():
            await apply_to_database(session, Scope.for_system())
            rows, lease_until = await queue.claim(
                session,
                outbox.model,
                outbox.where,
                now=now,
                lease=timedelta(seconds=self.settings.worker_lease_seconds),
                limit=self.settings.worker_batch_size,
            )
        if not rows:
            return 0
        claimed = len(rows)
        rows, results = queue.worn_out(rows, self.settings)
        if rows:
            async with self.sessionmaker() as session, session.begin():
                await apply_to_database(session, Scope.for_system())
                context = await outbox.prepare(session, rows)
            # Results are recorded while the next messages are sent, at most one recording in flight;
            # what was sent meanwhile is recorded together by the next one (a group commit: one
            # transaction per result while the database keeps up, fewer and bigger when it lags).
            # A worker that dies leaves unrecorded only the message in hand and those of the
            # recording in flight: sent again later with the same id.
            recording: asyncio.Task | None = None
            unrecorded: list[queue.Result] = []
            try:
                for row in rows:
                    if self.stopping:
                        results.append(queue.Result(row, RELEASED))
                        continue
                    try:
                        outcome = await outbox.deliver(context, row)
                    except Exception as exc:  # a bug in a deliverer: the row is retried, the worker goes on
                        logger.exception("delivering %s %s failed", outbox.name, row.id)
                        outcome = Outcome(error=f"internal error: {type(exc).__name__}: {exc}")
                    unrecorded.append(queue.Result(row, outcome))
                    if recording is not None and recording.done():
                        recording, finished = None, recording
                        await finished  # its error, if any, is this round's
                    if recording is None:
                        batch, unrecorded = unrecorded, []
                        recording = asyncio.create_task(self._record(outbox, batch, lease_until))
            finally:
                if recording is not None:
                    await recording
                results.extend(unrecorded)
        await self._record(outbox, results, lease_until)
        return claimed

    async def _record(self, outbox: Outbox, results: list[queue.Result], lease_until) -> None:
        if not results:
            return
        async with self.sessionmaker() as session, session.begin():
            await apply_to_database(session, Scope.for_system())
            await queue.record(
                session, outbox.model, results, lease_until=lease_until, now=utcnow(), settings=self.settings
            )
            await outbox.after(session, [(result.row, result.outcome) for result in results])
        for result in results:
            self.tally.add(outbox.name, result.outcome)

    async def drain(self) -> int:
        """Rounds of every outbox until none has anything due (or the worker stops)."""
        total = 0
        while not self.stopping:
            claimed = 0
            for outbox in self.outboxes:
                if self.stopping:
                    break
                claimed += await self.round(outbox)
            total += claimed
            if not claimed:
                break
        return total

    async def run_jobs(self) -> None:
        if self.jobs is None or self.stopping:
            return
        reports = await self.jobs.run_due(self.sessionmaker, self.settings, worker_id=self.worker_id)
        self.tally.jobs.update(reports)

    async def run_once(self) -> Tally:
        """Due jobs, then everything due in the outboxes (what the jobs queued included); then return."""
        await self.run_jobs()
        await self.drain()
        return self.tally

    async def run_forever(self) -> Tally:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        logger.info("worker %s started", self.worker_id)
        try:
            while not self.stopping:
                try:
                    await self.run_jobs()
                    await self.drain()
                except Exception as exc:  # the database away, say: wait and try again
                    logger.warning("worker round failed: %s: %s", type(exc).__name__, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=self.settings.worker_poll_seconds)
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            await self.close()
        logger.info("worker %s stopped", self.worker_id)
        return self.tally

    async def close(self) -> None:
        for outbox in self.outboxes:
            await outbox.close()
