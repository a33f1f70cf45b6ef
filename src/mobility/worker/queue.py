"""The outboxes' claim and completion, the same for every outbox table (notifications, webhook deliveries).

A row is due when it is `queued` and its `nextAttemptAt` has come, or `sending` with an expired lease
(the worker that claimed it died or hung). Claiming is one statement: UPDATE ... SET status 'sending',
a lease, one more attempt WHERE (tenantId, id) IN (SELECT ... FOR UPDATE SKIP LOCKED), the tables' primary
key (0015), committed before anything
is sent: on PostgreSQL any number of workers claim disjoint rows without waiting for each other; on
SQLite (one writer) the single UPDATE is atomic just the same, for the one worker the embedded default
runs. A result is recorded only while the claim is still the worker's own (same status and lease): a
worker whose lease ran out and whose row was taken over changes nothing.

Sent once: a row is sent by the worker holding its lease, and recorded in the same statement that
checks the lease. The one window no protocol closes: the worker dies after the receiver accepted the
message and before the result is recorded; the lease expires and the row is sent again, with the same
Message-ID (e-mail) or event id (webhooks), so the receiver can tell.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.core.config import Settings
from mobility.core.outbox import Outcome
from mobility.notifications.models import NotificationStatus

QUEUED, SENDING, SENT, FAILED, CANCELLED = (
    NotificationStatus.queued,
    NotificationStatus.sending,
    NotificationStatus.sent,
    NotificationStatus.failed,
    NotificationStatus.cancelled,
)
MAX_ERROR = 2000


@dataclass
class Result:
    """A claimed row and what became of it."""

    row: Any
    outcome: Outcome


def backoff(attempts: int, settings: Settings, *, rng: random.Random | None = None) -> timedelta:
    """The wait after the `attempts`-th failure: base * 2^(attempts-1), capped, jittered to half-to-all
    of it (workers retrying together spread out)."""
    delay = min(
        settings.notify_retry_base_seconds * 2 ** max(attempts - 1, 0), settings.notify_retry_max_seconds
    )
    rng = rng or random
    return timedelta(seconds=delay / 2 + rng.uniform(0, delay / 2))


def due(model: Any, now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(model.status == QUEUED, model.next_attempt_at <= now),
        and_(model.status == SENDING, model.lease_until < now),
    )


async def claim(
    session: AsyncSession,
    model: Any,
    where: ColumnElement[bool] | None,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
) -> tuple[list[Any], datetime]:
    """Claim up to `limit` due rows of `model` (the caller commits at once). Returns them and the lease."""
    lease_until = now + lease
    candidates = select(model.tenant_id, model.id).where(due(model, now))
    if where is not None:
        candidates = candidates.where(where)
    candidates = candidates.order_by(model.next_attempt_at).limit(limit).with_for_update(skip_locked=True)
    statement = (
        update(model)
        .where(tuple_(model.tenant_id, model.id).in_(candidates))
        .values(status=SENDING, lease_until=lease_until, attempts=model.attempts + 1, updated_at=now)
        .returning(model)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    rows = list((await session.execute(statement)).scalars())
    # RETURNING comes in no particular order: deliver oldest first.
    rows.sort(key=lambda row: (row.next_attempt_at, row.id))
    return rows, lease_until


async def record(
    session: AsyncSession,
    model: Any,
    results: list[Result],
    *,
    lease_until: datetime,
    now: datetime,
    settings: Settings,
) -> None:
    """Each result, if the claim is still the worker's: sent, cancelled, back to the queue with a later
    attempt, or failed for good (the dead state) with its error."""
    if not results:
        return
    table = model.__table__
    statement = (
        update(table)
        .where(
            table.c.tenantId == bindparam("_tenant"),
            table.c.id == bindparam("_id"),
            table.c.status == SENDING.value,
            table.c.leaseUntil == bindparam("_lease"),
        )
        .values(
            status=bindparam("_status"),
            attempts=bindparam("_attempts"),
            nextAttemptAt=bindparam("_next"),
            leaseUntil=None,
            lastError=bindparam("_error"),
            sentAt=bindparam("_sent"),
            updatedAt=now,
            **({"responseStatus": bindparam("_response")} if "responseStatus" in table.c else {}),
        )
    )
    parameters = []
    for result in results:
        row, outcome = result.row, result.outcome
        attempts, next_at, sent_at, error = row.attempts, None, None, _clip(outcome.error)
        if outcome.ok:
            status, error, sent_at = SENT, None, now
        elif outcome.released:
            status, attempts, next_at, error = QUEUED, max(row.attempts - 1, 0), now, row.last_error
        elif outcome.cancelled:
            status = CANCELLED
        elif outcome.permanent or row.attempts >= settings.notify_max_attempts:
            status = FAILED
        else:
            status, next_at = QUEUED, now + backoff(row.attempts, settings)
        parameters.append(
            {
                "_tenant": row.tenant_id,
                "_id": row.id,
                "_lease": lease_until,
                "_status": status.value,
                "_attempts": attempts,
                "_next": next_at,
                "_error": error,
                "_sent": sent_at,
                "_response": outcome.response_status,
            }
        )
    await session.execute(statement, parameters)


def _clip(error: str | None) -> str | None:
    return None if error is None else error[:MAX_ERROR]


def worn_out(rows: list[Any], settings: Settings) -> tuple[list[Any], list[Result]]:
    """Rows claimed again after their lease ran out once too often (a message that kills its worker, a
    hang): failed for good rather than retried for ever."""
    fresh, dead = [], []
    for row in rows:
        if row.attempts > settings.notify_max_attempts:
            error = f"{row.attempts - 1} attempts never finished (their lease expired)"
            dead.append(Result(row, Outcome(permanent=True, error=error)))
        else:
            fresh.append(row)
    return fresh, dead


def new_worker_id() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
