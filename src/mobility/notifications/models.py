"""The notification queue: rows written with the event that causes them, delivered by a worker."""

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, Uuid
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
    failed = "failed"
    cancelled = "cancelled"


class Notification(TenantScopedMixin, Base):
    __tablename__ = "notifications"
    __table_args__ = tenant_table_args(
        # The worker's queue scan: what is due next.
        Index(None, "status", "nextAttemptAt"),
        Index(None, "tenantId", "recipientId", "readAt"),
    )

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
