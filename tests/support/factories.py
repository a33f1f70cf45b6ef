"""Test data, made through the real data layer: pass a session of `system_session(url)`
(tests/support/sessions.py).

Each call makes new rows with unique codes and e-mails, so tests sharing a database never collide.
Passwords are generated per run (never a fixed secret).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.agents.models import Agent, Broker
from mobility.authz.permissions import SystemRole
from mobility.candidates.models import Candidate, CandidateDocument, DocumentType
from mobility.core import security
from mobility.core.models import utcnow
from mobility.core.scope import Scope
from mobility.finance.models import (
    Invoice,
    PartyType,
    Payment,
    PaymentDirection,
    PaymentMethod,
)
from mobility.placements.models import Placement
from mobility.roles.models import Role
from mobility.tenants.models import Tenant
from mobility.training.models import (
    Assessment,
    AssessmentType,
    AttendanceRecord,
    AttendanceStatus,
    Certificate,
    Course,
    Enrollment,
)
from mobility.users.models import User, UserInvitation, UserTenant
from mobility.vetting.models import VettingCheckType, VettingRecord
from tests.support.sessions import scope_of

PASSWORD = secrets.token_urlsafe(12)
# Hashing with the real parameters costs ~50 ms; one hash serves every test user of the run.
_PASSWORD_HASH: str | None = None


def password_hash() -> str:
    global _PASSWORD_HASH
    if _PASSWORD_HASH is None:
        _PASSWORD_HASH = security.hash_password(PASSWORD)
    return _PASSWORD_HASH


def unique(prefix: str = "") -> str:
    return f"{prefix}{secrets.token_hex(4)}"


async def system_role(session: AsyncSession, role: SystemRole) -> Role:
    found = (
        await session.execute(select(Role).where(Role.name == role.value, Role.tenant_id.is_(None)))
    ).scalar_one_or_none()
    if found is None:
        found = Role(name=role.value, system_role=True, description=role.value)
        session.add(found)
        await session.flush()
    return found


async def make_tenant(session: AsyncSession, **values) -> Tenant:
    code = values.pop("code", None) or unique("T").upper()
    tenant = Tenant(code=code, name=values.pop("name", None) or f"Tenant {code}", **values)
    session.add(tenant)
    await session.flush()
    return tenant


@dataclass
class Member:
    user: User
    tenant: Tenant
    role: Role
    email: str
    password: str = PASSWORD

    @property
    def id(self) -> uuid.UUID:
        return self.user.id

    def scope(self, tenant: Tenant | None = None) -> Scope:
        """The scope authentication binds for this member acting in `tenant` (by default their own): a
        system role's permissions from the matrix, a custom role's its own."""
        tenant = tenant or self.tenant
        if self.role.system_role:
            return scope_of(tenant.id, self.id, SystemRole(self.role.name))
        return Scope(
            tenant_id=tenant.id,
            actor_id=self.id,
            role=self.role.name,
            permissions=frozenset(self.role.permissions),
        )


async def make_user(
    session: AsyncSession,
    tenant: Tenant | None,
    role: SystemRole | Role = SystemRole.admin,
    *,
    status: str = "active",
    email: str | None = None,
    primary: bool = True,
) -> Member:
    """A user with a membership in `tenant` holding `role` (System Admin: the global role, no membership)."""
    email = email or f"{unique('user-')}@example.org"
    role_row = role if isinstance(role, Role) else await system_role(session, role)
    is_system_admin = role == SystemRole.system_admin
    user = User(
        email=email,
        name=email.split("@")[0],
        password_hash=password_hash(),
        status=status,
        tenant_id=tenant.id if tenant else None,
        role_id=role_row.id if is_system_admin else None,
    )
    session.add(user)
    await session.flush()
    if tenant is not None and not is_system_admin:
        session.add(UserTenant(user_id=user.id, tenant_id=tenant.id, role_id=role_row.id, is_primary=primary))
        await session.flush()
    return Member(user=user, tenant=tenant, role=role_row, email=email)


async def add_membership(session: AsyncSession, member: Member, tenant: Tenant, role: SystemRole) -> None:
    role_row = await system_role(session, role)
    session.add(
        UserTenant(user_id=member.user.id, tenant_id=tenant.id, role_id=role_row.id, is_primary=False)
    )
    await session.flush()


async def make_invitation(
    session: AsyncSession,
    tenant: Tenant,
    member: Member,
    role: SystemRole | None = SystemRole.trainer,
    *,
    expires_in: timedelta = timedelta(days=1),
    **values,
) -> UserInvitation:
    """An invitation of `member`'s account to `tenant` offering `role`, not answered, expiring in
    `expires_in` (already expired when negative)."""
    invitation = UserInvitation(
        tenant_id=tenant.id,
        user_id=member.id,
        role_id=(await system_role(session, role)).id if role else None,
        email=values.pop("email", member.email),
        name=values.pop("name", "Invited"),
        expires_at=utcnow() + expires_in,
        **values,
    )
    session.add(invitation)
    await session.flush()
    return invitation


async def _make_partner(session: AsyncSession, model, tenant: Tenant, user: User | None, **values):
    """An active partner with a licence on record (no expiry): one that may register candidates."""
    values.setdefault("licence_number", unique("LIC-"))
    partner = model(
        tenant_id=tenant.id,
        code=unique("AG" if model is Agent else "BR"),
        name=model.__name__,
        user_id=user.id if user else None,
        **values,
    )
    session.add(partner)
    await session.flush()
    return partner


async def make_agent(session: AsyncSession, tenant: Tenant, user: User | None = None, **values) -> Agent:
    return await _make_partner(session, Agent, tenant, user, **values)


async def make_broker(session: AsyncSession, tenant: Tenant, user: User | None = None, **values) -> Broker:
    return await _make_partner(session, Broker, tenant, user, **values)


async def make_candidate(session: AsyncSession, tenant: Tenant, **values) -> Candidate:
    candidate = Candidate(
        tenant_id=tenant.id,
        reference_number=unique("C-"),
        first_name=values.pop("first_name", "Sera"),
        last_name=values.pop("last_name", "Tuilagi"),
        **values,
    )
    session.add(candidate)
    await session.flush()
    return candidate


async def make_course(session: AsyncSession, tenant: Tenant, **values) -> Course:
    course = Course(tenant_id=tenant.id, code=unique("CRS"), title=values.pop("title", "Aged care"), **values)
    session.add(course)
    await session.flush()
    return course


async def make_enrollment(session: AsyncSession, course: Course, candidate: Candidate) -> Enrollment:
    enrollment = Enrollment(tenant_id=course.tenant_id, course_id=course.id, candidate_id=candidate.id)
    session.add(enrollment)
    await session.flush()
    return enrollment


async def _added(session: AsyncSession, row):
    session.add(row)
    await session.flush()
    return row


async def make_document(session: AsyncSession, candidate: Candidate, **values) -> CandidateDocument:
    """A document row (no stored file: the row is what refers to the candidate)."""
    digest = secrets.token_hex(32)
    return await _added(
        session,
        CandidateDocument(
            tenant_id=candidate.tenant_id,
            candidate_id=candidate.id,
            type=values.pop("type", DocumentType.passport),
            file_name=values.pop("file_name", "passport.pdf"),
            content_type="application/pdf",
            size_bytes=1024,
            sha256=digest,
            storage_key=f"{candidate.tenant_id}/sha256/{digest[:2]}/{digest}",
            **values,
        ),
    )


async def make_attendance(session: AsyncSession, enrollment: Enrollment, **values) -> AttendanceRecord:
    return await _added(
        session,
        AttendanceRecord(
            tenant_id=enrollment.tenant_id,
            enrollment_id=enrollment.id,
            session_date=values.pop("session_date", date(2026, 3, 2)),
            status=values.pop("status", AttendanceStatus.present),
            **values,
        ),
    )


async def make_assessment(session: AsyncSession, enrollment: Enrollment, **values) -> Assessment:
    return await _added(
        session,
        Assessment(
            tenant_id=enrollment.tenant_id,
            enrollment_id=enrollment.id,
            title=values.pop("title", "Final"),
            type=values.pop("type", AssessmentType.final),
            score=values.pop("score", Decimal("80")),
            max_score=values.pop("max_score", Decimal("100")),
            passed=values.pop("passed", True),
            **values,
        ),
    )


async def make_certificate(session: AsyncSession, enrollment: Enrollment, **values) -> Certificate:
    return await _added(
        session,
        Certificate(
            tenant_id=enrollment.tenant_id,
            enrollment_id=enrollment.id,
            certificate_number=values.pop("certificate_number", unique("CERT-")),
            verification_code=values.pop("verification_code", secrets.token_urlsafe(24)),
            issued_at=values.pop("issued_at", utcnow()),
            **values,
        ),
    )


async def make_vetting_record(session: AsyncSession, candidate: Candidate, **values) -> VettingRecord:
    return await _added(
        session,
        VettingRecord(
            tenant_id=candidate.tenant_id,
            candidate_id=candidate.id,
            check_type=values.pop("check_type", VettingCheckType.identity),
            **values,
        ),
    )


async def make_placement(session: AsyncSession, candidate: Candidate, **values) -> Placement:
    return await _added(
        session,
        Placement(
            tenant_id=candidate.tenant_id,
            candidate_id=candidate.id,
            employer_name=values.pop("employer_name", "Orchard Co"),
            country=values.pop("country", "AU"),
            position=values.pop("position", "Fruit picker"),
            **values,
        ),
    )


async def make_payment(session: AsyncSession, candidate: Candidate, **values) -> Payment:
    return await _added(
        session,
        Payment(
            tenant_id=candidate.tenant_id,
            candidate_id=candidate.id,
            direction=values.pop("direction", PaymentDirection.incoming),
            party_type=values.pop("party_type", PartyType.candidate),
            amount=values.pop("amount", Decimal("150.00")),
            currency=values.pop("currency", "FJD"),
            method=values.pop("method", PaymentMethod.cash),
            **values,
        ),
    )


async def make_invoice(session: AsyncSession, candidate: Candidate, **values) -> Invoice:
    return await _added(
        session,
        Invoice(
            tenant_id=candidate.tenant_id,
            candidate_id=candidate.id,
            bill_to_type=values.pop("bill_to_type", PartyType.candidate),
            bill_to_name=values.pop("bill_to_name", f"{candidate.first_name} {candidate.last_name}"),
            currency=values.pop("currency", "FJD"),
            **values,
        ),
    )
