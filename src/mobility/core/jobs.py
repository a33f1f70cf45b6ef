"""Periodic jobs as the domains declare them (`<domain>/tasks.py`, a list `JOBS`); the worker
(mobility.worker.jobs) runs each once per period across all workers, under a lease in the database.

A job gets a session under the system scope (its own transaction, committed when it returns) and the
run's context; it works for every tenant itself, must be idempotent (dedupe keys for what it queues),
and returns a small report of what it did (JSON-ready), kept with its lease and printed by
`mobility jobs run NAME`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mobility.core.config import Settings


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    now: datetime


@dataclass(frozen=True)
class Job:
    name: str
    description: str
    every: timedelta
    run: Callable[[AsyncSession, JobContext], Awaitable[dict[str, Any]]]
    # How long one run may hold the job before another worker may take it (a worker that died).
    lease: timedelta = timedelta(minutes=15)
