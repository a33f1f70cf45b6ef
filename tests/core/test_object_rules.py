"""Object-level rules at the data layer (BOLA): two of each partner, candidate and trainer in one tenant.

The tenant holds two parallel "sides": side 1 is agent 1's and broker 1's candidate 1, enrolled in
trainer 1's course, with their documents, vetting records, attendance, assessments, certificate,
placement, payment and invoice; side 2 is the same for agent 2, broker 2, candidate 2 and trainer 2.
Acting through the application's ScopedSession, each person sees exactly the rows of their side that
DESIGN.md's rules give their role (listed below), never one of the other side, in lists and by id;
an Admin sees the whole tenant, a Recruiter too (but only their own notifications).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from mobility import models as m
from mobility.authz import rules as policies
from mobility.authz.permissions import SystemRole
from mobility.core.scope import Scope, tenant_scoped
from mobility.tenants.models import Tenant
from tests.support.factories import make_tenant, make_user
from tests.support.rows import RowBuilder
from tests.support.sessions import Db, scope_of, system_session

# On PostgreSQL also as a role that bypasses row-level security: the application's filters alone.
pytestmark = pytest.mark.each_wall_alone

HANGS_OFF_A_CANDIDATE = {
    m.Candidate,
    m.CandidateDocument,
    m.VettingRecord,
    m.Enrollment,
    m.AttendanceRecord,
    m.Assessment,
    m.Certificate,
}
MONEY_AND_PLACEMENT = {m.Placement, m.Payment, m.Invoice}
# Passports, medical and police results: not for a candidate's trainer. A broker uploads its candidates'
# documents and sees them (issue 12), but not their vetting results.
PERSONAL_RECORDS = {m.CandidateDocument, m.VettingRecord}
VETTING_RESULTS = {m.VettingRecord}

# The models whose rows of their own side each role sees; of every other model in the world, none.
VISIBLE = {
    SystemRole.candidate: HANGS_OFF_A_CANDIDATE | MONEY_AND_PLACEMENT | {m.Course},
    SystemRole.agent: HANGS_OFF_A_CANDIDATE | MONEY_AND_PLACEMENT | {m.Agent},
    SystemRole.broker: (HANGS_OFF_A_CANDIDATE - VETTING_RESULTS) | MONEY_AND_PLACEMENT | {m.Broker},
    SystemRole.trainer: (HANGS_OFF_A_CANDIDATE - PERSONAL_RECORDS) | {m.Course},
}
# Personal rows: each login sees the one addressed to them; of the staff, only the tenant's Admin all.
PERSONAL = {m.Notification, m.UserInvitation, m.NotificationPreference}
WORLD_MODELS = HANGS_OFF_A_CANDIDATE | MONEY_AND_PLACEMENT | {m.Course, m.Agent, m.Broker} | PERSONAL
# Tenant-wide by design (every member may read the tenant's settings through the matrix; the yearly
# counter of candidate reference numbers is the tenant's bookkeeping, taken by whoever registers a
# candidate and exposed by no endpoint; webhook endpoints and their delivery log are reached through
# the `webhooks` permission alone).
TENANT_WIDE = {m.Setting, m.CandidateReferenceCounter, m.WebhookEndpoint, m.WebhookDelivery}


def test_the_world_covers_every_model_with_an_object_rule() -> None:
    ruled = {cls for cls in policies._RULES if tenant_scoped(cls)}
    assert ruled - TENANT_WIDE <= WORLD_MODELS, (
        f"a row rule with no BOLA coverage: {sorted(c.__name__ for c in ruled - TENANT_WIDE - WORLD_MODELS)}"
    )


@dataclass
class Side:
    people: dict[SystemRole, Scope] = field(default_factory=dict)
    rows: dict[type, set[uuid.UUID]] = field(default_factory=dict)
    personal: dict[type, dict[SystemRole, uuid.UUID]] = field(default_factory=dict)

    def add(self, row: Any) -> Any:
        self.rows.setdefault(type(row), set()).add(row.id)
        return row


@dataclass
class World:
    tenant: Tenant
    sides: tuple[Side, Side]
    admin: Scope
    recruiter: Scope

    def all_rows(self, model: type) -> set[uuid.UUID]:
        return set().union(*(side.rows.get(model, set()) for side in self.sides))


async def _side(session, tenant: Tenant) -> Side:
    side = Side()
    build = RowBuilder(session, tenant).build
    logins = {role: await make_user(session, tenant, role) for role in VISIBLE}

    agent = side.add(await build(m.Agent, user_id=logins[SystemRole.agent].id))
    broker = side.add(await build(m.Broker, user_id=logins[SystemRole.broker].id))
    candidate = side.add(
        await build(
            m.Candidate, agent_id=agent.id, broker_id=broker.id, user_id=logins[SystemRole.candidate].id
        )
    )
    course = side.add(await build(m.Course, trainer_id=logins[SystemRole.trainer].id))
    enrollment = side.add(await build(m.Enrollment, course_id=course.id, candidate_id=candidate.id))
    for model in (m.AttendanceRecord, m.Assessment, m.Certificate):
        side.add(await build(model, enrollment_id=enrollment.id))
    for model in (m.CandidateDocument, m.VettingRecord):
        side.add(await build(model, candidate_id=candidate.id))
    parties = {"candidate_id": candidate.id, "agent_id": agent.id, "broker_id": broker.id}
    placement = side.add(await build(m.Placement, **parties))
    for model in (m.Payment, m.Invoice):
        side.add(await build(model, placement_id=placement.id, **parties))

    linked = {
        SystemRole.candidate: {"candidate_id": candidate.id},
        SystemRole.agent: {"agent_id": agent.id},
        SystemRole.broker: {"broker_id": broker.id},
        SystemRole.trainer: {},
    }
    for role, login in logins.items():
        side.people[role] = scope_of(tenant.id, login.id, role, **linked[role])
        note = side.add(await build(m.Notification, recipient_id=login.id))
        invitation = side.add(await build(m.UserInvitation, user_id=login.id))
        side.personal.setdefault(m.Notification, {})[role] = note.id
        side.personal.setdefault(m.UserInvitation, {})[role] = invitation.id
        preference = side.add(await build(m.NotificationPreference, user_id=login.id))
        side.personal.setdefault(m.NotificationPreference, {})[role] = preference.id
    return side


@pytest.fixture
async def world(db: Db, per_backend, backend: str) -> World:
    return await per_backend.get("object-rules", backend, lambda: _make_world(db))


async def _make_world(db: Db) -> World:
    async with system_session(db.url) as session:
        tenant = await make_tenant(session)
        sides = (await _side(session, tenant), await _side(session, tenant))
        admin = await make_user(session, tenant, SystemRole.admin)
        recruiter = await make_user(session, tenant, SystemRole.recruiter)
    return World(
        tenant,
        sides,
        scope_of(tenant.id, admin.id, SystemRole.admin),
        scope_of(tenant.id, recruiter.id, SystemRole.recruiter),
    )


async def visible(db: Db, scope: Scope, world: World) -> dict[type, set[uuid.UUID]]:
    """What the scope sees of the world's rows, per model: by listing, and the same again by id."""
    seen: dict[type, set[uuid.UUID]] = {}
    async with db.acting(scope) as session:
        for model in WORLD_MODELS:
            ours = world.all_rows(model)
            listed = set((await session.execute(select(model.id))).scalars()) & ours
            by_id = {
                row_id
                for row_id in ours
                if (await session.execute(select(model).where(model.id == row_id))).first() is not None
            }
            assert listed == by_id, f"{model.__tablename__}: a list and get-by-id disagree"
            seen[model] = listed
    return seen


@pytest.mark.parametrize("side_index", [0, 1], ids=["side1", "side2"])
@pytest.mark.parametrize("role", list(VISIBLE), ids=[role.name for role in VISIBLE])
async def test_each_sees_exactly_their_own_rows(
    db: Db, world: World, role: SystemRole, side_index: int
) -> None:
    own, other = world.sides[side_index], world.sides[1 - side_index]
    seen = await visible(db, own.people[role], world)

    for model in WORLD_MODELS - PERSONAL:
        expected = own.rows.get(model, set()) if model in VISIBLE[role] else set()
        assert seen[model] == expected, (
            f"{role.value} of side {side_index + 1} on {model.__tablename__}: "
            f"sees {len(seen[model] & other.rows.get(model, set()))} of the other side's rows, "
            f"{len(seen[model] & own.rows.get(model, set()))} of {len(expected)} expected own rows"
        )
    for model in PERSONAL:
        assert seen[model] == {own.personal[model][role]}, f"{role.value} on {model.__tablename__}"


@pytest.mark.parametrize("role", list(VISIBLE), ids=[role.name for role in VISIBLE])
async def test_a_login_not_linked_to_a_record_sees_no_records(db: Db, world: World, role: SystemRole) -> None:
    """A Candidate, Agent or Broker login whose record is missing sees nothing, rather than everything."""
    async with system_session(db.url) as session:
        login = await make_user(session, world.tenant, role)
    seen = await visible(db, scope_of(world.tenant.id, login.id, role), world)
    assert {model.__tablename__: ids for model, ids in seen.items() if ids} == {}


async def test_staff_see_the_whole_tenant(db: Db, world: World) -> None:
    for scope in (world.admin, world.recruiter):
        seen = await visible(db, scope, world)
        for model in WORLD_MODELS - PERSONAL:
            assert seen[model] == world.all_rows(model), f"{scope.role} on {model.__tablename__}"
    # Notifications and invitations are personal for everyone but the tenant's administrators.
    for model in PERSONAL:
        assert (await visible(db, world.admin, world))[model] == world.all_rows(model)
        assert (await visible(db, world.recruiter, world))[model] == set()
