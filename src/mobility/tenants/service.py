"""Tenants (System Admin): create, update branding and contact details, deactivate and activate.

Tenants are never deleted: their records and audit trail outlive them. A deactivated tenant's users
cannot act in it (authentication refuses its sessions); a System Admin still can.

Also home of helpers the administration services share (to move into core.tenancy): `tenant_view`,
`across_tenants` and `flush`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.core import audit
from mobility.core.errors import Conflict
from mobility.core.pagination import PageParams, contains, paginate, text_key, time_key
from mobility.core.tenancy import Scope, apply_to_database, bind_scope, get_visible, require_scope
from mobility.tenants.models import Tenant

# --- shared helpers -------------------------------------------------------------------------------


@contextmanager
def tenant_view(session: AsyncSession) -> Iterator[None]:
    """Statements run inside see the current tenant's rows only.

    The row rules deliberately also show the caller what is theirs in other tenants (their own
    memberships, roles they hold there, tenants they belong to: /me and switching need them). An
    administration list or lookup of "this tenant's" users, memberships or roles must leave those out.
    The rules need the actor only for those extras, so the same scope without an actor narrows to the
    tenant, whatever the tables; on PostgreSQL, row-level security keeps the (wider) actor's settings,
    so nothing widens. Read only: never flush inside (the trail would lose its actor).
    """
    scope = require_scope(session)
    if scope.system:
        yield
        return
    bind_scope(session, scope.but(actor_id=None))
    try:
        yield
    finally:
        bind_scope(session, scope)


@asynccontextmanager
async def across_tenants(session: AsyncSession) -> AsyncIterator[Scope]:
    """A narrow look beyond the tenant (as authentication does), under the system scope and its
    row-level-security setting, still recorded as the caller's (actor, tenant, address, request id).

    For the few facts an administrator needs that live in other tenants: whether an e-mail already has
    an account, whether a user belongs to other tenants. Yields the caller's own scope, restored after.
    """
    scope = require_scope(session)
    if scope.system:
        yield scope
        return
    await apply_to_database(
        session,
        Scope.for_system(
            actor_id=scope.actor_id,
            tenant_id=scope.tenant_id,
            ip_address=scope.ip_address,
            request_id=scope.request_id,
        ),
    )
    try:
        yield scope
    finally:
        await apply_to_database(session, scope)


async def flush(session: AsyncSession, action: str, *, conflict: str, reread: tuple[Any, ...] = ()) -> None:
    """Flush the pending writes as the business action `action` (the audit trail's name for them); a
    unique key the pre-checks did not catch (a concurrent request) is a 409, not a 500.

    `reread`: rows of the legacy tables (users, roles), whose timestamps PostgreSQL keeps to the
    millisecond: their createdAt/updatedAt are read back, so the response shows what was stored.
    """
    if not (session.new or session.dirty or session.deleted):
        return
    audit.describe(session, action)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(conflict) from exc
    for row in reread:
        await session.refresh(row, attribute_names=["created_at", "updated_at"])


# --- tenants --------------------------------------------------------------------------------------

TENANT_SORT_KEYS = {
    "name": text_key(Tenant.name),
    "code": text_key(Tenant.code),
    "createdAt": time_key(Tenant.created_at),
}


async def list_tenants(
    session: AsyncSession, *, params: PageParams, active: bool | None = None, q: str | None = None
) -> tuple[list[Tenant], str | None]:
    """All tenants for a System Admin; an Admin sees only the tenant they act in."""
    statement = select(Tenant)
    if active is not None:
        statement = statement.where(Tenant.is_active.is_(active))
    if q:
        statement = statement.where(contains(Tenant.name, Tenant.code, text=q))
    with tenant_view(session):
        return await paginate(
            session,
            statement,
            params=params,
            sort_keys=TENANT_SORT_KEYS,
            default_sort="name",
            id_column=Tenant.id,
        )


async def get_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant:
    with tenant_view(session):
        return await get_visible(session, Tenant, tenant_id)


async def _ensure_unique(session: AsyncSession, *, name: str | None, code: str | None, ignore=None) -> None:
    clauses = []
    if name is not None:
        clauses.append(func.lower(Tenant.name) == name.lower())
    if code is not None:
        clauses.append(Tenant.code == code)
    if not clauses:
        return
    statement = select(Tenant.name, Tenant.code).where(or_(*clauses))
    if ignore is not None:
        statement = statement.where(Tenant.id != ignore)
    for found_name, found_code in (await session.execute(statement)).all():
        if code is not None and found_code == code:
            raise Conflict(f"A tenant with code {code} exists already.", field="code")
        raise Conflict(f"A tenant named {found_name!r} exists already.", field="name")


async def create_tenant(
    session: AsyncSession,
    *,
    name: str,
    code: str,
    branding: dict[str, Any],
    contact_info: dict[str, Any],
) -> Tenant:
    await _ensure_unique(session, name=name, code=code)
    tenant = Tenant(name=name, code=code, branding=branding, contact_info=contact_info, is_active=True)
    session.add(tenant)
    await flush(session, "tenant.create", conflict="A tenant with this name or code exists already.")
    return tenant


async def update_tenant(session: AsyncSession, tenant_id: uuid.UUID, changes: dict[str, Any]) -> Tenant:
    """`changes`: name, branding, contact_info (a given branding or contact_info replaces the old one)."""
    tenant = await get_tenant(session, tenant_id)
    if "name" in changes and changes["name"] != tenant.name:
        await _ensure_unique(session, name=changes["name"], code=None, ignore=tenant.id)
    for key, value in changes.items():
        if getattr(tenant, key) != value:
            setattr(tenant, key, value)
    await flush(session, "tenant.update", conflict="A tenant with this name exists already.")
    return tenant


async def set_active(session: AsyncSession, tenant_id: uuid.UUID, active: bool) -> Tenant:
    """Deactivate or activate; doing it again changes nothing (and records nothing)."""
    tenant = await get_tenant(session, tenant_id)
    if tenant.is_active != active:
        tenant.is_active = active
        await flush(
            session, "tenant.activate" if active else "tenant.deactivate", conflict="The tenant changed."
        )
    return tenant
