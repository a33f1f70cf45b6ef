"""The data layer on keys a distributed database can route (0015, docs/scaling.md), on both databases.

- Tables distributed by tenant have the primary key (tenantId, id) while the ORM's identity stays
  `id`: `session.get(Model, id)` works, and the UPDATEs and DELETEs the unit of work writes name the
  row by both columns (the primary key's index; one shard under Citus).
- Global keys (core/global_keys.py): a certificate's verification code and an invitation's token are
  registered for the row's tenant in their key table in the same flush, before the row; a value that
  another tenant holds is refused by the database.
- The audit trail: a change with a tenant goes to audit_logs, one without to system_audit_logs.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, inspect, select
from sqlalchemy.exc import IntegrityError

from mobility.audit.models import AuditLog, SystemAuditLog
from mobility.authz.permissions import SystemRole
from mobility.core import audit, global_keys
from mobility.core.errors import Conflict
from mobility.core.models import new_id, utcnow
from mobility.roles.models import Role
from mobility.settings.models import Setting
from mobility.training.models import Certificate, CertificateCode
from mobility.users.models import InvitationToken, UserInvitation
from tests.core.scoped import Db, scope_of
from tests.factories import make_candidate, make_course, make_enrollment, make_tenant, make_user

pytestmark = pytest.mark.each_wall_alone


@contextmanager
def statements(db: Db) -> Iterator[list[str]]:
    """The SQL the API's engine sends meanwhile."""
    sent: list[str] = []

    def record(_connection, _cursor, statement, _parameters, _context, _many) -> None:
        sent.append(" ".join(statement.split()))

    engine = db.app_engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def _admin_of_a_new_tenant(db: Db):
    async with db.system() as session:
        tenant = await make_tenant(session)
        admin = await make_user(session, tenant, SystemRole.admin)
        invitee = await make_user(session, None, SystemRole.trainer)
    return tenant, scope_of(tenant.id, admin.id, SystemRole.admin), invitee.user


async def _enrollment_in(db: Db, tenant):
    async with db.system() as session:
        course = await make_course(session, tenant)
        candidate = await make_candidate(session, tenant)
        return await make_enrollment(session, course, candidate)


def _certificate(enrollment, code: str) -> Certificate:
    return Certificate(
        tenant_id=enrollment.tenant_id,
        enrollment_id=enrollment.id,
        certificate_number=secrets.token_hex(6),
        verification_code=code,
        issued_at=utcnow(),
    )


async def test_the_orm_identity_is_the_id_and_writes_name_the_tenant_too(db: Db) -> None:
    tenant, admin, _ = await _admin_of_a_new_tenant(db)
    async with db.system() as session:
        setting = Setting(tenant_id=tenant.id, key=f"probe.{secrets.token_hex(3)}", value={"n": 1})
        session.add(setting)
    table = Setting.__table__
    assert [column.name for column in table.primary_key.columns] == ["tenantId", "id"]
    async with db.acting(admin) as session:
        mine = await session.get(Setting, setting.id)
        assert mine is not None and inspect(mine).identity == (setting.id,)
        with statements(db) as sent:
            mine.value = {"n": 2}
            await session.flush()
            await session.delete(mine)
            await session.flush()
    update = next(s for s in sent if s.startswith("UPDATE settings "))
    delete = next(s for s in sent if s.startswith("DELETE FROM settings "))
    for statement in (update, delete):
        where = statement.split(" WHERE ", 1)[1]
        assert 'settings."tenantId" = ' in where and "settings.id = " in where, statement


async def test_a_new_invitation_registers_its_token_for_its_tenant(db: Db) -> None:
    tenant, admin, invitee = await _admin_of_a_new_tenant(db)
    token_hash = secrets.token_hex(32)
    async with db.acting(admin) as session:
        # No tenant given: the data layer stamps the scope's before the token is registered.
        session.add(
            UserInvitation(user_id=invitee.id, token_hash=token_hash, expires_at=utcnow() + timedelta(days=1))
        )
        await session.flush()
        registered = (
            await session.execute(select(InvitationToken).where(InvitationToken.token_hash == token_hash))
        ).scalar_one()
        assert registered.tenant_id == tenant.id


async def test_a_new_token_is_registered_and_the_old_one_kept(db: Db) -> None:
    tenant, admin, invitee = await _admin_of_a_new_tenant(db)
    first, second = secrets.token_hex(32), secrets.token_hex(32)
    async with db.system() as session:
        invitation = UserInvitation(
            tenant_id=tenant.id, user_id=invitee.id, token_hash=first, expires_at=utcnow() + timedelta(days=1)
        )
        session.add(invitation)
    async with db.acting(admin) as session:
        mine = await session.get(UserInvitation, invitation.id)
        mine.token_hash = second
        await session.flush()
        held = set(
            (
                await session.execute(
                    select(InvitationToken.token_hash).where(InvitationToken.tenant_id == tenant.id)
                )
            ).scalars()
        )
    assert {first, second} <= held


async def test_a_certificate_registers_its_code_and_a_code_of_another_tenant_is_refused(db: Db) -> None:
    tenant_a, admin_a, _ = await _admin_of_a_new_tenant(db)
    tenant_b, admin_b, _ = await _admin_of_a_new_tenant(db)
    in_a, in_b = await _enrollment_in(db, tenant_a), await _enrollment_in(db, tenant_b)
    code = secrets.token_urlsafe(24)
    async with db.acting(admin_a) as session:
        session.add(_certificate(in_a, code))
        await session.flush()
        registered = (
            await session.execute(select(CertificateCode).where(CertificateCode.verification_code == code))
        ).scalar_one()
        assert registered.tenant_id == tenant_a.id
    async with db.system() as session:
        session.add(_certificate(in_a, code))

    # The same code on a certificate of B: the code is A's, so the database refuses it (a 409).
    async with db.acting(admin_b) as session:
        session.add(_certificate(in_b, code))
        with pytest.raises(Conflict):
            await audit.flush_as(session, "certificate.issue", conflict="The verification code is taken.")
    # A second certificate of A with it: one code, one certificate.
    async with db.acting(admin_a) as session:
        session.add(_certificate(in_a, code))
        with pytest.raises(IntegrityError):
            await session.flush()
    # Another code is B's to take.
    async with db.acting(admin_b) as session:
        session.add(_certificate(in_b, secrets.token_urlsafe(24)))
        await session.flush()


async def test_a_change_without_a_tenant_is_in_the_installations_trail(db: Db) -> None:
    tenant, admin, _ = await _admin_of_a_new_tenant(db)
    async with db.system() as session:
        role = Role(id=new_id(), name=f"Global {secrets.token_hex(3)}", system_role=False)
        session.add(role)
        await audit.flush_as(session, "role.create", conflict="taken")
        setting = Setting(tenant_id=tenant.id, key=f"probe.{secrets.token_hex(3)}", value=1)
        session.add(setting)
        await audit.flush_as(session, "setting.create", conflict="taken")
    async with db.system() as session:
        installation = (
            await session.execute(select(SystemAuditLog).where(SystemAuditLog.entity_id == role.id))
        ).scalar_one()
        assert (installation.action, installation.entity_type) == ("role.create", "roles")
        assert (await session.execute(select(AuditLog).where(AuditLog.entity_id == role.id))).first() is None
        in_tenant = (
            await session.execute(select(AuditLog).where(AuditLog.entity_id == setting.id))
        ).scalar_one()
        assert in_tenant.tenant_id == tenant.id
        assert (
            await session.execute(select(SystemAuditLog).where(SystemAuditLog.entity_id == setting.id))
        ).first() is None


def test_the_two_trails_have_the_same_columns_but_the_tenant() -> None:
    tenants = {column.name for column in AuditLog.__table__.columns}
    installation = {column.name for column in SystemAuditLog.__table__.columns}
    assert tenants - installation == {"tenantId"} and installation <= tenants


async def test_a_row_is_found_by_its_global_key_in_its_tenant_only(db: Db) -> None:
    tenant_a, _, _ = await _admin_of_a_new_tenant(db)
    _, admin_b, _ = await _admin_of_a_new_tenant(db)
    enrollment = await _enrollment_in(db, tenant_a)
    code = secrets.token_urlsafe(24)
    async with db.system() as session:
        session.add(_certificate(enrollment, code))
    async with db.system() as session:
        found = await global_keys.find(session, Certificate, "verification_code", code)
        assert found is not None and (found.tenant_id, found.verification_code) == (tenant_a.id, code)
        assert await global_keys.find(session, Certificate, "verification_code", code + "x") is None
    # Another tenant's scope: its row rules hide the key and the certificate alike.
    async with db.acting(admin_b) as session:
        assert await global_keys.find(session, Certificate, "verification_code", code) is None
