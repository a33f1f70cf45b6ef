"""The roles service, called directly: the seven system roles are read-only; a tenant's custom roles are
its own, named unlike the system roles and unlike each other, and grant neither what only the
installation may do nor what their author does not hold (issue 3 items 4-5, issue 8; the permission
table's notes: managing tenants and account-wide changes are the System Admin's)."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import select

from mobility.audit.models import AuditLog
from mobility.authz.permissions import SystemRole
from mobility.core.errors import Conflict, InvalidInput, NotFound
from mobility.core.pagination import PageParams
from mobility.roles import service
from mobility.roles.models import Role
from tests.support.admin_api import World, make_world
from tests.support.factories import Member, make_user, system_role
from tests.support.sessions import Db, system_session


def role_name() -> str:
    return f"Coordinator {secrets.token_hex(3)}"


async def custom_role(db: Db, tenant, permissions: list[str], name: str | None = None) -> Role:
    async with system_session(db.url) as session:
        role = Role(name=name or role_name(), tenant_id=tenant.id, system_role=False, permissions=permissions)
        session.add(role)
    return role


async def holder_of(db: Db, world: World, permissions: list[str]) -> Member:
    """A member of the world's tenant holding a custom role that grants exactly `permissions`."""
    role = await custom_role(db, world.tenant, permissions)
    async with system_session(db.url) as session:
        return await make_user(session, world.tenant, role)


async def test_system_roles_are_read_only(db: Db) -> None:
    world = await make_world(db.url)
    async with system_session(db.url) as session:
        trainer = (await system_role(session, SystemRole.trainer)).id
    async with db.acting(world.admin.scope()) as session:
        with pytest.raises(service.RoleReadOnly):
            await service.update_role(session, trainer, {"description": "changed"})
        with pytest.raises(service.RoleReadOnly):
            await service.delete_role(session, trainer)


async def test_a_custom_role_is_not_named_like_a_system_role_or_another_of_the_tenant(db: Db) -> None:
    world = await make_world(db.url)
    taken = await custom_role(db, world.tenant, ["users:read"])
    elsewhere = await custom_role(db, world.other, ["users:read"])
    async with db.acting(world.admin.scope()) as session:
        with pytest.raises(InvalidInput) as system_name:
            await service.create_role(session, name="trainer", description=None, permissions=[])
        with pytest.raises(Conflict) as same_name:
            await service.create_role(session, name=taken.name.upper(), description=None, permissions=[])
        # Another tenant's role of the same name is that tenant's business.
        mine = await service.create_role(session, name=elsewhere.name, description=None, permissions=[])
        assert mine.tenant_id == world.tenant.id
    assert system_name.value.extra["field"] == "name"
    assert same_name.value.extra["field"] == "name"


@pytest.mark.parametrize("permission", ["tenants:create", "accounts:update"])
async def test_a_custom_role_cannot_grant_what_only_the_installation_may_do(db: Db, permission: str) -> None:
    world = await make_world(db.url)
    async with db.acting(world.system_admin.scope()) as session:
        with pytest.raises(InvalidInput) as refused:
            await service.create_role(session, name=role_name(), description=None, permissions=[permission])
    assert refused.value.extra["field"] == "permissions"


async def test_nobody_hands_out_rights_they_do_not_hold(db: Db) -> None:
    world = await make_world(db.url)
    author = await holder_of(db, world, ["roles:create", "roles:update", "roles:delete", "users:read"])
    stronger = await custom_role(db, world.tenant, ["users:read", "users:delete"])
    async with db.acting(author.scope()) as session:
        with pytest.raises(service.InsufficientRights) as granting:
            await service.create_role(
                session, name=role_name(), description=None, permissions=["users:delete"]
            )
        # Changing or deleting a role that grants more than the caller holds changes what its holders
        # may do: refused too.
        with pytest.raises(service.InsufficientRights):
            await service.update_role(session, stronger.id, {"description": "mine now"})
        with pytest.raises(service.InsufficientRights):
            await service.delete_role(session, stronger.id)
        within = await service.create_role(
            session, name=role_name(), description=None, permissions=["users:read"]
        )
        assert within.permissions == ["users:read"]
    assert granting.value.extra["missing"] == ["users:delete"]


async def test_a_role_someone_holds_is_not_deleted(db: Db) -> None:
    world = await make_world(db.url)
    held = await custom_role(db, world.tenant, ["users:read"])
    unheld = await custom_role(db, world.tenant, ["users:read"])
    async with system_session(db.url) as session:
        await make_user(session, world.tenant, held)
    async with db.acting(world.admin.scope()) as session:
        with pytest.raises(Conflict) as in_use:
            await service.delete_role(session, held.id)
        await service.delete_role(session, unheld.id)
        gone = await session.get(Role, unheld.id, populate_existing=True)
        recorded = (
            (
                await session.execute(
                    select(AuditLog.action).where(AuditLog.entity_id == unheld.id).order_by(AuditLog.id)
                )
            )
            .scalars()
            .all()
        )
    assert in_use.value.extra["holders"] == 1
    assert gone is None
    assert recorded[-1] == "role.delete"


async def test_a_tenant_sees_the_system_roles_and_its_own_only(db: Db) -> None:
    world = await make_world(db.url)
    mine = await custom_role(db, world.tenant, ["users:read"])
    theirs = await custom_role(db, world.other, ["users:read"])
    async with system_session(db.url) as session:  # every system role exists, as after the seed
        for role in SystemRole:
            await system_role(session, role)
    async with db.acting(world.admin.scope()) as session:
        listed, _ = await service.list_roles(session, params=PageParams(limit=100))
        with pytest.raises(NotFound):
            await service.get_role(session, theirs.id)
        with pytest.raises(NotFound):
            await service.update_role(session, theirs.id, {"description": "taken over"})
        seen = {(role.name, role.tenant_id) for role in listed}
    assert {(role.value, None) for role in SystemRole} <= seen
    assert (mine.name, world.tenant.id) in seen
    assert {tenant_id for _, tenant_id in seen} == {None, world.tenant.id}
