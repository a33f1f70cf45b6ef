import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from mobility.core.pagination import ListParams, sort_by
from mobility.core.schemas import IsoDateTime, OutputModel


class AuditLogRead(OutputModel):
    id: uuid.UUID
    tenant_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    action: str
    entity_type: str
    entity_id: uuid.UUID | None
    # The changed fields only (all of them for a create or delete); secrets show as "[redacted]".
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    ip_address: str | None
    request_id: str | None
    created_at: datetime


class AuditLogListParams(ListParams):
    """Newest first by default (`sort=-createdAt`); `sort=createdAt` for oldest first."""

    sort: sort_by("createdAt") = Field(default=None, description="Default: -createdAt")
    entity_type: str | None = Field(default=None, min_length=1, max_length=64, description="e.g. users")
    entity_id: uuid.UUID | None = None
    actor_id: uuid.UUID | None = None
    action: str | None = Field(default=None, min_length=1, max_length=64, description="e.g. user.suspend")
    from_: IsoDateTime | None = Field(default=None, alias="from", description="Inclusive")
    to: IsoDateTime | None = Field(default=None, description="Exclusive")
