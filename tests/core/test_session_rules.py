"""Who sees whose login sessions at the data layer (Admins end members' sessions when suspending)."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mobility.auth.models import Session
from mobility.authz.permissions import SystemRole
from tests.support.factories import add_membership, make_tenant, make_user, unique
from tests.support.sessions import Db, scope_of, system_session

# On PostgreSQL also as a role that bypasses row-level security: the application's filters alone.
pytestmark = pytest.mark.each_wall_alone


async def test_an_admin_sees_members_sessions_in_their_tenant_only(db: Db) -> None:
    now = datetime.now(UTC)
    async with system_session(db.url) as session:
        tenant_a, tenant_b = await make_tenant(session), await make_tenant(session)
        admin_a = await make_user(session, tenant_a, SystemRole.admin)
        shared = await make_user(session, tenant_a, SystemRole.trainer)
        await add_membership(session, shared, tenant_b, SystemRole.trainer)
        outsider = await make_user(session, tenant_b, SystemRole.trainer)
        rows = {}
        for name, user, tenant in (
            ("shared in A", shared, tenant_a),
            ("shared in B", shared, tenant_b),
            ("outsider in B", outsider, tenant_b),
            ("admin in A", admin_a, tenant_a),
        ):
            row = Session(
                user_id=user.id, tenant_id=tenant.id, token=unique("t"), expires_at=now + timedelta(hours=1)
            )
            session.add(row)
            rows[name] = row
        await session.flush()
        ids = {name: row.id for name, row in rows.items()}

    def visible(found) -> set[str]:
        return {name for name, row_id in ids.items() if row_id in found}

    async with db.acting(scope_of(tenant_a.id, admin_a.id, SystemRole.admin)) as session:
        seen = set((await session.execute(select(Session.id).where(Session.id.in_(ids.values())))).scalars())
    assert visible(seen) == {"shared in A", "admin in A"}

    async with db.acting(scope_of(tenant_a.id, shared.id, SystemRole.trainer)) as session:
        seen = set((await session.execute(select(Session.id).where(Session.id.in_(ids.values())))).scalars())
    assert visible(seen) == {"shared in A", "shared in B"}  # one's own, wherever
