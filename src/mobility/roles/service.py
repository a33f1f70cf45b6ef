"""Roles: the seven global system roles (read-only) and each tenant's own custom roles.

A custom role carries its own list of permissions, limited to what a tenant's Admin may do (managing
tenants is the installation's business, not a tenant's) and to what the caller holds: nobody can
hand out, through a role, rights they do not have themselves.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.authz.permissions import MATRIX, SystemRole, permissions_for_role
from mobility.core import audit
from mobility.core.errors import Conflict, Forbidden, InvalidInput
from mobility.core.pagination import PageParams, contains, paginate, text_key, time_key
from mobility.core.scope import Scope, get_visible, require_scope, tenant_view
from mobility.roles.models import Role
from mobility.users.models import UserTenant

SYSTEM_ROLE_NAMES = frozenset(role.value.casefold() for role in SystemRole)
# What a custom role may grant at most: a tenant Admin's cell of the matrix.
GRANTABLE_IN_TENANT = MATRIX[SystemRole.admin]

ROLE_SORT_KEYS = {"name": text_key(Role.name), "createdAt": time_key(Role.created_at)}


class RoleReadOnly(Forbidden):
    code, title = "role_read_only", "This role cannot be changed"


class InsufficientRights(Forbidden):
    code, title = "insufficient_rights", "You do not hold these rights yourself"


def granted_by(role: Role) -> frozenset[str]:
    """The permissions a role grants (what authentication will give its holders)."""
    return permissions_for_role(role.name, role.permissions)


def ensure_caller_holds(scope: Scope, permissions: frozenset[str] | set[str], what: str) -> None:
    """Refuse to hand out (or act on a holder of) rights the caller does not hold."""
    missing = set(permissions) - set(scope.permissions)
    if missing and not scope.system:
        raise InsufficientRights(
            f"{what} grants rights you do not hold: {', '.join(sorted(missing))}.", missing=sorted(missing)
        )


async def list_roles(
    session: AsyncSession, *, params: PageParams, system: bool | None = None, q: str | None = None
) -> tuple[list[Role], str | None]:
    """The global roles and the current tenant's custom ones."""
    statement = select(Role)
    if system is not None:
        statement = statement.where(Role.system_role.is_(system))
    if q:
        statement = statement.where(contains(Role.name, text=q))
    with tenant_view(session):
        return await paginate(
            session,
            statement,
            params=params,
            sort_keys=ROLE_SORT_KEYS,
            default_sort="name",
            id_column=Role.id,
        )


async def get_role(session: AsyncSession, role_id: uuid.UUID, *, field_name: str | None = None) -> Role:
    """A global role or one of the current tenant's; 404 (or 422 for a reference in a body) otherwise."""
    with tenant_view(session):
        return await get_visible(session, Role, role_id, field_name=field_name)


async def _custom_role(session: AsyncSession, role_id: uuid.UUID) -> Role:
    role = await get_role(session, role_id)
    if role.tenant_id is None or role.system_role:
        raise RoleReadOnly("System and global roles are read-only; create a custom role instead.")
    return role


def _check_name(name: str) -> None:
    if name.casefold() in SYSTEM_ROLE_NAMES:
        raise InvalidInput(f"{name!r} is the name of a system role.", field="name")


async def _ensure_name_free(session: AsyncSession, name: str, ignore: uuid.UUID | None = None) -> None:
    statement = select(Role.id).where(func.lower(Role.name) == name.lower())
    if ignore is not None:
        statement = statement.where(Role.id != ignore)
    with tenant_view(session):
        taken = (await session.execute(statement.limit(1))).scalar()
    if taken is not None:
        raise Conflict(f"A role named {name!r} exists already.", field="name")


def _check_permissions(scope: Scope, permissions: list[str]) -> None:
    beyond = sorted(set(permissions) - GRANTABLE_IN_TENANT)
    if beyond:
        raise InvalidInput(
            f"A tenant's role cannot grant {', '.join(beyond)}.", field="permissions", permissions=beyond
        )
    ensure_caller_holds(scope, set(permissions), "This role")


async def create_role(
    session: AsyncSession, *, name: str, description: str | None, permissions: list[str]
) -> Role:
    scope = require_scope(session)
    _check_name(name)
    _check_permissions(scope, permissions)
    await _ensure_name_free(session, name)
    role = Role(
        name=name,
        description=description,
        permissions=sorted(set(permissions)),
        system_role=False,
        tenant_id=scope.tenant_id,
    )
    session.add(role)
    await audit.flush_as(
        session, "role.create", conflict=f"A role named {name!r} exists already.", reread=(role,)
    )
    return role


async def update_role(session: AsyncSession, role_id: uuid.UUID, changes: dict[str, Any]) -> Role:
    scope = require_scope(session)
    role = await _custom_role(session, role_id)
    # Changing a role changes what its holders may do: the caller must hold what it grants now too.
    ensure_caller_holds(scope, granted_by(role), "This role")
    if "name" in changes:
        _check_name(changes["name"])
        if changes["name"].lower() != role.name.lower():
            await _ensure_name_free(session, changes["name"], ignore=role.id)
    if "permissions" in changes:
        changes["permissions"] = sorted(set(changes["permissions"]))
        _check_permissions(scope, changes["permissions"])
    for key, value in changes.items():
        if getattr(role, key) != value:
            setattr(role, key, value)
    await audit.flush_as(
        session, "role.update", conflict="A role with this name exists already.", reread=(role,)
    )
    return role


async def delete_role(session: AsyncSession, role_id: uuid.UUID) -> None:
    scope = require_scope(session)
    role = await _custom_role(session, role_id)
    ensure_caller_holds(scope, granted_by(role), "This role")
    with tenant_view(session):
        holders = (
            await session.execute(
                select(func.count()).select_from(UserTenant).where(UserTenant.role_id == role.id)
            )
        ).scalar_one()
    if holders:
        raise Conflict(f"{holders} member(s) hold this role; give them another role first.", holders=holders)
    await session.delete(role)
    await audit.flush_as(session, "role.delete", conflict="The role is still in use.")
