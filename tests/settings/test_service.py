"""The settings service, called directly: known keys only, each tenant's values its own, defaults where
nothing is set, every change in the audit trail (issue 3; DESIGN.md "Workflows": the passport must stay
valid 6 months past the contract start unless a tenant sets otherwise)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mobility.audit.models import AuditLog
from mobility.core.errors import InvalidInput, NotFound
from mobility.core.scope import Scope, TenancyViolation, in_tenant
from mobility.settings import service
from mobility.settings.models import Setting
from tests.support.admin_api import make_world
from tests.support.sessions import Db, system_session

KEY = "placements.passportValidityMonths"


async def test_an_unset_key_has_its_default(db: Db) -> None:
    world = await make_world(db.url)
    async with db.acting(world.admin.scope()) as session:
        assert await service.get_value(session, service.PASSPORT_VALIDITY_MONTHS) == 6
        assert await service.get_value(session, service.REQUIRE_TWO_FACTOR) is False
        listed = {setting.key: setting for setting in await service.list_settings(session)}
    assert set(listed) == set(service.KNOWN)
    assert not any(setting.is_set for setting in listed.values())
    assert listed[KEY].value == listed[KEY].default == 6


async def test_unknown_keys_are_refused(db: Db) -> None:
    world = await make_world(db.url)
    async with db.acting(world.admin.scope()) as session:
        with pytest.raises(NotFound):
            await service.update_setting(session, "theme.colour", "red")
        assert (
            await session.execute(select(AuditLog).where(AuditLog.entity_type == "settings"))
        ).first() is None


async def test_a_value_must_fit_the_key(db: Db) -> None:
    world = await make_world(db.url)
    async with db.acting(world.admin.scope()) as session:
        for wrong in ("six", -1, None):
            with pytest.raises(InvalidInput) as refused:
                await service.update_setting(session, KEY, wrong)
            assert refused.value.extra.get("field") == "value"
        with pytest.raises(InvalidInput):
            await service.update_setting(session, "vetting.requiredChecks", ["astrology"])
        assert await service.get_value(session, service.PASSPORT_VALIDITY_MONTHS) == 6


async def test_a_tenant_sets_its_own_value_and_the_trail_records_each_change(db: Db) -> None:
    world = await make_world(db.url)
    async with db.acting(world.admin.scope()) as session:
        first = await service.update_setting(session, KEY, 12)
        second = await service.update_setting(session, KEY, 9)
        value = await service.get_value(session, service.PASSPORT_VALIDITY_MONTHS)
        trail = [
            (row.before, row.after, row.actor_id, row.tenant_id)
            for row in (
                await session.execute(
                    select(AuditLog).where(AuditLog.action == "setting.update").order_by(AuditLog.id)
                )
            )
            .scalars()
            .all()
        ]
    assert (first.value, first.is_set, second.value, value) == (12, True, 9, 9)
    assert [(before, actor, tenant) for before, _, actor, tenant in trail] == [
        (None, world.admin.id, world.tenant.id),
        ({"value": 12}, world.admin.id, world.tenant.id),
    ]
    created, changed = trail[0][1], trail[1][1]
    assert (created["key"], created["value"], changed) == (KEY, 12, {"value": 9})


async def test_another_tenants_value_is_not_this_ones(db: Db) -> None:
    world = await make_world(db.url)
    async with system_session(db.url) as session:
        session.add(Setting(tenant_id=world.other.id, key=KEY, value=12))
    async with db.acting(world.other_admin.scope()) as session:
        assert await service.get_value(session, service.PASSPORT_VALIDITY_MONTHS) == 12
    async with db.acting(world.admin.scope()) as session:
        assert await service.get_value(session, service.PASSPORT_VALIDITY_MONTHS) == 6
        assert {s.key: s.is_set for s in await service.list_settings(session)}[KEY] is False


async def test_settings_are_set_in_a_tenants_scope_only(db: Db) -> None:
    """Under the system scope no one tenant is meant: refused, not written to some tenant."""
    async with db.acting(Scope.for_system()) as session:
        with pytest.raises(TenancyViolation):
            await service.set_value(session, KEY, 12)


async def test_a_setting_is_read_in_one_named_tenant_even_by_the_operator(db: Db) -> None:
    """The system scope sees every tenant's rows: a setting read there without naming the tenant would
    be any tenant's (or several). It is refused; named with in_tenant, it is that tenant's own value."""
    world = await make_world(db.url)
    async with system_session(db.url) as session:
        session.add(Setting(tenant_id=world.tenant.id, key=KEY, value=9))
        session.add(Setting(tenant_id=world.other.id, key=KEY, value=12))
        await session.flush()
        with pytest.raises(TenancyViolation):
            await service.get_value(session, service.PASSPORT_VALIDITY_MONTHS)
        with in_tenant(session, world.other.id):
            other = await service.get_value(session, service.PASSPORT_VALIDITY_MONTHS)
        with in_tenant(session, world.tenant.id):
            own = await service.get_value(session, service.PASSPORT_VALIDITY_MONTHS)
        await session.rollback()
    assert (own, other) == (9, 12)
    async with db.acting(world.admin.scope()) as session:
        with pytest.raises(TenancyViolation), in_tenant(session, world.other.id):
            pass  # a tenant's caller names no other tenant
