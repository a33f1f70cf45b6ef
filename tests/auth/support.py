"""Helpers of the authentication tests: login attempts, and the rows of sessions, throttles and the
activity log read and changed behind the API's back. (Clients, each from its own address, and
`problem`: tests/support/app.py.)
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from mobility.audit.models import ActivityLog
from mobility.auth.credentials import hash_token
from mobility.auth.models import LoginThrottle, Session
from mobility.core.models import utcnow
from mobility.users.models import User
from tests.support.factories import PASSWORD
from tests.support.sessions import system_session

LOGIN = "/api/v1/auth/login"


async def attempt(client: httpx.AsyncClient, email: str, password: str = PASSWORD, **extra: Any):
    """One login attempt; the cookie it may set is not kept (each test sends credentials explicitly)."""
    response = await client.post(LOGIN, json={"email": email, "password": password, **extra})
    client.cookies.clear()
    return response


async def log_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD, **extra: Any) -> str:
    """Log in (or fail the test); returns the session token."""
    response = await attempt(client, email, password, **extra)
    assert response.status_code == 200, response.text
    return response.json()["token"]


# --- rows read and changed behind the API's back --------------------------------------------------


async def session_row(database_url: str, token: str) -> Session:
    async with system_session(database_url) as session:
        return (await session.execute(select(Session).where(Session.token == hash_token(token)))).scalar_one()


async def sessions_of(database_url: str, user_id: uuid.UUID) -> list[Session]:
    async with system_session(database_url) as session:
        rows = await session.execute(select(Session).where(Session.user_id == user_id))
        return list(rows.scalars())


async def age_session(database_url: str, token: str, **ages: timedelta) -> None:
    """Move a session's timestamps into the past: `last_seen_at=timedelta(minutes=31)` and the like."""
    now = utcnow()
    async with system_session(database_url) as session:
        await session.execute(
            update(Session)
            .where(Session.token == hash_token(token))
            .values(**{column: now - age for column, age in ages.items()})
        )


async def set_user(database_url: str, user_id: uuid.UUID, **values: Any) -> None:
    async with system_session(database_url) as session:
        await session.execute(update(User).where(User.id == user_id).values(**values))


async def throttle(database_url: str, key: str) -> LoginThrottle | None:
    async with system_session(database_url) as session:
        return await session.get(LoginThrottle, key)


async def set_throttle(database_url: str, key: str, **values: Any) -> None:
    async with system_session(database_url) as session:
        await session.execute(update(LoginThrottle).where(LoginThrottle.key == key).values(**values))


async def activity(database_url: str, address: str) -> list[ActivityLog]:
    """The activity_logs rows written for requests from `address`, oldest first."""
    async with system_session(database_url) as session:
        rows = await session.execute(
            select(ActivityLog).where(ActivityLog.ip_address == address).order_by(ActivityLog.created_at)
        )
        return list(rows.scalars())
