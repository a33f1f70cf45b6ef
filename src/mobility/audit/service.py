"""Reading the audit trail. It is written by the data layer (core.audit) on every flush, never here;
the data layer also limits what is read to the current tenant's rows."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.audit.models import AuditLog
from mobility.core.errors import InvalidInput
from mobility.core.pagination import PageParams, paginate, time_key

AUDIT_SORT_KEYS = {"createdAt": time_key(AuditLog.created_at)}


async def list_audit_logs(
    session: AsyncSession,
    *,
    params: PageParams,
    entity_type: str | None = None,
    entity_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[AuditLog], str | None]:
    if since is not None and until is not None and since >= until:
        raise InvalidInput("`from` must be before `to`.", field="from")
    statement = select(AuditLog)
    if entity_type is not None:
        statement = statement.where(AuditLog.entity_type == entity_type)
    if entity_id is not None:
        statement = statement.where(AuditLog.entity_id == entity_id)
    if actor_id is not None:
        statement = statement.where(AuditLog.actor_id == actor_id)
    if action is not None:
        statement = statement.where(AuditLog.action == action)
    if since is not None:
        statement = statement.where(AuditLog.created_at >= since)
    if until is not None:
        statement = statement.where(AuditLog.created_at < until)
    return await paginate(
        session,
        statement,
        params=params,
        sort_keys=AUDIT_SORT_KEYS,
        default_sort="-createdAt",
        id_column=AuditLog.id,
    )
