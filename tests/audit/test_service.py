"""The audit service, called directly: a tenant's trail, newest first, filtered by entity, actor, action
and a time window (`from` inclusive, `to` exclusive, `from` before `to`); another tenant's rows do not
exist for it (issue 3 item 6)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from mobility.audit import service
from mobility.audit.models import AuditLog
from mobility.core.errors import InvalidInput
from mobility.core.models import utcnow
from mobility.core.pagination import PageParams
from tests.support.admin_api import World, make_world
from tests.support.sessions import Db, system_session

EVERYTHING = PageParams(limit=100)


async def trail(db: Db, world: World) -> tuple[uuid.UUID, list[AuditLog]]:
    """Five rows about one entity in the world's tenant, an hour apart (oldest first; the last two by
    the trainer, as "x.delete"), and one about the same entity in the other tenant."""
    entity, start = uuid.uuid4(), utcnow() - timedelta(days=1)
    rows = [
        AuditLog(
            tenant_id=world.tenant.id,
            actor_id=world.admin.id if n < 3 else world.trainer.id,
            action="x.update" if n < 3 else "x.delete",
            entity_type="x",
            entity_id=entity,
            created_at=start + timedelta(hours=n),
        )
        for n in range(5)
    ]
    rows.append(
        AuditLog(
            tenant_id=world.other.id,
            actor_id=world.other_admin.id,
            action="x.update",
            entity_type="x",
            entity_id=entity,
            created_at=start,
        )
    )
    async with system_session(db.url) as session:
        session.add_all(rows)
    return entity, rows[:5]


async def test_newest_first_and_only_the_tenants_own(db: Db) -> None:
    world = await make_world(db.url)
    entity, rows = await trail(db, world)
    async with db.acting(world.admin.scope()) as session:
        found, _ = await service.list_audit_logs(session, params=EVERYTHING, entity_id=entity)
        ids = [row.id for row in found]
    async with db.acting(world.other_admin.scope()) as session:
        theirs, _ = await service.list_audit_logs(session, params=EVERYTHING, entity_id=entity)
        their_tenants = {row.tenant_id for row in theirs}
    assert ids == [row.id for row in reversed(rows)]
    assert their_tenants == {world.other.id}


async def test_filters_by_actor_and_action(db: Db) -> None:
    world = await make_world(db.url)
    entity, rows = await trail(db, world)
    async with db.acting(world.admin.scope()) as session:
        by_actor, _ = await service.list_audit_logs(
            session, params=EVERYTHING, entity_id=entity, actor_id=world.trainer.id
        )
        by_action, _ = await service.list_audit_logs(
            session, params=EVERYTHING, entity_id=entity, action="x.update"
        )
        found = ([row.id for row in by_actor], [row.id for row in by_action])
    assert found == ([rows[4].id, rows[3].id], [rows[2].id, rows[1].id, rows[0].id])


async def test_the_window_includes_from_and_excludes_to(db: Db) -> None:
    world = await make_world(db.url)
    entity, rows = await trail(db, world)
    async with db.acting(world.admin.scope()) as session:
        window, _ = await service.list_audit_logs(
            session, params=EVERYTHING, entity_id=entity, since=rows[1].created_at, until=rows[3].created_at
        )
        found = [row.id for row in window]
        for until in (rows[1].created_at, rows[0].created_at):
            with pytest.raises(InvalidInput) as refused:
                await service.list_audit_logs(
                    session, params=EVERYTHING, since=rows[1].created_at, until=until
                )
            assert refused.value.extra["field"] == "from"
    assert found == [rows[2].id, rows[1].id]
