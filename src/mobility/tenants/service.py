"""Tenants (System Admin): create, update branding and contact details, deactivate and activate.

Tenants are never deleted: their records and audit trail outlive them. A deactivated tenant's users
cannot act in it (authentication refuses its sessions); a System Admin still can.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.core import audit
from mobility.core.errors import Conflict
from mobility.core.pagination import PageParams, contains, paginate, text_key, time_key
from mobility.core.scope import across_tenants, get_visible, tenant_view
from mobility.tenants.models import Tenant

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
    await _flush_into_own_trail(
        session, "tenant.create", conflict="A tenant with this name or code exists already."
    )
    return tenant


async def _flush_into_own_trail(session: AsyncSession, action: str, *, conflict: str) -> None:
    """A tenant's records go to its own trail (`Tenant.__audit_tenant__`), which is another tenant's
    than the one the System Admin acts in: written under the system scope, still as the caller."""
    async with across_tenants(session):
        await audit.flush_as(session, action, conflict=conflict)


async def update_tenant(session: AsyncSession, tenant_id: uuid.UUID, changes: dict[str, Any]) -> Tenant:
    """`changes`: name, branding, contact_info (a given branding or contact_info replaces the old one)."""
    tenant = await get_tenant(session, tenant_id)
    if "name" in changes and changes["name"] != tenant.name:
        await _ensure_unique(session, name=changes["name"], code=None, ignore=tenant.id)
    for key, value in changes.items():
        if getattr(tenant, key) != value:
            setattr(tenant, key, value)
    await _flush_into_own_trail(session, "tenant.update", conflict="A tenant with this name exists already.")
    return tenant


async def set_active(session: AsyncSession, tenant_id: uuid.UUID, active: bool) -> Tenant:
    """Deactivate or activate; doing it again changes nothing (and records nothing)."""
    tenant = await get_tenant(session, tenant_id)
    if tenant.is_active != active:
        tenant.is_active = active
        await _flush_into_own_trail(
            session, "tenant.activate" if active else "tenant.deactivate", conflict="The tenant changed."
        )
    return tenant
