"""The logged-in caller's own account: their user row and their memberships (GET /me)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.core.scope import require_scope
from mobility.roles.models import Role
from mobility.tenants.models import Tenant
from mobility.users.models import User, UserTenant


async def current_user(session: AsyncSession) -> User:
    scope = require_scope(session)
    return (await session.execute(select(User).where(User.id == scope.actor_id))).scalar_one()


async def memberships(session: AsyncSession) -> list[tuple[UserTenant, Tenant, Role]]:
    """The caller's tenants, with the role held in each (primary first)."""
    scope = require_scope(session)
    rows = await session.execute(
        select(UserTenant, Tenant, Role)
        .join(Tenant, Tenant.id == UserTenant.tenant_id)
        .join(Role, Role.id == UserTenant.role_id)
        .where(UserTenant.user_id == scope.actor_id)
        .order_by(UserTenant.is_primary.desc(), Tenant.name)
    )
    return [tuple(row) for row in rows]
