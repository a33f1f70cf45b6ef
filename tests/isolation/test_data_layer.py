"""Tenant isolation at the data layer, for every table that carries a tenant, found from the models.

For each model with a `tenantId` column (the tenant-scoped tables, and the shared tables that record a
tenant: users, roles, user_tenants, sessions, audit_logs), a row is built in tenant A with the generic
row builder, then an Admin of tenant B, through the application's ScopedSession, tries to read it, list
it, update it (ORM and bulk), delete it, write rows into tenant A and point rows of B at it. Every try
must find nothing or be refused, and A's row must be unchanged. A new table is covered without editing
this file; a table the builder cannot fill fails loudly, naming the column.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import delete, exists, func, insert, inspect, select, update

from mobility.authz.permissions import SystemRole
from mobility.core.db import Base
from mobility.core.scope import Scope, TenancyViolation, apply_to_database, tenant_scoped
from mobility.models import metadata
from mobility.tenants.models import Tenant
from tests.support.factories import make_tenant, make_user
from tests.support.rows import TENANT_COLUMN, RowBuilder, model_for, references_to, snapshot, value_for
from tests.support.sessions import REFUSED, Db, scope_of, system_session

# On PostgreSQL also as a role that bypasses row-level security: the application's filters alone.
pytestmark = pytest.mark.each_wall_alone

ISOLATED = [model_for(table) for table in metadata.sorted_tables if TENANT_COLUMN in table.c]
ISOLATED_IDS = [model.__tablename__ for model in ISOLATED]

# References whose target is a table without its own tenant (a login or a role can belong to several
# tenants): the database cannot refuse them by a composite key; the services must look the target up
# through the scoped session (`get_visible(..., field_name=...)`) and answer 422. Covered per endpoint.
SHARED_TARGETS = {"users", "roles"}
REFERENCES = [
    (target, source, column)
    for target in ISOLATED
    if tenant_scoped(target) and target.__tablename__ not in SHARED_TARGETS
    for source, column in references_to(target.__tablename__)
]
REFERENCE_IDS = [
    f"{source.__tablename__}.{column.name}->{target.__tablename__}" for target, source, column in REFERENCES
]


def test_the_suite_covers_every_table_with_a_tenant() -> None:
    tenant_scoped_models = {mapper.class_ for mapper in Base.registry.mappers if tenant_scoped(mapper.class_)}
    assert tenant_scoped_models <= set(ISOLATED), "a tenant-scoped model without a tenantId column?"
    # A sanity floor, so that a broken discovery does not pass with nothing to test.
    assert len(ISOLATED) >= 21 and len(REFERENCES) >= 20


@dataclass
class World:
    tenant_a: Tenant
    tenant_b: Tenant
    admin_b: Scope


@pytest.fixture
async def world(db: Db, per_backend, backend: str) -> World:
    async def make() -> World:
        async with system_session(db.url) as session:
            tenant_a, tenant_b = await make_tenant(session), await make_tenant(session)
            admin = await make_user(session, tenant_b, SystemRole.admin)
        return World(tenant_a, tenant_b, scope_of(tenant_b.id, admin.id, SystemRole.admin))

    return await per_backend.get("isolation-data-layer", backend, make)


async def by_id(session, model: type, row_id: Any) -> Any:
    """The row with this id (`session.get` wants the whole primary key: (tenantId, id) on some tables)."""
    return (await session.execute(select(model).where(model.id == row_id))).scalar_one_or_none()


async def build_in(db: Db, tenant: Tenant, model: type, **overrides: Any) -> Any:
    async with system_session(db.url) as session:
        return await RowBuilder(session, tenant).build(model, **overrides)


async def values_in(db: Db, tenant: Tenant, model: type, **overrides: Any) -> dict[str, Any]:
    """Values of a new row of `model` in `tenant`, its parents written (committed), the row not."""
    async with system_session(db.url) as session:
        return await RowBuilder(session, tenant).values(model, **overrides)


async def read(db: Db, model: type, row_id: Any) -> dict[str, Any] | None:
    async with system_session(db.url) as session:
        return await snapshot(session, model, row_id)


def some_column(model: type) -> Any:
    """An ORM attribute to "change" in a bulk UPDATE: any plain column but the key and the tenant."""
    for column in model.__table__.columns:
        if not column.primary_key and column.name != TENANT_COLUMN and not column.foreign_keys:
            return getattr(model, inspect(model).get_property_by_column(column).key)
    raise AssertionError(f"{model.__tablename__} has no column to update")


async def refused(db: Db, scope: Scope, attempt) -> BaseException:
    """Run `attempt(session)` as `scope`, flushing at the end: it must be refused."""
    async with db.acting(scope) as session:
        with pytest.raises(REFUSED) as caught:
            await attempt(session)
            await session.flush()
    return caught.value


async def unchanged_after(db: Db, scope: Scope, attempt, model: type, row_id: Any, before: dict) -> None:
    """Run `attempt(session)` as `scope`: it is refused, or else, still inside the attacker's own
    transaction (which is rolled back afterwards), the target row is exactly as it was."""
    async with db.acting(scope) as session:
        try:
            await attempt(session)
            await session.flush()
        except REFUSED:
            return
        await apply_to_database(session, Scope.for_system())
        assert await snapshot(session, model, row_id) == before, "another tenant's row was changed"


async def accepted(db: Db, scope: Scope, attempt) -> None:
    """The control of an attack: the same write, aimed at the caller's own tenant, works (rolled back)."""
    async with db.acting(scope) as session:
        await attempt(session)
        await session.flush()


@pytest.mark.parametrize("model", ISOLATED, ids=ISOLATED_IDS)
async def test_another_tenants_row_cannot_be_read_changed_or_deleted(db: Db, world: World, model) -> None:
    row = await build_in(db, world.tenant_a, model)
    before = await read(db, model, row.id)
    assert before is not None and before[TENANT_COLUMN] == world.tenant_a.id

    async with db.acting(world.admin_b) as session:
        assert await by_id(session, model, row.id) is None
        listed = (await session.execute(select(model.id))).scalars().all()
        assert row.id not in listed
        assert (await session.execute(select(model).where(model.id == row.id))).first() is None
        # The entity only in a FROM, a JOIN target or a subquery is filtered as well.
        counted = (await session.execute(select(func.count()).select_from(model))).scalar_one()
        assert counted == len(listed)
        assert not (await session.execute(select(exists().where(model.id == row.id)))).scalar_one()
        in_subquery = select(Tenant.id).where(
            Tenant.id.in_(select(model.tenant_id).where(model.id == row.id))
        )
        assert (await session.execute(in_subquery)).first() is None
        # By table rather than model, no row filter could apply: refused outright.
        with pytest.raises(TenancyViolation):
            await session.execute(select(model.__table__.c.id).where(model.__table__.c.id == row.id))
    column = some_column(model)
    other_value = value_for(model.__table__.c[column.name])

    async def bulk(statement, parameters=None, *, matched_rows: int | None = 0):
        async def run(session) -> None:
            result = await session.execute(
                statement, parameters, execution_options={"synchronize_session": False}
            )
            if matched_rows is not None:
                assert result.rowcount == matched_rows, str(statement)

        await unchanged_after(db, world.admin_b, run, model, row.id, before)

    await bulk(update(model).where(model.id == row.id).values({column: other_value}))
    await bulk(delete(model).where(model.id == row.id))
    # Unfiltered: may change B's rows only.
    await bulk(update(model).values({column: other_value}), matched_rows=None)
    # ORM bulk UPDATE by primary key.
    await bulk(update(model), [{"id": row.id, column.key: other_value}], matched_rows=None)

    # An ORM "update" of a row the caller cannot load: merge() looks it up (filtered), finds nothing and
    # tries to insert a new row with the same key, which the database refuses.
    async def merge(session) -> None:
        await session.merge(model(id=row.id))

    await unchanged_after(db, world.admin_b, merge, model, row.id, before)

    assert await read(db, model, row.id) == before


@pytest.mark.parametrize("model", ISOLATED, ids=ISOLATED_IDS)
async def test_rows_cannot_be_written_into_another_tenant(db: Db, world: World, model) -> None:
    own = await values_in(db, world.tenant_b, model)
    await accepted(db, world.admin_b, lambda session: _add(session, model(**own)))

    # Values of a complete row of A (its parents are A's): only the data layer stands in the way.
    foreign = await values_in(db, world.tenant_a, model)
    key = inspect(model).get_property_by_column(model.__table__.c[TENANT_COLUMN]).key
    assert foreign[key] == world.tenant_a.id
    error = await refused(db, world.admin_b, lambda session: _add(session, model(**foreign)))
    assert isinstance(error, TenancyViolation), f"refused by the database only: {error!r}"

    # The same through a bulk INSERT statement, which no flush sees.
    bulk = {**foreign, "id": uuid.uuid4()}
    error = await refused(db, world.admin_b, lambda session: session.execute(insert(model).values(**bulk)))
    assert isinstance(error, TenancyViolation), f"refused by the database only: {error!r}"
    assert await read(db, model, bulk["id"]) is None


@pytest.mark.parametrize("model", [m for m in ISOLATED if tenant_scoped(m)], ids=lambda m: m.__tablename__)
async def test_own_rows_cannot_move_to_another_tenant(db: Db, world: World, model) -> None:
    row = await build_in(db, world.tenant_b, model)
    before = await read(db, model, row.id)
    key = inspect(model).get_property_by_column(model.__table__.c[TENANT_COLUMN]).key

    async def move(session) -> None:
        mine = await by_id(session, model, row.id)
        setattr(mine, key, world.tenant_a.id)

    error = await refused(db, world.admin_b, move)
    assert isinstance(error, TenancyViolation), repr(error)
    error = await refused(
        db,
        world.admin_b,
        lambda session: session.execute(
            update(model).where(model.id == row.id).values({key: world.tenant_a.id}),
            execution_options={"synchronize_session": False},
        ),
    )
    assert await read(db, model, row.id) == before


@pytest.mark.parametrize(("target", "source", "column"), REFERENCES, ids=REFERENCE_IDS)
async def test_rows_cannot_refer_to_another_tenants_row(db: Db, world: World, target, source, column) -> None:
    foreign = await build_in(db, world.tenant_a, target)
    foreign_before = await read(db, target, foreign.id)
    key = inspect(source).get_property_by_column(column).key

    # Control: the row, as built in B (referring to B's rows), is accepted.
    own = await values_in(
        db, world.tenant_b, source, **{key: (await build_in(db, world.tenant_b, target)).id}
    )
    await accepted(db, world.admin_b, lambda session: _add(session, source(**own)))

    # A new row of B referring to A's row.
    await refused(db, world.admin_b, lambda session: _add(session, source(**{**own, key: foreign.id})))

    # An existing row of B changed to refer to A's row.
    mine = await build_in(db, world.tenant_b, source, **{k: v for k, v in own.items() if k != "id"})
    mine_before = await read(db, source, mine.id)

    async def repoint(session) -> None:
        loaded = await by_id(session, source, mine.id)
        assert loaded is not None
        setattr(loaded, key, foreign.id)

    await refused(db, world.admin_b, repoint)
    await refused(
        db,
        world.admin_b,
        lambda session: session.execute(
            update(source).where(source.id == mine.id).values({key: foreign.id}),
            execution_options={"synchronize_session": False},
        ),
    )

    async with system_session(db.url) as session:
        pointing = (await session.execute(select(source.id).where(getattr(source, key) == foreign.id))).all()
    assert pointing == []
    assert await read(db, source, mine.id) == mine_before
    assert await read(db, target, foreign.id) == foreign_before


async def _add(session, row) -> None:
    session.add(row)


async def test_another_tenant_itself_is_invisible(db: Db, world: World) -> None:
    async with db.acting(world.admin_b) as session:
        assert await session.get(Tenant, world.tenant_a.id) is None
        assert world.tenant_a.id not in set((await session.execute(select(Tenant.id))).scalars())
        assert await session.get(Tenant, world.tenant_b.id) is not None
