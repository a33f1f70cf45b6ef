"""The session lookup of every request on PostgreSQL, mobility_session_scope (migration 0011), against
the statement it writes out in SQL (auth.authentication._facts_statement, used on SQLite and for logins):
the same facts for every kind of session, and the transaction's row-level-security settings set to
the session's tenant and user (or cleared when there is no such session)."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest

from mobility.auth.authentication import FACTS_BY_TOKEN, SessionFacts
from mobility.auth.credentials import hash_token
from mobility.auth.models import Session
from mobility.authz.permissions import SystemRole
from mobility.core.db import driver_connection
from mobility.core.models import utcnow
from mobility.core.scope import Scope, apply_to_database
from mobility.roles.models import Role
from mobility.settings import service as settings_service
from mobility.settings.models import Setting
from tests.support.factories import make_agent, make_broker, make_candidate, make_tenant, make_user, unique
from tests.support.sessions import Db, system_session

pytestmark = pytest.mark.postgres_only

KEY = settings_service.REQUIRE_TWO_FACTOR.key
SETTINGS = (
    "SELECT current_setting('mobility.tenant_id', true), current_setting('mobility.actor_id', true),"
    " current_setting('mobility.system', true)"
)


async def test_the_function_and_the_statement_agree(db: Db) -> None:
    now = utcnow()
    tokens = {}
    async with system_session(db.url) as session:
        home, other = await make_tenant(session), await make_tenant(session)
        session.add(Setting(tenant_id=home.id, key=KEY, value=True))
        custom = Role(
            name=unique("Coordinator "), tenant_id=home.id, system_role=False, permissions=["users:read"]
        )
        session.add(custom)
        await session.flush()
        people = {
            "admin": await make_user(session, home, SystemRole.admin),
            "custom role": await make_user(session, home, custom),
            "candidate": await make_user(session, home, SystemRole.candidate),
            "agent": await make_user(session, home, SystemRole.agent),
            "broker": await make_user(session, home, SystemRole.broker),
            "system admin": await make_user(session, None, SystemRole.system_admin),
            "suspended": await make_user(session, home, SystemRole.trainer, status="suspended"),
        }
        await make_candidate(session, home, user_id=people["candidate"].id)
        await make_agent(session, home, people["agent"].user)
        await make_broker(session, home, people["broker"].user)
        for name, member in people.items():
            tokens[name] = secrets.token_urlsafe(32)
            session.add(
                Session(
                    user_id=member.id,
                    tenant_id=other.id if name == "system admin" else home.id,
                    token=hash_token(tokens[name]),
                    expires_at=now + timedelta(hours=1),
                    last_seen_at=now,
                    revoked_at=now if name == "suspended" else None,
                    created_at=now,
                )
            )
    seen = {}
    for name, token in tokens.items():
        async with db.acting(Scope.for_system()) as session:
            expected = SessionFacts(
                **await FACTS_BY_TOKEN.one(session, token_hash=hash_token(token), two_factor_key=KEY)
            )
        async with db.unscoped() as session:
            connection = await driver_connection(session)
            record = await connection.fetchrow(
                "SELECT * FROM mobility_session_scope($1, $2)", hash_token(token), KEY
            )
            settings = tuple(await connection.fetchrow(SETTINGS))
        found = seen[name] = SessionFacts._make(record.values())
        assert found._replace(expires_at=None, created_at=None) == expected._replace(
            expires_at=None, created_at=None
        ), name
        assert found.expires_at.replace(tzinfo=None) == expected.expires_at.replace(tzinfo=None)
        assert settings == (str(found.tenant_id), str(found.user_id), "off"), name
    # The linked records and the tenant's setting did come through (not all None by accident).
    assert seen["system admin"].global_role_name == SystemRole.system_admin
    assert seen["candidate"].candidate_id is not None and seen["broker"].broker_id is not None
    assert seen["custom role"].role_permissions == ["users:read"]
    async with db.unscoped() as session:
        connection = await driver_connection(session)
        await apply_to_database(session, Scope.for_system())
        record = await connection.fetchrow(
            "SELECT * FROM mobility_session_scope($1, $2)", hash_token(tokens["agent"]), KEY
        )
        agent = SessionFacts._make(record.values())
        assert agent.agent_id is not None and agent.require_two_factor is True and agent.role_name == "Agent"
        assert (
            await connection.fetchrow("SELECT * FROM mobility_session_scope($1, $2)", "no such hash", KEY)
            is None
        )
        assert tuple(await connection.fetchrow(SETTINGS)) == ("", "", "off")
