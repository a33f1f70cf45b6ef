"""Delivering queued e-mail notifications (the worker's e-mail outbox, mobility.core.outbox).

Per batch, under the system scope: the recipients' addresses (a user's current e-mail, or the address
the row names), each tenant's name, branding and contact details, its sender name and reply-to
settings, and the recipients' preferences (checked now, so a preference changed since queueing counts:
the row is `cancelled`). Each message is rendered from its template in the row's language, branded,
and sent with its stable Message-ID.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import jinja2
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.core.config import Settings
from mobility.core.outbox import SENT, Outcome
from mobility.notifications import service, templates
from mobility.notifications.email import Mailer, SendFailed, build_message, mailer_for
from mobility.notifications.models import Notification, NotificationChannel
from mobility.settings import service as settings_service
from mobility.settings.models import Setting
from mobility.tenants.models import Tenant
from mobility.users.models import User


@dataclass
class TenantMail:
    brand: dict[str, Any]
    sender_name: str | None
    reply_to: str | None


@dataclass
class Batch:
    addresses: dict[uuid.UUID, str] = field(default_factory=dict)
    tenants: dict[uuid.UUID, TenantMail] = field(default_factory=dict)
    wanted: set[uuid.UUID] = field(default_factory=set)


async def tenant_mail(session: AsyncSession, tenant_ids: set[uuid.UUID]) -> dict[uuid.UUID, TenantMail]:
    """Under the system scope: how each tenant's e-mails look and who they come from."""
    if not tenant_ids:
        return {}
    keys = (settings_service.NOTIFICATION_SENDER_NAME, settings_service.NOTIFICATION_REPLY_TO)
    stored: dict[tuple[uuid.UUID, str], Any] = {
        (row.tenant_id, row.key): row.value
        for row in (
            await session.execute(
                select(Setting).where(
                    Setting.tenant_id.in_(tenant_ids), Setting.key.in_([k.key for k in keys])
                )
            )
        ).scalars()
    }
    found = {}
    for tenant in (await session.execute(select(Tenant).where(Tenant.id.in_(tenant_ids)))).scalars():
        sender = settings_service.NOTIFICATION_SENDER_NAME.value_of(stored.get((tenant.id, keys[0].key)))
        found[tenant.id] = TenantMail(
            brand=templates.branding(tenant.name, tenant.branding, tenant.contact_info),
            sender_name=sender or tenant.name,
            reply_to=settings_service.NOTIFICATION_REPLY_TO.value_of(stored.get((tenant.id, keys[1].key))),
        )
    return found


class EmailOutbox:
    name = "email"
    model = Notification
    where = Notification.channel == NotificationChannel.email

    def __init__(self, settings: Settings, mailer: Mailer | None = None) -> None:
        self.settings = settings
        self.mailer = mailer or mailer_for(settings)

    async def prepare(self, session: AsyncSession, rows: list[Notification]) -> Batch:
        users = {row.recipient_id for row in rows if row.recipient_id is not None and not row.recipient_email}
        addresses = {}
        if users:
            addresses = dict(
                (await session.execute(select(User.id, User.email).where(User.id.in_(users)))).all()
            )
        known = [row for row in rows if row.template in templates.TEMPLATES]
        return Batch(
            addresses=addresses,
            tenants=await tenant_mail(session, {row.tenant_id for row in rows}),
            wanted=await service.wants_email(session, known),
        )

    async def deliver(self, batch: Batch, row: Notification) -> Outcome:
        if row.template not in templates.TEMPLATES:
            return Outcome(permanent=True, error=f"no template {row.template!r} any more")
        if row.id not in batch.wanted:
            return Outcome(cancelled=True, error="the recipient turned these e-mails off")
        to = row.recipient_email or batch.addresses.get(row.recipient_id)
        look = batch.tenants.get(row.tenant_id)
        if not to or look is None:
            return Outcome(permanent=True, error="no address to send to")
        try:
            rendered = templates.render(row.template, row.payload, language=row.language, brand=look.brand)
        except (jinja2.TemplateError, templates.InvalidNotification) as exc:
            return Outcome(permanent=True, error=f"cannot render {row.template!r}: {exc}")
        message = build_message(
            rendered,
            to=to,
            notification_id=row.id,
            settings=self.settings,
            sender_name=look.sender_name,
            reply_to=look.reply_to,
        )
        try:
            await self.mailer.send(message)
        except SendFailed as exc:
            return Outcome(error=str(exc), permanent=exc.permanent)
        return SENT

    async def after(self, session: AsyncSession, results: list) -> None:
        """A credential in a payload (an invitation or reset link) is blanked once the message is out
        of the queue for good: sent, failed or cancelled."""
        for row, outcome in results:
            known = templates.TEMPLATES.get(row.template)
            if known is None or not known.secret_fields or outcome.released:
                continue
            if not (
                outcome.ok
                or outcome.permanent
                or outcome.cancelled
                or row.attempts >= self.settings.notify_max_attempts
            ):
                continue
            payload = {
                **row.payload,
                **{name: templates.SPENT for name in known.secret_fields if name in row.payload},
            }
            await session.execute(
                update(Notification)
                .where(Notification.tenant_id == row.tenant_id, Notification.id == row.id)
                .values(payload=payload)
            )

    async def close(self) -> None:
        await self.mailer.close()
