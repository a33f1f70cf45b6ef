"""Users of the current tenant (Admin), and accepting an invitation (public)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from mobility.core.auth import client_address, require
from mobility.core.deps import DbSession
from mobility.core.openapi import problem_responses
from mobility.core.pagination import Page
from mobility.core.routing import ApiRoute
from mobility.users import service
from mobility.users.schemas import (
    InvitationAccept,
    InvitationRead,
    MembershipUpdate,
    UserInvite,
    UserInvited,
    UserListParams,
    UserRead,
    UserUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["users"], route_class=ApiRoute)


@router.get("/users", response_model=Page[UserRead], dependencies=[require("users:read")])
async def list_users(session: DbSession, params: Annotated[UserListParams, Query()]):
    rows, next_cursor = await service.list_users(
        session, params=params, status=params.status, role_id=params.role_id, q=params.q
    )
    return Page[UserRead](items=rows, next_cursor=next_cursor)


@router.post(
    "/users",
    response_model=UserInvited,
    status_code=status.HTTP_201_CREATED,
    dependencies=[require("users:create")],
    responses=problem_responses(409),
)
async def invite_user(body: UserInvite, session: DbSession):
    invited = await service.invite(session, email=str(body.email), name=body.name, role_id=body.role_id)
    invitation = (
        InvitationRead(
            id=invited.invitation.id, token=invited.token, expires_at=invited.invitation.expires_at
        )
        if invited.invitation is not None
        else None
    )
    return UserInvited(user=UserRead.model_validate(invited.user), invitation=invitation)


@router.get("/users/{user_id}", response_model=UserRead, dependencies=[require("users:read")])
async def get_user(user_id: uuid.UUID, session: DbSession):
    return await service.read_member(session, user_id)


@router.patch(
    "/users/{user_id}",
    response_model=UserRead,
    dependencies=[require("users:update")],
    responses=problem_responses(409),
)
async def update_user(user_id: uuid.UUID, body: UserUpdate, session: DbSession):
    return await service.update_user(session, user_id, **body.changes())


@router.post(
    "/users/{user_id}/suspend",
    response_model=UserRead,
    dependencies=[require("users:update")],
    responses=problem_responses(409),
)
async def suspend_user(user_id: uuid.UUID, session: DbSession):
    return await service.suspend(session, user_id)


@router.post("/users/{user_id}/reactivate", response_model=UserRead, dependencies=[require("users:update")])
async def reactivate_user(user_id: uuid.UUID, session: DbSession):
    return await service.reactivate(session, user_id)


@router.post("/users/{user_id}/reset-2fa", response_model=UserRead, dependencies=[require("users:update")])
async def reset_two_factor(user_id: uuid.UUID, session: DbSession):
    return await service.reset_two_factor(session, user_id)


@router.put(
    "/users/{user_id}/membership",
    response_model=UserRead,
    dependencies=[require("users:update")],
    responses=problem_responses(409),
)
async def set_membership(user_id: uuid.UUID, body: MembershipUpdate, session: DbSession):
    return await service.set_membership(session, user_id, role_id=body.role_id, is_primary=body.is_primary)


@router.delete(
    "/users/{user_id}/membership",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[require("users:delete")],
    responses=problem_responses(409),
)
async def remove_membership(user_id: uuid.UUID, session: DbSession) -> Response:
    await service.remove_membership(session, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/invitations/accept", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(404, 410)
)
async def accept_invitation(body: InvitationAccept, request: Request, session: DbSession) -> Response:
    """Public: the token from the invitation is the credential. Then log in with e-mail and password."""
    await service.accept_invitation(
        session,
        token=body.token,
        password=body.password,
        ip=client_address(request),
        request_id=getattr(request.state, "request_id", None),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
