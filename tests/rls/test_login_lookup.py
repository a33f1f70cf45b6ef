"""A login finds its user by index as the app role, under row-level security (migration 0012).

With `lower(email)` (0010 alone) PostgreSQL could not use the index before the policies' conditions
(lower() is not LEAKPROOF): every login read the whole users table. Sequential scans are switched off
here, so the plan shows whether the index can be used at all, however small the test's table.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from mobility.core.scope import Scope, apply_to_database
from mobility.users.models import EMAIL_INDEX, user_by_email
from tests.support.sessions import Db

pytestmark = pytest.mark.postgres_only


async def test_the_login_lookup_uses_the_email_index_under_row_level_security(db: Db) -> None:
    statement = user_by_email("someone@example.org")
    async with db.acting(Scope.for_system()) as session:
        await apply_to_database(session, Scope.for_system())
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        compiled = statement.compile(dialect=session.bind.dialect, compile_kwargs={"literal_binds": True})
        plan = "\n".join((await session.execute(text(f"EXPLAIN {compiled}"))).scalars())
        user = (await session.execute(text("SELECT current_user"))).scalar()
    assert user == "mobility_app"
    assert EMAIL_INDEX in plan, plan
