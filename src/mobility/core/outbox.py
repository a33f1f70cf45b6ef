"""What the worker needs of an outbox (notifications by e-mail, webhook deliveries), so that each domain
delivers its own rows and the worker (mobility.worker) claims, retries and records them the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class Outcome:
    """What became of one attempt to deliver a row."""

    ok: bool = False
    error: str | None = None
    # No use trying again (refused for good, an endpoint disabled).
    permanent: bool = False
    # Not to be sent at all (the recipient turned the category off): `cancelled`, not a failure.
    cancelled: bool = False
    response_status: int | None = None
    # Not attempted (the worker is stopping): back to the queue, the attempt not counted.
    released: bool = False


SENT = Outcome(ok=True)
RELEASED = Outcome(released=True)


class Outbox(Protocol):
    """An outbox table and how its rows are delivered. The worker claims due rows of `model` matching
    `where`, calls `prepare` once per batch (under the system scope, in a read-only use of the
    session: lookups the deliveries need), then `deliver` for each row, outside any transaction."""

    name: str
    model: type
    where: ColumnElement[bool] | None

    async def prepare(self, session: AsyncSession, rows: list[Any]) -> Any: ...

    async def deliver(self, context: Any, row: Any) -> Outcome: ...

    async def after(self, session: AsyncSession, results: list[tuple[Any, Outcome]]) -> None:
        """In the transaction that records the batch: follow-ups of the results (e.g. disabling an
        endpoint that has failed for days)."""

    async def close(self) -> None: ...
