"""Webhooks: endpoints a tenant's Admins register for the event types they want, and events published
to them in the transaction of the change that causes them (the outbox: a rolled-back change sends
nothing, a committed one is delivered by the worker, signed, with retries).

- `publish(session, event_type, data)`: what a domain calls: one delivery per active endpoint of the
  tenant that wants the type, all with the same event id.
- The secret is shown once, when the endpoint is made or its secret rotated; after a rotation the
  previous secret also signs for a day, so receivers can switch without losing a delivery. Both are
  stored encrypted (core/crypto.py, 0019) and decrypted only to sign a delivery.
- An endpoint that fails every delivery for `webhook_disable_after_days` is disabled and the tenant's
  Admins are told (webhooks.delivery); enabling it again starts afresh. Failed deliveries can be replayed.
"""

from __future__ import annotations

import enum
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.core import audit
from mobility.core.config import Settings
from mobility.core.crypto import secret_box
from mobility.core.models import new_id, utcnow
from mobility.core.pagination import PageParams, paginate, time_key
from mobility.core.scope import TenancyViolation, get_visible, require_scope
from mobility.notifications.models import NotificationStatus
from mobility.webhooks import signing
from mobility.webhooks.addresses import check_url
from mobility.webhooks.models import WebhookDelivery, WebhookEndpoint

PREVIOUS_SECRET_KEPT = timedelta(days=1)


class EventType(enum.StrEnum):
    candidate_created = "candidate.created"
    candidate_status_changed = "candidate.status_changed"
    document_verified = "document.verified"
    certificate_issued = "certificate.issued"
    vetting_completed = "vetting.completed"
    placement_changed = "placement.changed"
    payment_recorded = "payment.recorded"
    invoice_issued = "invoice.issued"
    # Sent by POST /webhooks/{id}/test only.
    ping = "webhook.ping"


DELIVERY_SORT_KEYS = {"createdAt": time_key(WebhookDelivery.created_at)}
ENDPOINT_SORT_KEYS = {"createdAt": time_key(WebhookEndpoint.created_at)}


async def list_endpoints(
    session: AsyncSession, *, params: PageParams
) -> tuple[list[WebhookEndpoint], str | None]:
    return await paginate(
        session,
        select(WebhookEndpoint),
        params=params,
        sort_keys=ENDPOINT_SORT_KEYS,
        default_sort="-createdAt",
        id_column=WebhookEndpoint.id,
    )


async def get_endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    return await get_visible(session, WebhookEndpoint, endpoint_id)


async def create_endpoint(
    session: AsyncSession, *, settings: Settings, url: str, description: str | None, event_types: list[str]
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret in clear (the caller shows it once; the row keeps it encrypted)."""
    secret = signing.new_secret()
    endpoint = WebhookEndpoint(
        url=check_url(url, allow_private=settings.webhook_allow_private_addresses),
        description=description,
        event_types=sorted(set(event_types)),
        secret=secret_box(settings).encrypt(secret),
    )
    session.add(endpoint)
    await audit.flush_as(session, "webhook.create", conflict="The endpoint changed meanwhile.")
    return endpoint, secret


async def update_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, changes: dict[str, Any], *, settings: Settings
) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, endpoint_id)
    if "url" in changes:
        endpoint.url = check_url(changes["url"], allow_private=settings.webhook_allow_private_addresses)
    if "description" in changes:
        endpoint.description = changes["description"]
    if "event_types" in changes:
        endpoint.event_types = sorted(set(changes["event_types"]))
    if "is_active" in changes and changes["is_active"] != endpoint.is_active:
        endpoint.is_active = changes["is_active"]
        # Enabled again (or disabled by hand): the count of failing days starts afresh.
        endpoint.failing_since = None
        if endpoint.is_active:
            endpoint.disabled_at, endpoint.disabled_reason = None, None
        else:
            endpoint.disabled_at, endpoint.disabled_reason = utcnow(), "disabled by an Admin"
    await audit.flush_as(session, "webhook.update", conflict="The endpoint changed meanwhile.")
    return endpoint


async def delete_endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> None:
    """The endpoint and its delivery log."""
    endpoint = await get_endpoint(session, endpoint_id)
    await session.delete(endpoint)
    await audit.flush_as(session, "webhook.delete", conflict="The endpoint changed meanwhile.")


async def rotate_secret(
    session: AsyncSession, endpoint_id: uuid.UUID, *, settings: Settings
) -> tuple[WebhookEndpoint, str]:
    """A new secret, returned in clear (shown once); the previous one also signs for a day."""
    endpoint = await get_endpoint(session, endpoint_id)
    secret = signing.new_secret()
    endpoint.previous_secret = endpoint.secret  # encrypted as it is
    endpoint.previous_secret_until = utcnow() + PREVIOUS_SECRET_KEPT
    endpoint.secret = secret_box(settings).encrypt(secret)
    await audit.flush_as(session, "webhook.rotate_secret", conflict="The endpoint changed meanwhile.")
    return endpoint, secret


def signing_secrets(endpoint: WebhookEndpoint, *, settings: Settings, now) -> list[str]:
    """The secrets in clear that sign a delivery to `endpoint` now: its own, and after a rotation the
    previous one until its day is over."""
    box = secret_box(settings)
    secrets = [box.decrypt(endpoint.secret)]
    if endpoint.previous_secret and endpoint.previous_secret_until and endpoint.previous_secret_until > now:
        secrets.append(box.decrypt(endpoint.previous_secret))
    return secrets


def _delivery(
    endpoint: WebhookEndpoint, event_id: uuid.UUID, event_type: str, payload: dict
) -> WebhookDelivery:
    now = utcnow()
    return WebhookDelivery(
        id=new_id(),
        tenant_id=endpoint.tenant_id,
        endpoint_id=endpoint.id,
        event_id=event_id,
        event_type=event_type,
        payload=payload,
        status=NotificationStatus.queued,
        next_attempt_at=now,
    )


def _body(event_id: uuid.UUID, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(event_id), "type": event_type, "timestamp": utcnow().isoformat(), "data": data}


async def publish(
    session: AsyncSession,
    event_type: EventType | str,
    data: dict[str, Any],
    *,
    tenant_id: uuid.UUID | None = None,
) -> list[WebhookDelivery]:
    """Queue an event for every active endpoint of the tenant that wants it, in the caller's
    transaction. `data` must be JSON-ready. Under the system scope, pass `tenant_id`."""
    event_type = EventType(event_type).value
    scope = require_scope(session)
    tenant = tenant_id or scope.tenant_id
    if tenant is None or (not scope.system and tenant != scope.tenant_id):
        raise TenancyViolation("An event belongs to the tenant acted in.")
    endpoints = (
        await session.execute(
            select(WebhookEndpoint).where(WebhookEndpoint.tenant_id.in_([tenant]), WebhookEndpoint.is_active)
        )
    ).scalars()
    event_id = new_id()
    body = _body(event_id, event_type, data)
    deliveries = [_delivery(e, event_id, event_type, body) for e in endpoints if event_type in e.event_types]
    session.add_all(deliveries)
    await session.flush()
    return deliveries


async def ping(session: AsyncSession, endpoint_id: uuid.UUID) -> WebhookDelivery:
    """A `webhook.ping` event to this endpoint alone (active or not: a way to check it before enabling)."""
    endpoint = await get_endpoint(session, endpoint_id)
    event_id = new_id()
    delivery = _delivery(endpoint, event_id, EventType.ping.value, _body(event_id, EventType.ping.value, {}))
    session.add(delivery)
    await session.flush()
    return delivery


async def list_deliveries(
    session: AsyncSession,
    *,
    endpoint_id: uuid.UUID | None,
    params: PageParams,
    status: NotificationStatus | None = None,
) -> tuple[list[WebhookDelivery], str | None]:
    """The delivery log (of one endpoint), newest first."""
    statement = select(WebhookDelivery)
    if endpoint_id is not None:
        statement = statement.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status)
    return await paginate(
        session,
        statement,
        params=params,
        sort_keys=DELIVERY_SORT_KEYS,
        default_sort="-createdAt",
        id_column=WebhookDelivery.id,
    )


async def replay(session: AsyncSession, delivery_id: uuid.UUID) -> WebhookDelivery:
    """The same event (same event id and body) delivered again, as a new entry of the log."""
    original = await get_visible(session, WebhookDelivery, delivery_id)
    endpoint = await get_endpoint(session, original.endpoint_id)
    delivery = _delivery(endpoint, original.event_id, original.event_type, original.payload)
    session.add(delivery)
    await session.flush()
    return delivery
