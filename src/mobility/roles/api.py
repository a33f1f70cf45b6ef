"""Roles: the global system roles (read-only) and the current tenant's custom roles."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from mobility.core.auth import require
from mobility.core.deps import DbSession
from mobility.core.openapi import problem_responses
from mobility.core.pagination import Page
from mobility.core.routing import ApiRoute
from mobility.roles import service
from mobility.roles.schemas import RoleCreate, RoleListParams, RoleRead, RoleUpdate

router = APIRouter(prefix="/api/v1/roles", tags=["roles"], route_class=ApiRoute)


@router.get("", response_model=Page[RoleRead], dependencies=[require("roles:read")])
async def list_roles(session: DbSession, params: Annotated[RoleListParams, Query()]):
    rows, next_cursor = await service.list_roles(session, params=params, system=params.system, q=params.q)
    return Page[RoleRead](items=rows, next_cursor=next_cursor)


@router.post(
    "",
    response_model=RoleRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=[require("roles:create")],
    responses=problem_responses(409),
)
async def create_role(body: RoleCreate, session: DbSession):
    return await service.create_role(
        session, name=body.name, description=body.description, permissions=body.permissions
    )


@router.get("/{role_id}", response_model=RoleRead, dependencies=[require("roles:read")])
async def get_role(role_id: uuid.UUID, session: DbSession):
    return await service.get_role(session, role_id)


@router.patch(
    "/{role_id}",
    response_model=RoleRead,
    dependencies=[require("roles:update")],
    responses=problem_responses(409),
)
async def update_role(role_id: uuid.UUID, body: RoleUpdate, session: DbSession):
    return await service.update_role(session, role_id, body.changes())


@router.delete(
    "/{role_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[require("roles:delete")],
    responses=problem_responses(409),
)
async def delete_role(role_id: uuid.UUID, session: DbSession) -> Response:
    await service.delete_role(session, role_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
