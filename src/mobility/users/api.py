"""Users of the current tenant (Admin), invitations (the tenant's and one's own), and setting up a new
account with its invitation's token (public)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from mobility.core.auth import CurrentScope, client_address, require
from mobility.core.deps import DbSession
from mobility.core.openapi import problem_responses
from mobility.core.pagination import Page
from mobility.core.routing import ApiRoute
from mobility.users import service
from mobility.users.schemas import (
    InvitationAccept,
    InvitationListParams,
    InvitationRead,
    MembershipUpdate,
    MeUpdate,
    MyInvitationRead,
    UserInvite,
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
    response_model=InvitationRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=[require("users:create")],
    responses=problem_responses(409),
)
async def invite_user(body: UserInvite, request: Request, session: DbSession):
    """A pending invitation, the same whether the address has an account elsewhere or not, e-mailed to
    the address. The person joins when they accept it (a new account: with the link that reaches only
    them)."""
    invited = await service.invite(
        session,
        email=str(body.email),
        name=body.name,
        role_id=body.role_id,
        public_url=request.app.state.settings.public_url,
    )
    return invited.view


@router.get("/invitations", response_model=Page[InvitationRead], dependencies=[require("users:read")])
async def list_invitations(session: DbSession, params: Annotated[InvitationListParams, Query()]):
    rows, next_cursor = await service.list_invitations(session, params=params, status=params.status)
    return Page[InvitationRead](items=rows, next_cursor=next_cursor)


@router.get("/users/{user_id}", response_model=UserRead, dependencies=[require("users:read")])
async def get_user(user_id: uuid.UUID, session: DbSession):
    return await service.read_member(session, user_id)


@router.patch(
    "/users/{user_id}",
    response_model=UserRead,
    dependencies=[require("accounts:update")],
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


@router.post(
    "/users/{user_id}/suspend-account", response_model=UserRead, dependencies=[require("accounts:update")]
)
async def suspend_account(user_id: uuid.UUID, session: DbSession):
    return await service.suspend_account(session, user_id)


@router.post(
    "/users/{user_id}/reactivate-account", response_model=UserRead, dependencies=[require("accounts:update")]
)
async def reactivate_account(user_id: uuid.UUID, session: DbSession):
    return await service.reactivate_account(session, user_id)


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
    """Public: a new account's first password, with the token of the invitation that created it (the
    token is the credential). Then log in with e-mail and password."""
    await service.accept_invitation(
        session,
        token=body.token,
        password=body.password,
        ip=client_address(request),
        request_id=getattr(request.state, "request_id", None),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# After /invitations/accept: for a method neither takes there, the literal path answers the 405.
@router.delete(
    "/invitations/{invitation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[require("users:create")],
)
async def revoke_invitation(invitation_id: uuid.UUID, session: DbSession) -> Response:
    await service.revoke_invitation(session, invitation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch("/me", status_code=status.HTTP_204_NO_CONTENT)
async def update_me(body: MeUpdate, session: DbSession, _: CurrentScope) -> Response:
    await service.rename_me(session, name=body.name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me/invitations", response_model=list[MyInvitationRead])
async def my_invitations(session: DbSession, _: CurrentScope):
    """My pending invitations, from every tenant."""
    return await service.my_invitations(session)


@router.post("/me/invitations/{invitation_id}/accept", status_code=status.HTTP_204_NO_CONTENT)
async def accept_my_invitation(invitation_id: uuid.UUID, session: DbSession, _: CurrentScope) -> Response:
    """Join the inviting tenant with the invitation's role (then switch to it, or log in there)."""
    await service.accept_my_invitation(session, invitation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/me/invitations/{invitation_id}/decline", status_code=status.HTTP_204_NO_CONTENT)
async def decline_my_invitation(invitation_id: uuid.UUID, session: DbSession, _: CurrentScope) -> Response:
    await service.decline_my_invitation(session, invitation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
