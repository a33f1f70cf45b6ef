"""API shapes of webhook endpoints and their delivery log."""

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from mobility.core.pagination import ListParams, sort_by
from mobility.core.schemas import InputModel, OutputModel, UpdateModel
from mobility.notifications.models import NotificationStatus
from mobility.webhooks.service import EventType

# The types an endpoint may subscribe to (the ping is sent on demand to one endpoint).
SubscribableEvent = EventType


class EndpointCreate(InputModel):
    url: str = Field(min_length=1, max_length=2048, description="https://...; plain http only on-premises")
    description: str | None = Field(default=None, max_length=200)
    event_types: list[SubscribableEvent] = Field(min_length=1, max_length=len(EventType))


class EndpointUpdate(UpdateModel):
    nullable = frozenset({"description"})

    url: str | None = Field(default=None, min_length=1, max_length=2048)
    description: str | None = Field(default=None, max_length=200)
    event_types: list[SubscribableEvent] | None = Field(default=None, min_length=1, max_length=len(EventType))
    is_active: bool | None = Field(default=None, description="false: disable; true: enable again")


class EndpointRead(OutputModel):
    id: uuid.UUID
    url: str
    description: str | None
    event_types: list[str]
    is_active: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    failing_since: datetime | None
    previous_secret_until: datetime | None = Field(
        description="After a rotation: until when the old secret also signs"
    )
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointRead):
    secret: str = Field(description="The signing secret: shown this once")


class SecretRotated(OutputModel):
    secret: str = Field(description="The new signing secret: shown this once")
    previous_secret_until: datetime


class EndpointListParams(ListParams):
    sort: sort_by("createdAt") = None


class DeliveryListParams(ListParams):
    sort: sort_by("createdAt") = None
    endpoint_id: uuid.UUID | None = None
    status: NotificationStatus | None = None


class DeliveryRead(OutputModel):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    payload: dict[str, Any]
    status: NotificationStatus = Field(description="`failed` is the dead state: no more attempts")
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    response_status: int | None
    sent_at: datetime | None
    created_at: datetime
