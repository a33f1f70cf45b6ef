"""Webhook endpoints a tenant's Admins register, and the deliveries of events to them (0016).

Deliveries are an outbox like notifications: written in the transaction of the event, delivered by the
worker with the same claim, lease, retry and dead-state rules (`mobility.worker.queue`).
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, Text, Uuid, true
from sqlalchemy.orm import Mapped, mapped_column

from mobility.core.db import Base
from mobility.core.models import (
    EMPTY_JSON_ARRAY,
    EMPTY_JSON_OBJECT,
    JSONType,
    TenantScopedMixin,
    UTCDateTime,
    db_enum,
    same_tenant_fk,
    tenant_table_args,
)
from mobility.notifications.models import NotificationStatus


class WebhookEndpoint(TenantScopedMixin, Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = tenant_table_args()
    # The signing secrets are shown once, when made or rotated; the trail says only that they changed.
    __audit_redact__ = frozenset({"secret", "previous_secret"})

    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(String(200))
    # The event types delivered to it, e.g. ["candidate.created", "payment.recorded"].
    event_types: Mapped[list[str]] = mapped_column(
        "eventTypes", JSONType, default=list, server_default=EMPTY_JSON_ARRAY
    )
    # "whsec_" + base64 of the key, as the Standard Webhooks scheme writes it, stored encrypted (a
    # Fernet token, core/crypto.py; 0019): webhooks.service encrypts and decrypts it.
    secret: Mapped[str] = mapped_column(Text)
    # After a rotation, deliveries carry a signature with the previous secret too, until this instant.
    # Encrypted like `secret`.
    previous_secret: Mapped[str | None] = mapped_column("previousSecret", Text)
    previous_secret_until: Mapped[datetime | None] = mapped_column("previousSecretUntil", UTCDateTime())
    is_active: Mapped[bool] = mapped_column("isActive", Boolean, default=True, server_default=true())
    disabled_at: Mapped[datetime | None] = mapped_column("disabledAt", UTCDateTime())
    disabled_reason: Mapped[str | None] = mapped_column("disabledReason", Text)
    # The first failure of the current run of failures (none since the last success).
    failing_since: Mapped[datetime | None] = mapped_column("failingSince", UTCDateTime())


class WebhookDelivery(TenantScopedMixin, Base):
    """One event to one endpoint: the delivery log. A replay is a new delivery of the same event id."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = tenant_table_args(
        same_tenant_fk("endpointId", "webhook_endpoints", ondelete="CASCADE"),
        Index(None, "status", "nextAttemptAt"),
        Index(None, "tenantId", "endpointId", "createdAt"),
    )
    # A queue and its log (status, attempts, lastError, responseStatus); endpoints are audited.
    __audited__ = False

    endpoint_id: Mapped[uuid.UUID] = mapped_column("endpointId", Uuid)
    # The same for every delivery (and replay) of one event: receivers deduplicate on it.
    event_id: Mapped[uuid.UUID] = mapped_column("eventId", Uuid)
    event_type: Mapped[str] = mapped_column("eventType", String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default=EMPTY_JSON_OBJECT)
    status: Mapped[NotificationStatus] = mapped_column(
        db_enum(NotificationStatus), default=NotificationStatus.queued, server_default="queued"
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column("nextAttemptAt", UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column("leaseUntil", UTCDateTime())
    last_error: Mapped[str | None] = mapped_column("lastError", Text)
    response_status: Mapped[int | None] = mapped_column("responseStatus", Integer)
    sent_at: Mapped[datetime | None] = mapped_column("sentAt", UTCDateTime())
