"""Tenants: managed by System Admins; an Admin may read the tenant they act in."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from mobility.core.auth import require
from mobility.core.deps import DbSession
from mobility.core.openapi import problem_responses
from mobility.core.pagination import Page
from mobility.core.routing import ApiRoute
from mobility.tenants import service
from mobility.tenants.schemas import TenantCreate, TenantListParams, TenantRead, TenantUpdate

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"], route_class=ApiRoute)


@router.get("", response_model=Page[TenantRead], dependencies=[require("tenants:read")])
async def list_tenants(session: DbSession, params: Annotated[TenantListParams, Query()]):
    rows, next_cursor = await service.list_tenants(session, params=params, active=params.active, q=params.q)
    return Page[TenantRead](items=rows, next_cursor=next_cursor)


@router.post(
    "",
    response_model=TenantRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=[require("tenants:create")],
    responses=problem_responses(409),
)
async def create_tenant(body: TenantCreate, session: DbSession):
    return await service.create_tenant(session, **body.values())


@router.get("/{tenant_id}", response_model=TenantRead, dependencies=[require("tenants:read")])
async def get_tenant(tenant_id: uuid.UUID, session: DbSession):
    return await service.get_tenant(session, tenant_id)


@router.patch(
    "/{tenant_id}",
    response_model=TenantRead,
    dependencies=[require("tenants:update")],
    responses=problem_responses(409),
)
async def update_tenant(tenant_id: uuid.UUID, body: TenantUpdate, session: DbSession):
    return await service.update_tenant(session, tenant_id, body.changes())


@router.post("/{tenant_id}/deactivate", response_model=TenantRead, dependencies=[require("tenants:delete")])
async def deactivate_tenant(tenant_id: uuid.UUID, session: DbSession):
    return await service.set_active(session, tenant_id, False)


@router.post("/{tenant_id}/activate", response_model=TenantRead, dependencies=[require("tenants:delete")])
async def activate_tenant(tenant_id: uuid.UUID, session: DbSession):
    return await service.set_active(session, tenant_id, True)
