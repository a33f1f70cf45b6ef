"""What every reminder job shares (documents, certificates, vetting checks, passports before a placement).

A reminder job runs under the system scope, for every active tenant at once:

- Lead times come from the tenant's `notifications.reminderLeadDays` (`lead_days`): days before the
  date concerned. A thing is in the bucket of the smallest lead time L with days left <= L (`bucket`),
  and gets one reminder per bucket: its dedupe key names the thing, the date and L. So something first
  seen 5 days before its date with lead times 60/30/7 gets the 7-day reminder only, and a new date (a
  renewal) starts again.
- Days are counted in UTC: days left = the date concerned - the job's day (`JobContext.now`, UTC); a
  moment (a certificate's `expiresAt`) counts by its UTC date. 0 is the day itself.
- `remind` queues one reminder for each recipient (in-app and e-mail), in the tenant's notification
  language, and returns how many rows it wrote (0 on a second run: the dedupe key).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.agents.models import Agent, Broker
from mobility.notifications import service as notifications
from mobility.settings import service as settings_service
from mobility.settings.models import Setting
from mobility.tenants.models import Tenant
from mobility.users import service as users_service
from mobility.users.models import User


async def tenant_values(
    session: AsyncSession, setting: settings_service.KnownSetting
) -> dict[uuid.UUID, Any]:
    """Under the system scope: each tenant's value of `setting` where it was set (else: the default)."""
    rows = await session.execute(select(Setting.tenant_id, Setting.value).where(Setting.key == setting.key))
    return {tenant_id: setting.value_of(value) for tenant_id, value in rows.all()}


def bucket(days_left: int, lead_days: list[int]) -> int | None:
    """The smallest lead time the days left fall within, or None (too early, or past the date)."""
    if days_left < 0:
        return None
    within = [lead for lead in lead_days if days_left <= lead]
    return min(within) if within else None


class LeadTimes:
    """Each tenant's lead times of the reminder kinds (`notifications.reminderLeadDays`)."""

    SETTING = settings_service.REMINDER_LEAD_DAYS

    def __init__(self, values: Mapping[uuid.UUID, dict[str, list[int]]]) -> None:
        self.values = values

    @classmethod
    async def load(cls, session: AsyncSession) -> LeadTimes:
        return cls(await tenant_values(session, cls.SETTING))

    def of(self, tenant_id: uuid.UUID, kind: str) -> list[int]:
        """The tenant's lead times of `kind`; a kind the tenant's value does not name has the default's
        (a tenant that set only documentExpiry keeps the other reminders; `[]` turns one off)."""
        tenant = self.values.get(tenant_id, {})
        return tenant[kind] if kind in tenant else self.SETTING.default.get(kind, [])

    def horizon(self, kind: str) -> int:
        """The longest lead time of `kind` in any tenant (or the default): how far ahead to look."""
        found = [self.SETTING.default.get(kind, [])] + [self.of(tenant, kind) for tenant in self.values]
        return max((max(days, default=0) for days in found), default=0)


def day_of(moment: datetime) -> date:
    """The UTC day of a stored moment (a naive one is UTC already)."""
    return moment.date() if moment.tzinfo is None else moment.astimezone(UTC).date()


def active_tenants():
    """The ids of the active tenants (a statement): a suspended tenant's people get no reminders."""
    return select(Tenant.id).where(Tenant.is_active)


async def partner_logins(
    session: AsyncSession,
    *,
    agent_ids: Iterable[uuid.UUID | None] = (),
    broker_ids: Iterable[uuid.UUID | None] = (),
) -> dict[uuid.UUID, uuid.UUID]:
    """The login (user id) of each agent and broker named that has one, by the partner's id."""
    logins: dict[uuid.UUID, uuid.UUID] = {}
    for model, ids in ((Agent, agent_ids), (Broker, broker_ids)):
        wanted = {i for i in ids if i is not None}
        if wanted:
            rows = await session.execute(
                select(model.id, model.user_id).where(model.id.in_(wanted), model.user_id.is_not(None))
            )
            logins.update(dict(rows.all()))
    return logins


async def admins(session: AsyncSession, tenant_ids: set[uuid.UUID]) -> dict[uuid.UUID, set[uuid.UUID]]:
    """Each tenant's active Admins: the staff whom reminders go to."""
    return await users_service.active_admins(session, tenant_ids)


async def languages(session: AsyncSession) -> dict[uuid.UUID, str]:
    return await tenant_values(session, settings_service.NOTIFICATION_LANGUAGE)


class Reminders:
    """Queues the reminders of one job run and counts them. Recipients that are not active accounts
    (suspended, deleted) are left out; the same person named twice (an Admin who is also the agent's
    login) gets one."""

    def __init__(self, session: AsyncSession, languages: Mapping[uuid.UUID, str]) -> None:
        self.session = session
        self.languages = languages
        self.queued = 0
        self._active: dict[uuid.UUID, bool] = {}

    async def _is_active(self, user_ids: set[uuid.UUID]) -> set[uuid.UUID]:
        unknown = user_ids - self._active.keys()
        if unknown:
            rows = await self.session.execute(select(User.id, User.status).where(User.id.in_(unknown)))
            found = dict(rows.all())
            for user_id in unknown:
                self._active[user_id] = found.get(user_id) == "active"
        return {user_id for user_id in user_ids if self._active[user_id]}

    async def remind(
        self,
        template: str,
        payload: Mapping[str, Any],
        *,
        tenant_id: uuid.UUID,
        recipients: Iterable[uuid.UUID | None],
        dedupe_key: str,
    ) -> int:
        """Queue `template` for each recipient (in-app and e-mail); the rows written now."""
        wanted = await self._is_active({r for r in recipients if r is not None})
        written = 0
        for recipient in sorted(wanted):
            rows = await notifications.notify(
                self.session,
                template,
                payload,
                recipient_id=recipient,
                tenant_id=tenant_id,
                dedupe_key=dedupe_key,
                language=self.languages.get(tenant_id, "en"),
            )
            written += len(rows)
        self.queued += written
        return written
