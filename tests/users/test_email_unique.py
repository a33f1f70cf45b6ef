"""One account per e-mail whatever its letter case (revision 0013), under concurrent writers: the loser
of a race gets 409, never 500, and one account exists."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from sqlalchemy import func, select

from mobility.authz.permissions import SystemRole
from mobility.core import audit
from mobility.core.errors import Conflict
from mobility.users.models import User
from tests.support.admin_api import make_world
from tests.support.app import api_client
from tests.support.factories import system_role
from tests.support.sessions import system_session


async def _accounts(url: str, email: str) -> int:
    async with system_session(url) as session:
        return (
            await session.execute(
                select(func.count()).select_from(User).where(func.lower(User.email) == email.lower())
            )
        ).scalar_one()


async def test_concurrent_invitations_of_case_twins_make_one_account_and_a_409(
    migrated_database_url: str,
) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with system_session(url) as session:
        trainer = str((await system_role(session, SystemRole.trainer)).id)
    local = f"bob.{secrets.token_hex(3)}"
    async with api_client(url) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/users",
                    headers=world.auth(world.admin),
                    json={"email": email, "name": "Bob", "roleId": trainer},
                )
                for email in (f"{local.capitalize()}@X.example", f"{local}@x.example")
            )
        )
    assert sorted(response.status_code for response in responses) == [201, 409], [r.text for r in responses]
    loser = next(response for response in responses if response.status_code == 409)
    assert loser.headers["content-type"].startswith("application/problem+json")
    assert await _accounts(url, f"{local}@x.example") == 1


async def test_a_writer_racing_for_a_case_twin_gets_a_conflict(migrated_database_url: str) -> None:
    """Whichever commits first, the other one's flush meets the unique index: a Conflict (409)."""
    url = migrated_database_url
    local = f"tala.{secrets.token_hex(3)}"

    async def write(
        email: str, started: asyncio.Event | None = None, go: asyncio.Event | None = None
    ) -> None:
        async with system_session(url) as session:
            session.add(User(email=email, name="Tala", status="invited"))
            await audit.flush_as(session, "user.invite", conflict=f"{email} has an account already.")
            if started is not None:
                started.set()
                await go.wait()  # holds its uncommitted row until the other writer has started

    started, go = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(write(f"{local}@example.org", started, go))
    await started.wait()
    second = asyncio.create_task(write(f"{local.upper()}@EXAMPLE.ORG"))
    await asyncio.sleep(0)  # let the second begin; it waits for the first's lock, or finds its row
    go.set()
    await first
    with pytest.raises(Conflict):
        await second
    assert await _accounts(url, f"{local}@example.org") == 1
