"""API shapes of notifications: one's own in the app, one's e-mail preferences, the tenant's outbox."""

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from mobility.core.pagination import ListParams, sort_by
from mobility.core.schemas import InputModel, OutputModel, QueryModel
from mobility.notifications.models import NotificationChannel, NotificationStatus


class MyNotificationParams(QueryModel):
    limit: int = Field(default=25, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=1024)
    unread_only: bool = False


class MyNotificationRead(OutputModel):
    id: uuid.UUID
    template: str
    category: str
    title: str = Field(description="The notification's subject line, rendered")
    payload: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class UnreadCount(OutputModel):
    unread: int


class MarkedRead(OutputModel):
    marked: int


class PreferenceRead(OutputModel):
    category: str
    email: bool
    locked: bool = Field(description="Security and account e-mails always come")


class PreferenceUpdate(InputModel):
    email: bool


class OutboxParams(ListParams):
    sort: sort_by("createdAt") = None
    status: NotificationStatus | None = None
    channel: NotificationChannel | None = None


class OutboxRead(OutputModel):
    id: uuid.UUID
    recipient_id: uuid.UUID | None
    recipient_email: str | None
    channel: NotificationChannel
    template: str
    status: NotificationStatus = Field(description="`failed` is the dead state: no more attempts")
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    sent_at: datetime | None
    created_at: datetime
