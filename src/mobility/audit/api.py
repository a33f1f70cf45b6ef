"""The audit trail of the current tenant (Admin): filter by entity, actor, action and time."""

from typing import Annotated

from fastapi import APIRouter, Query

from mobility.audit import service
from mobility.audit.schemas import AuditLogListParams, AuditLogRead
from mobility.core.auth import require
from mobility.core.deps import DbSession
from mobility.core.pagination import Page
from mobility.core.routing import ApiRoute

router = APIRouter(prefix="/api/v1/audit-logs", tags=["audit"], route_class=ApiRoute)


@router.get("", response_model=Page[AuditLogRead], dependencies=[require("audit_logs:read")])
async def list_audit_logs(session: DbSession, params: Annotated[AuditLogListParams, Query()]):
    rows, next_cursor = await service.list_audit_logs(
        session,
        params=params,
        entity_type=params.entity_type,
        entity_id=params.entity_id,
        actor_id=params.actor_id,
        action=params.action,
        since=params.from_,
        until=params.to,
    )
    return Page[AuditLogRead](items=rows, next_cursor=next_cursor)
