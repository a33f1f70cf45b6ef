"""The tables whose tenantId is not simply "the tenant the row belongs to": users, roles, user_tenants,
sessions, and the trail of changes without a tenant (system_audit_logs; in audit_logs before 0015).
Their policies follow the data layer's row rules (mobility.authz.rules)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from psycopg import errors

from mobility.audit.models import AuditLog, SystemAuditLog
from mobility.auth.models import Session
from mobility.authz.permissions import SystemRole
from mobility.core.models import new_id, utcnow
from mobility.roles.models import Role
from mobility.users.models import UserTenant
from tests.factories import make_user, system_role, system_session, unique
from tests.rls.conftest import TwoTenants, app_sql

pytestmark = pytest.mark.postgres_only


async def _member_of_both(tenants: TwoTenants, *, role_in_b: Role | None = None):
    """A user of tenant A (primary) who also holds a role in tenant B, with a session in each."""
    async with system_session(tenants.url) as session:
        member = await make_user(session, tenants.a, SystemRole.recruiter)
        role = role_in_b or await system_role(session, SystemRole.trainer)
        session.add(UserTenant(user_id=member.id, tenant_id=tenants.b.id, role_id=role.id, is_primary=False))
        sessions = {}
        for tenant in (tenants.a, tenants.b):
            row = Session(
                user_id=member.id,
                tenant_id=tenant.id,
                token=uuid.uuid4().hex,
                expires_at=utcnow() + timedelta(hours=1),
            )
            session.add(row)
            await session.flush()
            sessions[tenant.id] = row.id
    return member, sessions


async def test_users_are_seen_as_oneself_or_as_members(own_tenants: TwoTenants) -> None:
    a, b = own_tenants.a.id, own_tenants.b.id
    member_of_a, member_of_b = own_tenants.members[a].id, own_tenants.members[b].id
    both, _ = await _member_of_both(own_tenants)
    with app_sql(own_tenants.url, tenant=a, actor=member_of_b) as db:
        seen = {
            row[0]
            for row in db.all(
                "SELECT id FROM users WHERE id = ANY(%s)", ([member_of_a, member_of_b, both.id],)
            )
        }
    # Acting in A as B's member (as nobody could, but the policy does not rely on it): oneself, and A's.
    assert seen == {member_of_a, member_of_b, both.id}
    with app_sql(own_tenants.url, tenant=b) as db:
        seen = {
            row[0] for row in db.all("SELECT id FROM users WHERE id = ANY(%s)", ([member_of_a, both.id],))
        }
    assert seen == {both.id}, "a member of two tenants is visible from both, another tenant's user is not"


async def test_an_invitation_writes_the_user_before_the_membership(own_tenants: TwoTenants) -> None:
    a, b = own_tenants.a.id, own_tenants.b.id
    async with system_session(own_tenants.url) as session:
        role = (await system_role(session, SystemRole.recruiter)).id
    insert_user = 'INSERT INTO users (id, email, "tenantId", "updatedAt") VALUES (%s, %s, %s, now())'
    insert_membership = (
        'INSERT INTO user_tenants (id, "userId", "tenantId", "roleId", "updatedAt")'
        " VALUES (%s, %s, %s, %s, now())"
    )
    with app_sql(own_tenants.url, tenant=a, actor=own_tenants.members[a].id) as db:
        invited = new_id()
        assert db.rowcount(insert_user, (invited, f"{unique()}@example.org", a)) == 1
        assert db.rowcount(insert_membership, (new_id(), invited, a, role)) == 1
        assert db.all("SELECT id FROM users WHERE id = %s", (invited,)) == [(invited,)]
        # Neither the user nor the membership can be written into another tenant.
        error = db.refused(insert_user, (new_id(), f"{unique()}@example.org", b))
        assert isinstance(error, errors.InsufficientPrivilege)
        error = db.refused(insert_membership, (new_id(), invited, b, role))
        assert isinstance(error, errors.InsufficientPrivilege)


async def test_roles_global_own_and_held_elsewhere(own_tenants: TwoTenants) -> None:
    a, b = own_tenants.a.id, own_tenants.b.id
    async with system_session(own_tenants.url) as session:
        custom_b = Role(name=unique("Custom "), tenant_id=b, system_role=False)
        session.add(custom_b)
        await session.flush()
        global_role = (await system_role(session, SystemRole.trainer)).id
    both, _ = await _member_of_both(own_tenants, role_in_b=custom_b)
    other_role_of_b = own_tenants.row("roles", own_tenants.b)
    with app_sql(own_tenants.url, tenant=a, actor=both.id) as db:
        seen = {
            row[0]
            for row in db.all(
                "SELECT id FROM roles WHERE id = ANY(%s)",
                ([global_role, custom_b.id, other_role_of_b, own_tenants.row("roles", own_tenants.a)],),
            )
        }
        # Global roles, A's own, and B's role the actor holds (listed by /me) - not B's others.
        assert seen == {global_role, custom_b.id, own_tenants.row("roles", own_tenants.a)}
        # Only the tenant's own roles can be written: not a global one, not one held elsewhere.
        for statement, params in [
            ("UPDATE roles SET description = 'x' WHERE id = %s", (global_role,)),
            ("UPDATE roles SET description = 'x' WHERE id = %s", (custom_b.id,)),
            ('INSERT INTO roles (id, name, "updatedAt") VALUES (%s, %s, now())', (new_id(), unique())),
        ]:
            error = db.refused(statement, params)
            assert isinstance(error, errors.InsufficientPrivilege), statement
        assert (
            db.rowcount(
                "UPDATE roles SET description = 'x' WHERE id = %s", (own_tenants.row("roles", own_tenants.a),)
            )
            == 1
        )


async def test_memberships_of_the_tenant_and_ones_own(own_tenants: TwoTenants) -> None:
    a, b = own_tenants.a.id, own_tenants.b.id
    both, _ = await _member_of_both(own_tenants)
    with app_sql(own_tenants.url, tenant=a, actor=both.id) as db:
        tenants_seen = {
            row[0] for row in db.all('SELECT "tenantId" FROM user_tenants WHERE "userId" = %s', (both.id,))
        }
        others_in_b = db.one(
            'SELECT count(*) FROM user_tenants WHERE "tenantId" = %s AND "userId" <> %s', (b, both.id)
        )
        # One's own membership in B may be read (for /me), not written.
        error = db.refused(
            'UPDATE user_tenants SET "isPrimary" = true WHERE "userId" = %s AND "tenantId" = %s', (both.id, b)
        )
    assert tenants_seen == {a, b}
    assert others_in_b == 0
    assert isinstance(error, errors.InsufficientPrivilege)


async def test_sessions_of_oneself_and_of_the_tenants_members(own_tenants: TwoTenants) -> None:
    a, b = own_tenants.a.id, own_tenants.b.id
    both, sessions = await _member_of_both(own_tenants)
    only_b = own_tenants.row("sessions", own_tenants.b)  # its user is a member of B alone
    # As the member (acting in A): both own sessions, whichever tenant they act in.
    with app_sql(own_tenants.url, tenant=a, actor=both.id) as db:
        seen = {
            row[0]
            for row in db.all("SELECT id FROM sessions WHERE id = ANY(%s)", ([*sessions.values(), only_b],))
        }
    assert seen == set(sessions.values())
    # As an admin of B: the member's sessions (ended when suspending them), not those of A's other users.
    with app_sql(own_tenants.url, tenant=b, actor=own_tenants.members[b].id) as db:
        seen = {
            row[0]
            for row in db.all(
                "SELECT id FROM sessions WHERE id = ANY(%s)",
                ([*sessions.values(), only_b, own_tenants.row("sessions", own_tenants.a)],),
            )
        }
        assert db.rowcount('UPDATE sessions SET "revokedAt" = now() WHERE "userId" = %s', (both.id,)) == 2
    assert seen == {*sessions.values(), only_b}


async def test_audit_rows_without_a_tenant_only_under_the_system_setting(own_tenants: TwoTenants) -> None:
    async with system_session(own_tenants.url) as session:
        row = SystemAuditLog(id=new_id(), action="system.probe", entity_type="probe")
        session.add(row)
    insert = 'INSERT INTO system_audit_logs (id, action, "entityType") VALUES (%s, %s, %s)'
    with app_sql(own_tenants.url, tenant=own_tenants.a.id) as db:
        assert db.all("SELECT id FROM system_audit_logs WHERE id = %s", (row.id,)) == []
        error = db.refused(insert, (new_id(), "x", "probe"))
        assert isinstance(error, errors.InsufficientPrivilege)
    with app_sql(own_tenants.url, system=True) as db:
        assert db.all("SELECT id FROM system_audit_logs WHERE id = %s", (row.id,)) == [(row.id,)]
        assert db.rowcount(insert, (new_id(), "x", "probe")) == 1
        # Append-only, like audit_logs, even under the system setting.
        for statement in ("UPDATE system_audit_logs SET action = 'x'", "DELETE FROM system_audit_logs"):
            assert isinstance(db.refused(statement), errors.InsufficientPrivilege)


async def test_the_tenants_trail_has_no_row_without_a_tenant(own_tenants: TwoTenants) -> None:
    """audit_logs is distributed by tenant (0015): a row without one is refused, even under the system
    setting; such changes go to system_audit_logs."""
    with app_sql(own_tenants.url, system=True) as db:
        error = db.refused(
            'INSERT INTO audit_logs (id, action, "entityType") VALUES (%s, %s, %s)', (new_id(), "x", "probe")
        )
    assert isinstance(error, errors.NotNullViolation)
    assert AuditLog.__table__.c.tenantId.nullable is False
