"""The candidates domain's periodic jobs: reminders of expiring documents.

Each tenant's lead times (`notifications.reminderLeadDays`: "documentExpiry", or per document type
"documentExpiry.<type>") are days before the expiry date. A document is in the bucket of the smallest
lead time L with days left <= L: one reminder per bucket (dedupe key: document, expiry date, L), so a
document first seen 5 days before expiry with lead times 60/30/7 gets the 7-day reminder only, and a
renewed document (a new expiry date) starts again. Expired and rejected documents get none. Sent to
the candidate's own login, their agent's login and the tenant's active Admins, in-app and by e-mail.
Days are counted in UTC.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.agents.models import Agent
from mobility.candidates.models import Candidate, CandidateDocument, DocumentStatus
from mobility.core.jobs import Job, JobContext
from mobility.notifications import service as notifications
from mobility.notifications.reminders import bucket, tenant_values
from mobility.settings import service as settings_service
from mobility.tenants.models import Tenant
from mobility.users import service as users_service


async def document_expiry_reminders(session: AsyncSession, context: JobContext) -> dict[str, Any]:
    today = context.now.date()
    setting = settings_service.REMINDER_LEAD_DAYS
    leads = await tenant_values(session, setting)
    languages = await tenant_values(session, settings_service.NOTIFICATION_LANGUAGE)
    horizon = max(
        (max(days, default=0) for values in [*leads.values(), setting.default] for days in values.values()),
        default=0,
    )
    rows = (
        await session.execute(
            select(CandidateDocument, Candidate)
            .join(Candidate, Candidate.id == CandidateDocument.candidate_id)
            .where(
                CandidateDocument.tenant_id.in_(select(Tenant.id).where(Tenant.is_active)),
                CandidateDocument.expires_on >= today,
                CandidateDocument.expires_on <= today + timedelta(days=horizon),
                CandidateDocument.status != DocumentStatus.rejected,
            )
        )
    ).all()
    if not rows:
        return {"documents": 0, "queued": 0}
    admins = await users_service.active_admins(session, {document.tenant_id for document, _ in rows})
    agent_ids = {candidate.agent_id for _, candidate in rows if candidate.agent_id}
    agent_logins = {}
    if agent_ids:
        agent_logins = dict(
            (await session.execute(select(Agent.id, Agent.user_id).where(Agent.id.in_(agent_ids)))).all()
        )
    documents = queued = 0
    for document, candidate in rows:
        tenant_leads = leads.get(document.tenant_id, setting.default)
        lead_days = tenant_leads.get(
            f"documentExpiry.{document.type.value}", tenant_leads.get("documentExpiry", [])
        )
        days_left = (document.expires_on - today).days
        lead = bucket(days_left, lead_days)
        if lead is None:
            continue
        documents += 1
        recipients = {
            candidate.user_id,
            agent_logins.get(candidate.agent_id),
            *admins.get(document.tenant_id, ()),
        }
        payload = {
            "candidate_name": f"{candidate.first_name} {candidate.last_name}",
            "document_type": document.type.value.replace("_", " "),
            "expiry_date": document.expires_on.isoformat(),
            "days_left": days_left,
        }
        for recipient in sorted(r for r in recipients if r is not None):
            written = await notifications.notify(
                session,
                "reminders.document_expiry",
                payload,
                recipient_id=recipient,
                tenant_id=document.tenant_id,
                dedupe_key=f"document-expiry:{document.id}:{document.expires_on.isoformat()}:{lead}",
                language=languages.get(document.tenant_id, "en"),
            )
            queued += len(written)
    return {"documents": documents, "queued": queued}


JOBS = [
    Job(
        "reminders.document-expiry",
        "Remind candidates, their agents and the tenant's Admins of documents about to expire.",
        timedelta(hours=6),
        document_expiry_reminders,
    ),
]
