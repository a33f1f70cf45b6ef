"""The vetting domain's periodic jobs: reminders of cleared checks about to lapse, and lapsing them.

`vetting.lapse` (hourly): a cleared check whose `expiresAt` has come (at or before the run's moment) is
`expired` now, each change in the audit trail as `vetting_record.lapse` (system scope, no actor). Its
candidate's login, their agent's and the tenant's active Admins are told once (dedupe key: record and
its expiry), unless another record of the same check and candidate still covers it (cleared or waived,
unexpired: a check redone in time), or the candidate left the pipeline (withdrawn, rejected). The notice
says whether the check is one the tenant requires (`vetting.requiredChecks`) of a candidate in the
work-ready pool (`ready`).

A candidate in `ready` stays there. DESIGN.md says that a check lapses and that a placement cannot be
offered unless every required check is cleared and unexpired; it does not say that a lapse moves the
candidate. The pipeline allows staff to move them back (`ready -> vetting`, with a reason) and the
offer is refused anyway while the check has lapsed, so the job tells staff and leaves the decision to
them (a check renewed within days should not throw a candidate out of the pool).

`reminders.vetting-expiry` (every 6 h): a cleared check with an expiry still ahead gets one reminder per
lead time bucket of `notifications.reminderLeadDays` "vettingExpiry" (dedupe key: record, expiry date,
lead time; days as mobility.notifications.reminders counts them), to the same people, unless another
record of the same check and candidate is cleared (or waived) until later, or never expires.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from mobility.candidates.models import Candidate, CandidateStatus
from mobility.core import audit
from mobility.core.jobs import Job, JobContext
from mobility.notifications import reminders
from mobility.settings import service as settings_service
from mobility.vetting.models import VettingRecord, VettingStatus

KIND = "vettingExpiry"
CLOSED = (CandidateStatus.withdrawn, CandidateStatus.rejected)
# A record of these counts as the check being done (a waived check needs no clearing).
COVERING = (VettingStatus.cleared, VettingStatus.waived)


def _covered_after(moment) -> Any:
    """Whether another record of the same candidate and check covers it past `moment` (a column or a
    value): cleared or waived, and never expiring or expiring after it."""
    other = aliased(VettingRecord)
    return exists().where(
        other.candidate_id == VettingRecord.candidate_id,
        other.check_type == VettingRecord.check_type,
        other.id != VettingRecord.id,
        other.status.in_(COVERING),
        or_(other.expires_at.is_(None), other.expires_at > moment),
    )


def _people(candidate: Candidate, agents: dict, admins: dict) -> list:
    return [candidate.user_id, agents.get(candidate.agent_id), *admins.get(candidate.tenant_id, ())]


def _name(candidate: Candidate) -> str:
    return f"{candidate.first_name} {candidate.last_name}"


async def lapse_expired_checks(session: AsyncSession, context: JobContext) -> dict[str, Any]:
    now = context.now
    expired = (
        await session.execute(
            select(VettingRecord, Candidate)
            .join(Candidate, Candidate.id == VettingRecord.candidate_id)
            .where(VettingRecord.status == VettingStatus.cleared, VettingRecord.expires_at <= now)
            .order_by(VettingRecord.expires_at)
        )
    ).all()
    if not expired:
        return {"lapsed": 0, "notified": 0, "ready_candidates": 0, "queued": 0}
    for record, _ in expired:
        record.status = VettingStatus.expired
        await audit.flush_as(
            session,
            "vetting_record.lapse",
            conflict="The vetting record changed meanwhile.",
            details={"reason": f"expired at {record.expires_at.isoformat()}"},
        )
    # Which of them still tell someone: in an active tenant, of a candidate still in the pipeline, and
    # not covered by another record of the same check.
    told_ids = set(
        (
            await session.execute(
                select(VettingRecord.id)
                .join(Candidate, Candidate.id == VettingRecord.candidate_id)
                .where(
                    VettingRecord.id.in_([record.id for record, _ in expired]),
                    VettingRecord.tenant_id.in_(reminders.active_tenants()),
                    Candidate.status.not_in(CLOSED),
                    ~_covered_after(now),
                )
            )
        ).scalars()
    )
    told = [(record, candidate) for record, candidate in expired if record.id in told_ids]
    required = await reminders.tenant_values(session, settings_service.REQUIRED_VETTING_CHECKS)
    admins = await reminders.admins(session, {record.tenant_id for record, _ in told})
    agents = await reminders.partner_logins(session, agent_ids={candidate.agent_id for _, candidate in told})
    outbox = reminders.Reminders(session, await reminders.languages(session))
    ready = set()
    for record, candidate in told:
        is_required = record.check_type in required.get(
            record.tenant_id, settings_service.REQUIRED_VETTING_CHECKS.default
        )
        in_pool = candidate.status == CandidateStatus.ready
        if is_required and in_pool:
            ready.add(candidate.id)
        await outbox.remind(
            "reminders.vetting_lapsed",
            {
                "candidate_name": _name(candidate),
                "check_type": record.check_type.value.replace("_", " "),
                "expired_on": reminders.day_of(record.expires_at).isoformat(),
                "required": is_required,
                "in_ready_pool": in_pool,
            },
            tenant_id=record.tenant_id,
            recipients=_people(candidate, agents, admins),
            dedupe_key=f"vetting-lapsed:{record.id}:{record.expires_at.isoformat()}",
        )
    return {
        "lapsed": len(expired),
        "notified": len(told),
        "ready_candidates": len(ready),
        "queued": outbox.queued,
    }


async def vetting_expiry_reminders(session: AsyncSession, context: JobContext) -> dict[str, Any]:
    today = context.now.astimezone(UTC).date()
    leads = await reminders.LeadTimes.load(session)
    past_horizon = datetime.combine(today, time.min, tzinfo=UTC) + timedelta(days=leads.horizon(KIND) + 1)
    rows = (
        await session.execute(
            select(VettingRecord, Candidate)
            .join(Candidate, Candidate.id == VettingRecord.candidate_id)
            .where(
                VettingRecord.tenant_id.in_(reminders.active_tenants()),
                VettingRecord.status == VettingStatus.cleared,
                VettingRecord.expires_at > context.now,  # not lapsed yet
                VettingRecord.expires_at < past_horizon,
                Candidate.status.not_in(CLOSED),
                ~_covered_after(VettingRecord.expires_at),
            )
        )
    ).all()
    if not rows:
        return {"checks": 0, "queued": 0}
    admins = await reminders.admins(session, {record.tenant_id for record, _ in rows})
    agents = await reminders.partner_logins(session, agent_ids={candidate.agent_id for _, candidate in rows})
    outbox = reminders.Reminders(session, await reminders.languages(session))
    checks = 0
    for record, candidate in rows:
        expiry = reminders.day_of(record.expires_at)
        days_left = (expiry - today).days
        lead = reminders.bucket(days_left, leads.of(record.tenant_id, KIND))
        if lead is None:
            continue
        checks += 1
        await outbox.remind(
            "reminders.vetting_expiry",
            {
                "candidate_name": _name(candidate),
                "check_type": record.check_type.value.replace("_", " "),
                "expiry_date": expiry.isoformat(),
                "days_left": days_left,
            },
            tenant_id=record.tenant_id,
            recipients=_people(candidate, agents, admins),
            dedupe_key=f"vetting-expiry:{record.id}:{expiry.isoformat()}:{lead}",
        )
    return {"checks": checks, "queued": outbox.queued}


JOBS = [
    Job(
        "vetting.lapse",
        "Mark cleared vetting checks whose expiry has come as expired (audited) and tell the people concerned.",
        timedelta(hours=1),
        lapse_expired_checks,
    ),
    Job(
        "reminders.vetting-expiry",
        "Remind candidates, their agents and the tenant's Admins of cleared vetting checks about to lapse.",
        timedelta(hours=6),
        vetting_expiry_reminders,
    ),
]
