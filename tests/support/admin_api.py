"""Helpers of the administration API tests (tenants, users, roles, settings, audit).

- `make_world`: two tenants of their own per test (an Admin and a Trainer in A, an Admin in B, and a
  System Admin acting in A), so tests sharing a database never see each other's rows.
- `sign_in`: a live session made directly in the database (no password hashing, no login throttling,
  milliseconds), the same rows a login makes; the API then authenticates it as usual.
- `call`: a request with its own X-Request-ID, so `audit_of(request)` finds exactly the audit rows that
  request wrote (the trail records the request id).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from mobility.audit.models import AuditLog
from mobility.auth.credentials import hash_token
from mobility.auth.models import Session
from mobility.authz.permissions import SystemRole
from mobility.core.models import utcnow
from mobility.tenants.models import Tenant
from tests.support.factories import Member, add_membership, make_tenant, make_user
from tests.support.sessions import system_session

REQUEST_ID = "X-Request-ID"


@dataclass
class World:
    url: str
    tenant: Tenant
    admin: Member
    trainer: Member
    other: Tenant
    other_admin: Member
    system_admin: Member
    tokens: dict[uuid.UUID, str]

    def auth(self, member: Member) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[member.id]}"}

    async def new_member(
        self,
        role: SystemRole = SystemRole.trainer,
        *,
        tenant: Tenant | None = None,
        also: SystemRole | None = None,
        **values: Any,
    ) -> Member:
        """A new member of `tenant` (by default the world's) holding `role`, not signed in; with `also`,
        a member of the world's other tenant too, holding that role there."""
        async with system_session(self.url) as session:
            member = await make_user(session, tenant or self.tenant, role, **values)
            if also is not None:
                await add_membership(session, member, self.other, also)
        return member


async def sign_in(session, member: Member, tenant: Tenant) -> str:
    """A live session of `member` acting in `tenant` (what a login creates), returning its token."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        Session(
            user_id=member.user.id,
            tenant_id=tenant.id,
            token=hash_token(token),
            expires_at=now + timedelta(hours=1),
            last_seen_at=now,
            created_at=now,
        )
    )
    await session.flush()
    return token


async def make_world(url: str) -> World:
    async with system_session(url) as session:
        tenant = await make_tenant(session)
        other = await make_tenant(session)
        admin = await make_user(session, tenant, SystemRole.admin)
        trainer = await make_user(session, tenant, SystemRole.trainer)
        other_admin = await make_user(session, other, SystemRole.admin)
        system_admin = await make_user(session, tenant, SystemRole.system_admin)
        tokens = {}
        for member in (admin, trainer, system_admin):
            tokens[member.id] = await sign_in(session, member, tenant)
        tokens[other_admin.id] = await sign_in(session, other_admin, other)
    return World(url, tenant, admin, trainer, other, other_admin, system_admin, tokens)


async def call(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], **kwargs: Any
) -> httpx.Response:
    """A request with a fresh request id (in `response.request_id`)."""
    request_id = f"t-{secrets.token_hex(8)}"
    response = await client.request(
        method, f"/api/v1{path}", headers={**headers, REQUEST_ID: request_id}, **kwargs
    )
    response.request_id = request_id  # type: ignore[attr-defined]
    return response


async def audit_of(url: str, response: httpx.Response) -> list[AuditLog]:
    """The audit rows the request of `response` wrote, in the order written."""
    async with system_session(url) as session:
        rows = await session.execute(
            select(AuditLog)
            .where(AuditLog.request_id == response.request_id)  # type: ignore[attr-defined]
            .order_by(AuditLog.id)
        )
        return list(rows.scalars())


async def one_audit_row(
    url: str,
    response: httpx.Response,
    *,
    action: str,
    entity_type: str,
    entity_id: Any,
    actor: Member,
    tenant: Tenant,
    before: dict | None,
    after: dict | None,
) -> AuditLog:
    """Exactly one audit row for the request, with these values; `before`/`after` compared exactly."""
    rows = await audit_of(url, response)
    assert len(rows) == 1, [(row.action, row.entity_type, row.before, row.after) for row in rows]
    row = rows[0]
    assert_row(row, action=action, entity_type=entity_type, entity_id=entity_id, actor=actor, tenant=tenant)
    assert row.request_id == response.request_id  # type: ignore[attr-defined]
    assert row.before == before
    assert row.after == after
    return row


def assert_row(
    row: AuditLog, *, action: str, entity_type: str, entity_id: Any, actor: Member, tenant: Tenant
):
    assert row.action == action
    assert row.entity_type == entity_type
    assert str(row.entity_id) == str(entity_id)
    assert row.actor_id == actor.id
    assert row.tenant_id == tenant.id
    assert row.ip_address  # the client address of the request


def walk(pages: list[dict]) -> list[str]:
    return [item["id"] for body in pages for item in body["items"]]


async def all_pages(client: httpx.AsyncClient, path: str, headers: dict, **params: Any) -> list[dict]:
    """Every page of a list, following nextCursor."""
    pages, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(f"/api/v1{path}", headers=headers, params=query)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        cursor = response.json()["nextCursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "pagination does not end"
