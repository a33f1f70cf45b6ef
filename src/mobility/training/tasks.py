"""The training domain's periodic jobs: reminders to renew certificates before they expire.

Each tenant's lead times are `notifications.reminderLeadDays` "certificateExpiry" (days before the
certificate's `expiresAt`, counted by its UTC date; see mobility.notifications.reminders for the
buckets and days). A certificate with no expiry, a revoked one, or one already expired gets none; nor
does a candidate who left the pipeline (withdrawn or rejected). One reminder per lead time bucket
(dedupe key: certificate, expiry date, lead time), so a certificate whose expiry is moved starts again.
Sent, with the renewal wording, to the candidate's own login (enrollment -> candidate -> userId), their
agent's login and the tenant's active Admins, in-app and by e-mail.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.candidates.models import Candidate, CandidateStatus
from mobility.core.jobs import Job, JobContext
from mobility.notifications import reminders
from mobility.training.models import Certificate, Course, Enrollment

KIND = "certificateExpiry"
# Candidates who left the pipeline: nothing of theirs is reminded.
CLOSED = (CandidateStatus.withdrawn, CandidateStatus.rejected)


async def certificate_expiry_reminders(session: AsyncSession, context: JobContext) -> dict[str, Any]:
    today = context.now.astimezone(UTC).date()
    leads = await reminders.LeadTimes.load(session)
    past_horizon = datetime.combine(today, time.min, tzinfo=UTC) + timedelta(days=leads.horizon(KIND) + 1)
    rows = (
        await session.execute(
            select(Certificate, Candidate, Course.title)
            .join(Enrollment, Enrollment.id == Certificate.enrollment_id)
            .join(Candidate, Candidate.id == Enrollment.candidate_id)
            .join(Course, Course.id == Enrollment.course_id)
            .where(
                Certificate.tenant_id.in_(reminders.active_tenants()),
                Certificate.revoked_at.is_(None),
                Certificate.expires_at > context.now,  # not expired yet
                Certificate.expires_at < past_horizon,
                Candidate.status.not_in(CLOSED),
            )
        )
    ).all()
    if not rows:
        return {"certificates": 0, "queued": 0}
    admins = await reminders.admins(session, {certificate.tenant_id for certificate, _, _ in rows})
    agents = await reminders.partner_logins(
        session, agent_ids={candidate.agent_id for _, candidate, _ in rows}
    )
    outbox = reminders.Reminders(session, await reminders.languages(session))
    certificates = 0
    for certificate, candidate, course_title in rows:
        expiry = reminders.day_of(certificate.expires_at)
        days_left = (expiry - today).days
        lead = reminders.bucket(days_left, leads.of(certificate.tenant_id, KIND))
        if lead is None:
            continue
        certificates += 1
        await outbox.remind(
            "reminders.certificate_expiry",
            {
                "candidate_name": f"{candidate.first_name} {candidate.last_name}",
                "course_title": course_title,
                "certificate_number": certificate.certificate_number,
                "expiry_date": expiry.isoformat(),
                "days_left": days_left,
            },
            tenant_id=certificate.tenant_id,
            recipients=[
                candidate.user_id,
                agents.get(candidate.agent_id),
                *admins.get(certificate.tenant_id, ()),
            ],
            dedupe_key=f"certificate-expiry:{certificate.id}:{expiry.isoformat()}:{lead}",
        )
    return {"certificates": certificates, "queued": outbox.queued}


JOBS = [
    Job(
        "reminders.certificate-expiry",
        "Remind candidates, their agents and the tenant's Admins to renew certificates about to expire.",
        timedelta(hours=6),
        certificate_expiry_reminders,
    ),
]
