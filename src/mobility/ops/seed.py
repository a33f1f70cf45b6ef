"""Seed data (the spec's "Seeding Plan"): the WTI tenant, the seven system roles, an admin user, and one
linked set of sample records that walks the workflow (agent and broker -> candidate -> course and
enrollment -> vetting -> placement -> payment).

Idempotent: every row is looked up by its natural key first (tenant code, role name, user email,
partner and course codes, candidate reference number, ...) and created only when missing; rows that
exist are left as they are (an admin's password is never reset). Like every service it only flushes:
the caller owns the one transaction. It works across tenants, so it binds the system scope (acting as
the admin once that user exists); the audit trail records every row it creates, as for any write.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.agents.models import Agent, Broker
from mobility.candidates.models import Candidate, CandidateStatus, Gender
from mobility.core.errors import InvalidInput
from mobility.core.scope import Scope, apply_to_database
from mobility.core.security import check_password_strength, hash_password
from mobility.finance.models import PartyType, Payment, PaymentDirection, PaymentMethod, PaymentStatus
from mobility.placements.models import Placement, PlacementStatus
from mobility.roles.models import Role
from mobility.tenants.models import Tenant
from mobility.training.models import Course, CourseStatus, Enrollment, EnrollmentStatus
from mobility.users.models import User, UserTenant, user_by_email
from mobility.vetting.models import VettingCheckType, VettingRecord, VettingStatus

ModelT = TypeVar("ModelT")

TENANT_CODE = "WTI"
TENANT_NAME = "Waterfront Training Institute"

# The roles of the SRS, global (tenantId NULL) and marked as built in.
SYSTEM_ROLES: tuple[tuple[str, str], ...] = (
    ("System Admin", "Administers the whole installation, every tenant"),
    ("Admin", "Administers one tenant"),
    ("Trainer", "Teaches courses; records attendance and assessments"),
    ("Candidate", "A worker in training or placement; sees their own record"),
    ("Agent", "Partner who brings in candidates; sees the candidates they brought"),
    ("Broker", "Partner who places candidates; sees the candidates and placements linked to them"),
    ("Recruiter", "Matches trained, vetted candidates with employers"),
)

SAMPLE_TRAINER_EMAIL = "trainer@wti.example"
SAMPLE_AGENT_CODE = "AGT-001"
SAMPLE_BROKER_CODE = "BRK-001"
SAMPLE_COURSE_CODE = "HORT-101"
SAMPLE_CANDIDATE_REFERENCE = "WTI-000001"
SAMPLE_EMPLOYER = "Sunraysia Orchards Pty Ltd"
SAMPLE_PAYMENT_KEY = "seed:course-fee:WTI-000001:HORT-101"


class SeedError(Exception):
    """Existing data conflicts with the seed; the message is one line for the user."""


@dataclass
class SeedReport:
    admin_email: str
    # Only when the admin was created without a given password: shown once, never stored in clear.
    generated_password: str | None = None
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


def generate_password() -> str:
    """A random password (about 144 bits) for the seeded admin."""
    return secrets.token_urlsafe(18)


async def seed(session: AsyncSession, *, admin_email: str, admin_password: str | None = None) -> SeedReport:
    """Creates whatever of the seed is missing. Flushes only; the caller commits."""
    seeder = _Seeder(session, SeedReport(admin_email=admin_email.strip().lower()))
    await seeder.act_as(None)
    await seeder.run(admin_password)
    return seeder.report


class _Seeder:
    def __init__(self, session: AsyncSession, report: SeedReport) -> None:
        self.session = session
        self.report = report
        self.actor: uuid.UUID | None = None
        self.tenant: Tenant | None = None
        self.today = datetime.now(UTC).date()

    async def act_as(self, actor: uuid.UUID | None) -> None:
        """Work across tenants (system scope), recorded as done by `actor`."""
        self.actor = actor
        await apply_to_database(self.session, Scope.for_system(actor_id=actor))

    async def run(self, admin_password: str | None) -> None:
        tenant = await self.tenant_wti()
        roles = await self.system_roles()
        # The first user runs the installation: System Admin globally (manages tenants, acts in any), and
        # Admin of WTI, their primary tenant.
        admin = await self.admin_user(tenant, roles["System Admin"], admin_password)
        await self.act_as(admin.id)
        await self.membership(admin, tenant, roles["Admin"], primary=True)
        await self.sample_records(tenant, roles)

    # --- building blocks ---

    async def _find(self, model: type[ModelT], **where: Any) -> ModelT | None:
        return (await self.session.execute(select(model).filter_by(**where))).scalars().first()

    async def _ensure(self, label: str, model: type[ModelT], where: dict[str, Any], **values: Any) -> ModelT:
        """The row of `model` matching `where`, created with `values` when there is none."""
        found = await self._find(model, **where)
        if found is not None:
            self.report.existing.append(label)
            return found
        # Tenant-scoped rows get createdBy/updatedBy from the scope (the admin).
        row = model(**where, **values)
        self.session.add(row)
        await self.session.flush()
        self.report.created.append(label)
        return row

    def _at(self, day: date, hour: int = 9) -> datetime:
        return datetime.combine(day, time(hour), tzinfo=UTC)

    # --- tenant, roles, users ---

    async def tenant_wti(self) -> Tenant:
        by_name = await self._find(Tenant, name=TENANT_NAME)
        if by_name is not None and by_name.code != TENANT_CODE:
            raise SeedError(
                f"a tenant named {TENANT_NAME!r} exists with code {by_name.code!r}, not {TENANT_CODE!r}"
            )
        self.tenant = await self._ensure(
            f"tenant {TENANT_CODE}",
            Tenant,
            {"code": TENANT_CODE},
            name=TENANT_NAME,
            branding={"logoUrl": "https://wti.example/assets/logo.svg", "colorHex": "#0B5394"},
            contact_info={
                "email": "info@wti.example",
                "phone": "+679 330 0000",
                "website": "https://wti.example",
                "address": {"line1": "1 Waterfront Road", "city": "Suva", "country": "FJ"},
            },
        )
        return self.tenant

    async def system_roles(self) -> dict[str, Role]:
        roles: dict[str, Role] = {}
        for name, description in SYSTEM_ROLES:
            role = await self._find(Role, name=name)
            if role is None:
                role = await self._ensure(
                    f"role {name}", Role, {"name": name}, description=description, system_role=True
                )
            elif role.tenant_id is not None:
                raise SeedError(
                    f"role {name!r} exists as a custom role of a tenant; it must be a global system role"
                )
            elif not role.system_role:
                # A role of the legacy app with the same name: from now on the built-in one.
                role.system_role = True
                await self.session.flush()
                self.report.updated.append(f"role {name} (marked as system role)")
            else:
                self.report.existing.append(f"role {name}")
            roles[name] = role
        return roles

    async def _user_by_email(self, email: str) -> User | None:
        return (await self.session.execute(user_by_email(email.lower()))).scalars().first()

    async def admin_user(self, tenant: Tenant, role: Role, password: str | None) -> User:
        email = self.report.admin_email
        if not email or "@" not in email:
            raise SeedError(f"the admin e-mail {email!r} is not an e-mail address (MOBILITY_ADMIN_EMAIL)")
        user = await self._user_by_email(email)
        if user is not None:
            self.report.existing.append(f"admin user {email} (password unchanged)")
            return user
        if not password:
            password = self.report.generated_password = generate_password()
        else:  # the operator's choice: held to the rules every new password meets
            try:
                check_password_strength(password, email=email)
            except InvalidInput as exc:
                raise SeedError(f"MOBILITY_ADMIN_PASSWORD is refused: {exc.detail}") from None
        user = User(
            email=email,
            name="WTI Administrator",
            password_hash=hash_password(password),
            role_id=role.id,
            tenant_id=tenant.id,
            auth_provider="local",
            status="active",
        )
        self.session.add(user)
        await self.session.flush()
        # The first user is its own author.
        user.created_by = user.updated_by = user.id
        await self.session.flush()
        self.report.created.append(f"admin user {email}")
        return user

    async def membership(self, user: User, tenant: Tenant, role: Role, *, primary: bool) -> UserTenant:
        return await self._ensure(
            f"membership {user.email} in {tenant.code}",
            UserTenant,
            {"user_id": user.id, "tenant_id": tenant.id},
            role_id=role.id,
            is_primary=primary,
        )

    # --- linked sample records ---

    async def sample_records(self, tenant: Tenant, roles: dict[str, Role]) -> None:
        today, t = self.today, tenant.id
        trainer = await self._user_by_email(SAMPLE_TRAINER_EMAIL)
        if trainer is None:
            # No password: the trainer is invited and sets one through the normal flow.
            trainer = await self._ensure(
                f"trainer user {SAMPLE_TRAINER_EMAIL}",
                User,
                {"email": SAMPLE_TRAINER_EMAIL},
                name="Sample Trainer",
                role_id=roles["Trainer"].id,
                tenant_id=t,
                status="invited",
                created_by=self.actor,
                updated_by=self.actor,
            )
        else:
            self.report.existing.append(f"trainer user {SAMPLE_TRAINER_EMAIL}")
        await self.membership(trainer, tenant, roles["Trainer"], primary=True)

        agent = await self._ensure(
            f"agent {SAMPLE_AGENT_CODE}",
            Agent,
            {"tenant_id": t, "code": SAMPLE_AGENT_CODE},
            name="Pacific Horizons Recruitment",
            contact_name="Sample Agent Contact",
            email="agent@pacific-horizons.example",
            phone="+679 555 0100",
            country="FJ",
            licence_number="FJ-RA-2024-017",
            licence_expiry=today + timedelta(days=2 * 365),
            payment_terms={"type": "flat", "amount": "250.00", "currency": "AUD", "dueDays": 30},
        )
        broker = await self._ensure(
            f"broker {SAMPLE_BROKER_CODE}",
            Broker,
            {"tenant_id": t, "code": SAMPLE_BROKER_CODE},
            name="Southern Cross Labour Hire",
            contact_name="Sample Broker Contact",
            email="placements@southern-cross.example",
            phone="+61 3 5000 0100",
            country="AU",
            licence_number="AU-LH-88231",
            licence_expiry=today + timedelta(days=3 * 365),
            payment_terms={"type": "flat", "amount": "400.00", "currency": "AUD", "dueDays": 45},
        )
        course_start, course_end = today - timedelta(days=70), today - timedelta(days=14)
        course = await self._ensure(
            f"course {SAMPLE_COURSE_CODE}",
            Course,
            {"tenant_id": t, "code": SAMPLE_COURSE_CODE},
            title="Horticulture and Farm Safety",
            description="Pre-departure training for seasonal horticulture work: picking, packing, "
            "machinery and chemical safety, workplace rights.",
            location="WTI Suva campus",
            start_date=course_start,
            end_date=course_end,
            capacity=25,
            trainer_id=trainer.id,
            fee=Decimal("450.00"),
            currency="FJD",
            pass_mark=Decimal("60"),
            min_attendance_percent=Decimal("80"),
            certificate_validity_months=24,
            status=CourseStatus.completed,
        )
        candidate = await self._ensure(
            f"candidate {SAMPLE_CANDIDATE_REFERENCE}",
            Candidate,
            {"tenant_id": t, "reference_number": SAMPLE_CANDIDATE_REFERENCE},
            first_name="Litia",
            last_name="Naivalu",
            date_of_birth=date(1998, 4, 12),
            gender=Gender.female,
            nationality="FJ",
            passport_number="FJ1234567",
            passport_expiry=today + timedelta(days=5 * 365),
            email="litia.naivalu@example.com",
            phone="+679 555 0101",
            address={"line1": "12 Ratu Mara Road", "city": "Nausori", "country": "FJ"},
            emergency_contact={"name": "Seini Naivalu", "relationship": "mother", "phone": "+679 555 0102"},
            skills=["fruit picking", "packing", "tractor operation"],
            languages=["English", "Fijian"],
            education=[{"level": "secondary", "institution": "Nausori High School", "completed": 2016}],
            work_history=[{"employer": "Local farm cooperative", "role": "farm hand", "years": 3}],
            status=CandidateStatus.placed,
            agent_id=agent.id,
            broker_id=broker.id,
        )
        await self._ensure(
            f"enrollment {SAMPLE_CANDIDATE_REFERENCE} in {SAMPLE_COURSE_CODE}",
            Enrollment,
            {"tenant_id": t, "course_id": course.id, "candidate_id": candidate.id},
            status=EnrollmentStatus.completed,
            enrolled_at=self._at(course_start - timedelta(days=7)),
            completed_at=self._at(course_end, 16),
        )
        await self._ensure(
            f"vetting {SAMPLE_CANDIDATE_REFERENCE} police clearance",
            VettingRecord,
            {"tenant_id": t, "candidate_id": candidate.id, "check_type": VettingCheckType.police_clearance},
            status=VettingStatus.cleared,
            reviewer_id=self.actor,
            requested_at=self._at(course_end - timedelta(days=20)),
            completed_at=self._at(course_end - timedelta(days=5)),
            expires_at=self._at(course_end + timedelta(days=365)),
            result={
                "reference": "FPF-CLR-0042",
                "outcome": "no record found",
                "issuedBy": "Fiji Police Force",
            },
        )
        contract_start = today + timedelta(days=30)
        await self._ensure(
            f"placement {SAMPLE_CANDIDATE_REFERENCE} with {SAMPLE_EMPLOYER}",
            Placement,
            {"tenant_id": t, "candidate_id": candidate.id, "employer_name": SAMPLE_EMPLOYER},
            employer_contact={"name": "Farm Manager", "email": "jobs@sunraysia-orchards.example"},
            country="AU",
            city="Mildura",
            position="Seasonal horticulture worker",
            scheme="PALM seasonal",
            contract_start=contract_start,
            contract_end=contract_start + timedelta(days=270),
            salary_amount=Decimal("28.50"),
            salary_currency="AUD",
            salary_period="hour",
            status=PlacementStatus.accepted,
            agent_id=agent.id,
            broker_id=broker.id,
            # From the partners' payment terms, fixed on acceptance.
            agent_commission=Decimal(agent.payment_terms.get("amount", "0")),
            broker_commission=Decimal(broker.payment_terms.get("amount", "0")),
            commission_currency="AUD",
            offered_at=self._at(today - timedelta(days=10)),
            accepted_at=self._at(today - timedelta(days=7)),
        )
        await self._ensure(
            f"payment {SAMPLE_PAYMENT_KEY}",
            Payment,
            {"tenant_id": t, "idempotency_key": SAMPLE_PAYMENT_KEY},
            direction=PaymentDirection.incoming,
            party_type=PartyType.candidate,
            candidate_id=candidate.id,
            amount=course.fee or Decimal("450.00"),
            currency=course.currency or "FJD",
            method=PaymentMethod.bank_transfer,
            status=PaymentStatus.completed,
            reference="WTI-RCPT-0001",
            description=f"Course fee {SAMPLE_COURSE_CODE}",
            paid_at=self._at(course_start - timedelta(days=3)),
        )
