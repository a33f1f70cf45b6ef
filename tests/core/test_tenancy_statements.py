"""The ScopedSession on statement shapes that once slipped past it (regressions of the isolation suite).

Each was a real hole on SQLite (and, before row-level security, on PostgreSQL): an entity only in a
FROM or subquery got no row filter; a Core statement on a Table got none at all; bulk INSERT/UPDATE
statements, which no flush sees, could write another tenant's tenantId; an ORM bulk UPDATE by primary
key ignored the filters; rows of the shared tables (memberships, roles) could be added for another
tenant; an alias of a model joined next to it was filtered with the model's own columns; an object
built with another tenant's id and added as persistent was updated or deleted by its primary key at
flush. The legitimate forms of the same statements keep working.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select, true, update
from sqlalchemy.orm import aliased, make_transient_to_detached

from mobility.authz.permissions import SystemRole
from mobility.core.scope import TenancyViolation
from mobility.roles.models import Role
from mobility.settings.models import Setting
from mobility.users.models import UserTenant
from tests.support.factories import make_tenant, make_user, system_role, unique
from tests.support.sessions import Db, scope_of, system_session

# On PostgreSQL also as a role that bypasses row-level security: the application's filters alone.
pytestmark = pytest.mark.each_wall_alone


@pytest.fixture
async def two(db: Db):
    async with system_session(db.url) as session:
        tenant_a, tenant_b = await make_tenant(session), await make_tenant(session)
        admin = await make_user(session, tenant_b, SystemRole.admin)
        theirs = Setting(tenant_id=tenant_a.id, key=unique("k"), value={})
        ours = Setting(tenant_id=tenant_b.id, key=unique("k"), value={})
        session.add_all([theirs, ours])
    return tenant_a, tenant_b, scope_of(tenant_b.id, admin.id, SystemRole.admin), theirs, ours


async def test_an_entity_only_in_from_or_a_subquery_is_filtered(db: Db, two) -> None:
    tenant_a, _tenant_b, scope, theirs, ours = two
    async with db.acting(scope) as session:
        count = select(func.count()).select_from(Setting).where(Setting.id.in_([theirs.id, ours.id]))
        assert (await session.execute(count)).scalar_one() == 1
        subquery = select(Setting.tenant_id).where(Setting.id == theirs.id).scalar_subquery()
        assert (await session.execute(select(subquery))).scalar() is None


async def test_an_alias_is_filtered_on_its_own_columns(db: Db, two) -> None:
    """A join to `aliased(Setting)` carries the row filter of the alias, wherever the alias stands."""
    _tenant_a, _tenant_b, scope, theirs, ours = two
    other = aliased(Setting, name="other")
    ids = [theirs.id, ours.id]
    async with db.acting(scope) as session:
        alone = select(other.id).where(other.id.in_(ids))
        assert set((await session.execute(alone)).scalars()) == {ours.id}
        # The alias as a JOIN target, next to the model itself: the ON clause once named `settings`.
        beside = (
            select(Setting.id, other.id).join(other, true()).where(other.id.in_(ids), Setting.id.in_(ids))
        )
        assert set(await session.execute(beside)) == {(ours.id, ours.id)}
        joined = select(UserTenant.id, other.id).join(other, other.tenant_id == UserTenant.tenant_id)
        assert {row[1] for row in await session.execute(joined.where(other.id.in_(ids)))} == {ours.id}


async def test_a_statement_on_a_table_is_refused(db: Db, two) -> None:
    *_, scope, theirs, _ours = two
    async with db.acting(scope) as session:
        with pytest.raises(TenancyViolation, match="by table"):
            await session.execute(select(Setting.__table__).where(Setting.__table__.c.id == theirs.id))


async def test_bulk_insert_writes_the_own_tenant_only(db: Db, two) -> None:
    tenant_a, tenant_b, scope, *_ = two
    async with db.acting(scope) as session:
        await session.execute(insert(Setting).values(tenant_id=tenant_b.id, key=unique("k"), value={}))
        await session.execute(insert(Setting), [{"tenant_id": tenant_b.id, "key": unique("k"), "value": {}}])
        for attempt in (
            insert(Setting).values(tenant_id=tenant_a.id, key=unique("k"), value={}),
            insert(Setting).values(key=unique("k"), value={}),
            insert(Setting).from_select(
                ["tenantId", "key", "value"], select(Setting.tenant_id, Setting.key, Setting.value)
            ),
        ):
            with pytest.raises(TenancyViolation):
                await session.execute(attempt)
        with pytest.raises(TenancyViolation):
            await session.execute(
                insert(Setting), [{"tenant_id": tenant_a.id, "key": unique("k"), "value": {}}]
            )


async def test_bulk_update_cannot_move_rows_or_go_by_primary_key(db: Db, two) -> None:
    tenant_a, _tenant_b, scope, theirs, ours = two
    async with db.acting(scope) as session:
        changed = await session.execute(
            update(Setting).where(Setting.id == ours.id).values(value={"x": 1}),
            execution_options={"synchronize_session": False},
        )
        assert changed.rowcount == 1
        with pytest.raises(TenancyViolation):
            await session.execute(update(Setting).where(Setting.id == ours.id).values(tenant_id=tenant_a.id))
        with pytest.raises(TenancyViolation, match="primary key"):
            await session.execute(update(Setting), [{"id": theirs.id, "value": {"x": 2}}])


async def test_shared_rows_cannot_be_added_for_another_tenant(db: Db, two) -> None:
    tenant_a, tenant_b, scope, *_ = two
    async with system_session(db.url) as session:
        admin_role = (await system_role(session, SystemRole.admin)).id
        outsider = (await make_user(session, None)).id
    async with db.acting(scope) as session:
        session.add(UserTenant(user_id=scope.actor_id, tenant_id=tenant_a.id, role_id=admin_role))
        with pytest.raises(TenancyViolation):
            await session.flush()
    async with db.acting(scope) as session:
        session.add(Role(name=unique("r"), tenant_id=tenant_a.id))
        with pytest.raises(TenancyViolation):
            await session.flush()
    async with db.acting(scope) as session:
        session.add(UserTenant(user_id=outsider, tenant_id=tenant_b.id, role_id=admin_role))
        session.add(Role(name=unique("r"), tenant_id=tenant_b.id))
        await session.flush()


async def test_a_row_no_scoped_session_read_cannot_be_updated_or_deleted(db: Db, two) -> None:
    """A flush names its row by primary key only: an object built with another tenant's id and added
    as persistent would overwrite that row. Refused before any SQL; the row is unchanged."""
    tenant_a, _tenant_b, scope, theirs, ours = two
    for change in ("update", "delete"):
        async with db.acting(scope) as session:
            forged = Setting(id=theirs.id, tenant_id=scope.tenant_id, key=theirs.key, value={})
            make_transient_to_detached(forged)
            session.add(forged)
            if change == "update":
                forged.value = {"overwritten": True}
            else:
                await session.delete(forged)
            with pytest.raises(TenancyViolation, match="no scoped session read"):
                await session.flush()
    async with system_session(db.url) as session:
        row = await session.get(Setting, theirs.id)
        assert row is not None and row.tenant_id == tenant_a.id and row.value == {}
    # An object read for one tenant is not written under another's scope either.
    async with db.acting(scope.but(tenant_id=tenant_a.id)) as session:
        visible = await session.get(Setting, theirs.id)
    async with db.acting(scope) as session:
        session.add(visible)
        visible.value = {"overwritten": True}
        with pytest.raises(TenancyViolation, match="another tenant"):
            await session.flush()
    # What the session read, or inserted, it writes as before.
    async with db.acting(scope) as session:
        mine = await session.get(Setting, ours.id)
        mine.value = {"changed": True}
        added = Setting(key=unique("k"), value={})
        session.add(added)
        await session.flush()
        added.value = {"changed": True}
        await session.delete(mine)
        await session.flush()


def test_no_model_has_relationships() -> None:
    """Row filters go to the entities a statement names (models and their aliases). A relationship()
    loaded eagerly joins an alias made at compile time, which would get none: add one only together with
    a way to filter it (and a test here)."""
    from mobility.core.db import Base

    assert [mapper.class_.__name__ for mapper in Base.registry.mappers if mapper.relationships] == []
