"""The notification queue (the transactional outbox): rows written with the event that causes them,
delivered by the worker (`mobility worker`); and each user's e-mail preferences.

A row is one message on one channel: `in_app` rows are delivered as they are written (the user reads
them at /me/notifications), `email` rows wait for the worker. Status: queued -> sending (claimed by a
worker until `leaseUntil`) -> sent; a failed attempt goes back to queued with a later `nextAttemptAt`,
and past the maximum number of attempts to `failed`, the dead state, with `lastError`.
"""

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid, text, true
from sqlalchemy.orm import Mapped, mapped_column

from mobility.core.db import Base
from mobility.core.models import (
    EMPTY_JSON_OBJECT,
    JSONType,
    TenantScopedMixin,
    UTCDateTime,
    db_enum,
    tenant_table_args,
)


class NotificationChannel(enum.StrEnum):
    in_app = "in_app"
    email = "email"


class NotificationStatus(enum.StrEnum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    # The dead state: no more attempts (the maximum was reached, or the message cannot be sent at all).
    failed = "failed"
    cancelled = "cancelled"


class Notification(TenantScopedMixin, Base):
    __tablename__ = "notifications"
    __table_args__ = tenant_table_args(
        # The worker's queue scan: what is due next.
        Index(None, "status", "nextAttemptAt"),
        Index(None, "tenantId", "recipientId", "readAt"),
        # The same reminder for the same thing is queued once (0016; ON CONFLICT DO NOTHING).
        Index(None, "tenantId", "dedupeKey", unique=True),
    )
    # A queue, not a record of a change: its rows carry their own history (status, attempts, lastError),
    # and the event that queued them is in the trail already. The worker's updates are not audited.
    __audited__ = False

    recipient_id: Mapped[uuid.UUID | None] = mapped_column(
        "recipientId", Uuid, ForeignKey("users.id", ondelete="CASCADE")
    )
    # For people without a login (e.g. an employer contact).
    recipient_email: Mapped[str | None] = mapped_column("recipientEmail", String(320))
    channel: Mapped[NotificationChannel] = mapped_column(db_enum(NotificationChannel))
    template: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default=EMPTY_JSON_OBJECT)
    status: Mapped[NotificationStatus] = mapped_column(
        db_enum(NotificationStatus), default=NotificationStatus.queued, server_default="queued"
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column("nextAttemptAt", UTCDateTime())
    last_error: Mapped[str | None] = mapped_column("lastError", Text)
    sent_at: Mapped[datetime | None] = mapped_column("sentAt", UTCDateTime())
    read_at: Mapped[datetime | None] = mapped_column("readAt", UTCDateTime())
    # Added by 0016.
    dedupe_key: Mapped[str | None] = mapped_column("dedupeKey", Text)
    language: Mapped[str] = mapped_column(Text, default="en", server_default=text("'en'"))
    # A worker's claim: past this instant another worker takes the row again (the first one died).
    lease_until: Mapped[datetime | None] = mapped_column("leaseUntil", UTCDateTime())


class NotificationPreference(TenantScopedMixin, Base):
    """Whether a user wants a category of notifications by e-mail in a tenant (0016). No row: yes.
    Security notices come whatever the row says."""

    __tablename__ = "notification_preferences"
    __table_args__ = tenant_table_args(UniqueConstraint("tenantId", "userId", "category"))

    user_id: Mapped[uuid.UUID] = mapped_column("userId", Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(32))
    email: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
