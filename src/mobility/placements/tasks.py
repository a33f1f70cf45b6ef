"""The placements domain's periodic jobs: passports that will not be valid long enough for a placement.

A placement not yet under way (proposed, offered or accepted) with a contract start ahead needs the
candidate's passport valid until at least the contract start plus the tenant's
`placements.passportValidityMonths` (DESIGN.md: "valid long enough past the contract start", default 6
months; the month arithmetic is core.calendar.add_months). Where the candidate's `passportExpiry` is
missing or earlier, the tenant's active Admins and the placement's partners (the agent's and the
broker's logins) are reminded, once per lead time bucket of `notifications.reminderLeadDays`
"passportValidity", counted in days before the contract start (mobility.notifications.reminders). The
dedupe key names the placement, the passport expiry on record (or "none"), the contract start and the
lead time: a renewed passport that is still too short, or a contract start moved, is told again; once
the passport is long enough, nothing is. Placements of candidates who left the pipeline (withdrawn,
rejected) get none.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.candidates.models import Candidate, CandidateStatus
from mobility.core.calendar import add_months
from mobility.core.jobs import Job, JobContext
from mobility.notifications import reminders
from mobility.placements.models import Placement, PlacementStatus
from mobility.settings import service as settings_service

KIND = "passportValidity"
UPCOMING = (PlacementStatus.proposed, PlacementStatus.offered, PlacementStatus.accepted)
CLOSED = (CandidateStatus.withdrawn, CandidateStatus.rejected)


async def passport_validity_reminders(session: AsyncSession, context: JobContext) -> dict[str, Any]:
    today = context.now.astimezone(UTC).date()
    leads = await reminders.LeadTimes.load(session)
    rows = (
        await session.execute(
            select(Placement, Candidate)
            .join(Candidate, Candidate.id == Placement.candidate_id)
            .where(
                Placement.tenant_id.in_(reminders.active_tenants()),
                Placement.status.in_(UPCOMING),
                Placement.contract_start >= today,
                Placement.contract_start <= today + timedelta(days=leads.horizon(KIND)),
                Candidate.status.not_in(CLOSED),
            )
        )
    ).all()
    if not rows:
        return {"placements": 0, "queued": 0}
    setting = settings_service.PASSPORT_VALIDITY_MONTHS
    months = await reminders.tenant_values(session, setting)
    tenants = {placement.tenant_id for placement, _ in rows}
    admins = await reminders.admins(session, tenants)
    partners = await reminders.partner_logins(
        session,
        agent_ids={placement.agent_id for placement, _ in rows},
        broker_ids={placement.broker_id for placement, _ in rows},
    )
    outbox = reminders.Reminders(session, await reminders.languages(session))
    placements = 0
    for placement, candidate in rows:
        validity = months.get(placement.tenant_id, setting.default)
        needed = add_months(placement.contract_start, validity)
        expiry = candidate.passport_expiry
        if expiry is not None and expiry >= needed:
            continue
        days_left = (placement.contract_start - today).days
        lead = reminders.bucket(days_left, leads.of(placement.tenant_id, KIND))
        if lead is None:
            continue
        placements += 1
        await outbox.remind(
            "reminders.passport_validity",
            {
                "candidate_name": f"{candidate.first_name} {candidate.last_name}",
                "employer_name": placement.employer_name,
                "position": placement.position,
                "country": placement.country,
                "contract_start": placement.contract_start.isoformat(),
                "days_left": days_left,
                "passport_expiry": expiry.isoformat() if expiry else None,
                "valid_until_needed": needed.isoformat(),
                "validity_months": validity,
            },
            tenant_id=placement.tenant_id,
            recipients=[
                partners.get(placement.agent_id),
                partners.get(placement.broker_id),
                *admins.get(placement.tenant_id, ()),
            ],
            dedupe_key=(
                f"passport-validity:{placement.id}:{expiry.isoformat() if expiry else 'none'}:"
                f"{placement.contract_start.isoformat()}:{lead}"
            ),
        )
    return {"placements": placements, "queued": outbox.queued}


JOBS = [
    Job(
        "reminders.passport-validity",
        "Remind the tenant's Admins and the partners of upcoming placements whose candidate's passport "
        "will not be valid long enough past the contract start.",
        timedelta(hours=6),
        passport_validity_reminders,
    ),
]
