"""Helpers of the documents tests: committed units of work as someone, uploads through the service,
and multipart bodies with real files."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.authz.permissions import SystemRole
from mobility.core.config import Settings
from mobility.core.scope import Scope, apply_to_database
from mobility.core.storage import FileStorage
from mobility.documents import service
from mobility.documents.models import CandidateDocument, DocumentType
from mobility.documents.schemas import DocumentUpload
from tests.support import sample_files
from tests.support.factories import (
    make_agent,
    make_broker,
    make_candidate,
    make_course,
    make_enrollment,
    make_tenant,
    make_user,
)
from tests.support.sessions import Db, scope_of, system_session
from tests.support.storage import chunks_of

SETTINGS = Settings()


@asynccontextmanager
async def committed(db: Db, scope: Scope) -> AsyncIterator[AsyncSession]:
    """A unit of work as `scope` that commits at the end (rolls back on an error), as a request's does:
    stored files follow it (core/files.py)."""
    async with db.app_sessionmaker() as session:
        session.sync_session.expire_on_commit = False  # the rows stay readable after the commit
        await session.begin()
        await apply_to_database(session, scope)
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


@dataclass
class People:
    """One tenant: its Admin, a Recruiter, a Trainer, two agents and a broker with their logins, and
    candidates: `mine` (agent 1's and the broker's, with its own login), `theirs` (agent 2's)."""

    tenant_id: uuid.UUID
    admin: Scope
    recruiter: Scope
    trainer: Scope
    agent: Scope
    other_agent: Scope
    broker: Scope
    candidate: Scope
    mine: uuid.UUID
    theirs: uuid.UUID


async def make_people(db: Db) -> People:
    async with system_session(db.url) as session:
        tenant = await make_tenant(session)
        logins = {
            role: await make_user(session, tenant, role) for role in SystemRole if role != "System Admin"
        }
        other_agent_login = await make_user(session, tenant, SystemRole.agent)
        agent = await make_agent(session, tenant, logins[SystemRole.agent].user)
        other_agent = await make_agent(session, tenant, other_agent_login.user)
        broker = await make_broker(session, tenant, logins[SystemRole.broker].user)
        mine = await make_candidate(
            session,
            tenant,
            agent_id=agent.id,
            broker_id=broker.id,
            user_id=logins[SystemRole.candidate].id,
            nationality="FJ",
            date_of_birth=date(1995, 3, 4),
        )
        theirs = await make_candidate(session, tenant, agent_id=other_agent.id, nationality="FJ")
        # The trainer teaches `mine`: they see the candidate, never its documents.
        course = await make_course(session, tenant, trainer_id=logins[SystemRole.trainer].id)
        await make_enrollment(session, course, mine)

    def scope(role: SystemRole, **linked) -> Scope:
        return scope_of(tenant.id, logins[role].id, role, **linked)

    return People(
        tenant_id=tenant.id,
        admin=scope(SystemRole.admin),
        recruiter=scope(SystemRole.recruiter),
        trainer=scope(SystemRole.trainer),
        agent=scope(SystemRole.agent, agent_id=agent.id),
        other_agent=scope_of(tenant.id, other_agent_login.id, SystemRole.agent, agent_id=other_agent.id),
        broker=scope(SystemRole.broker, broker_id=broker.id),
        candidate=scope(SystemRole.candidate, candidate_id=mine.id),
        mine=mine.id,
        theirs=theirs.id,
    )


async def upload(
    session: AsyncSession,
    storage: FileStorage,
    candidate_id: uuid.UUID,
    data: bytes | None = None,
    *,
    name: str | None = "scan.pdf",
    **form,
) -> CandidateDocument:
    """Upload through the service as the API does: the candidate, the streamed file, then the row."""
    candidate = await service.candidate_for_upload(session, candidate_id)
    stored = await service.store_file(
        session, storage, chunks_of(data or sample_files.pdf()), client_name=name, settings=SETTINGS
    )
    form.setdefault("type", DocumentType.medical)
    return await service.add_document(session, candidate, DocumentUpload(**form), stored)


def unique_pdf(label: str = "") -> bytes:
    """A real PDF whose bytes (and so whose stored file) are its own."""
    return sample_files.pdf().replace(b"%%EOF", f"% {label}{uuid.uuid4().hex}\n%%EOF".encode(), 1)


async def rows_of(db: Db, candidate_id: uuid.UUID) -> list[CandidateDocument]:
    async with system_session(db.url) as session:
        found = await session.execute(
            select(CandidateDocument)
            .where(CandidateDocument.candidate_id == candidate_id)
            .order_by(CandidateDocument.created_at)
        )
        return list(found.scalars())
