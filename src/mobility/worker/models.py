"""The periodic jobs' leases (0016): one row per job, installation-wide (no tenant)."""

from datetime import datetime
from typing import Any

from sqlalchemy import Text
from sqlalchemy.orm import Mapped, mapped_column

from mobility.core.db import Base
from mobility.core.models import JSONType, UTCDateTime


class JobLease(Base):
    """A job runs when `nextRunAt` has come and no live lease holds it: the worker that takes the lease
    (a conditional UPDATE, so one of any number of workers) runs it, then sets the next period."""

    __tablename__ = "job_leases"
    __audited__ = False

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    next_run_at: Mapped[datetime] = mapped_column("nextRunAt", UTCDateTime())
    leased_by: Mapped[str | None] = mapped_column("leasedBy", Text)
    lease_until: Mapped[datetime | None] = mapped_column("leaseUntil", UTCDateTime())
    last_started_at: Mapped[datetime | None] = mapped_column("lastStartedAt", UTCDateTime())
    last_finished_at: Mapped[datetime | None] = mapped_column("lastFinishedAt", UTCDateTime())
    last_result: Mapped[Any | None] = mapped_column("lastResult", JSONType)
    last_error: Mapped[str | None] = mapped_column("lastError", Text)
