"""Logging in and out, switching tenant, and what a user does with their own account (/me)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status

from mobility.auth import caller, password_reset, sessions, two_factor
from mobility.auth import login as login_service  # beside the endpoint named login
from mobility.auth.schemas import (
    LoginRequest,
    LoginResponse,
    MembershipRead,
    MeRead,
    PasswordChange,
    PasswordChanged,
    PasswordResetComplete,
    PasswordResetDone,
    PasswordResetRequest,
    PasswordResetRequested,
    ReAuthentication,
    RecoveryCodes,
    SessionRead,
    SwitchTenantRequest,
    TotpBegin,
    TotpConfirm,
    TotpSetup,
)
from mobility.core.auth import CurrentScope, client_address
from mobility.core.deps import DbSession
from mobility.core.openapi import problem_responses
from mobility.core.routing import ApiRoute
from mobility.core.schemas import Text

router = APIRouter(prefix="/api/v1", tags=["auth"], route_class=ApiRoute)


def _cookie_attributes(request: Request) -> dict:
    settings = request.app.state.settings
    return {
        "key": settings.session_cookie_name,
        "httponly": True,
        "secure": settings.session_cookie_secure,
        "samesite": "strict",
        "path": "/",
    }


def _set_cookie(request: Request, response: Response, token: str, max_age: int) -> None:
    response.set_cookie(value=token, max_age=max_age, **_cookie_attributes(request))


@router.post("/auth/login", response_model=LoginResponse, responses=problem_responses(401, 403, 422, 429))
async def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    session: DbSession,
    user_agent: Annotated[Text | None, Header(max_length=2048)] = None,
):
    settings = request.app.state.settings
    result = await login_service.login(
        session,
        settings=settings,
        email=body.email,
        password=body.password,
        tenant_code=body.tenant_code,
        otp=body.otp,
        recovery_code=body.recovery_code,
        ip=client_address(request),
        user_agent=user_agent,
        request_id=getattr(request.state, "request_id", None),
    )
    _set_cookie(request, response, result.token, settings.session_absolute_timeout_hours * 3600)
    return LoginResponse(
        token=result.token, expires_at=result.session.expires_at, tenant_id=result.session.tenant_id
    )


RESET_REQUESTED = (
    "If an active account has this e-mail address, a link to choose a new password is on its way; "
    "it works once, for a short time."
)


@router.post(
    "/auth/password-reset",
    response_model=PasswordResetRequested,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(429),
)
async def request_password_reset(body: PasswordResetRequest, request: Request, session: DbSession):
    """A forgotten password: the same answer whatever the e-mail; the link goes to the address only."""
    await password_reset.request_reset(
        session,
        settings=request.app.state.settings,
        email=str(body.email),
        ip=client_address(request),
        request_id=getattr(request.state, "request_id", None),
    )
    return PasswordResetRequested(detail=RESET_REQUESTED)


@router.post(
    "/auth/password-reset/complete", response_model=PasswordResetDone, responses=problem_responses(404, 410)
)
async def complete_password_reset(body: PasswordResetComplete, request: Request, session: DbSession):
    """Set a new password with the e-mailed link's token: every session of the account ends."""
    ended = await password_reset.complete_reset(
        session,
        token=body.token,
        password=body.password,
        ip=client_address(request),
        request_id=getattr(request.state, "request_id", None),
    )
    return PasswordResetDone(sessions_ended=ended)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(request: Request, response: Response, session: DbSession, _: CurrentScope) -> Response:
    await login_service.logout(session)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    # With the attributes it was set with: a browser may refuse to let a cookie without Secure
    # replace a Secure one, and the session cookie would then outlive the logout.
    response.delete_cookie(**_cookie_attributes(request))
    return response


@router.post("/auth/switch-tenant", response_model=MeRead)
async def switch_tenant(body: SwitchTenantRequest, request: Request, session: DbSession, scope: CurrentScope):
    scope = await login_service.switch_tenant(
        session, settings=request.app.state.settings, tenant_code=body.tenant_code
    )
    return await _me(session, scope)


async def _me(session, scope) -> MeRead:
    user = await caller.current_user(session)
    return MeRead(
        id=user.id,
        email=user.email,
        name=user.name,
        status=user.status,
        two_factor_enabled=user.two_factor_enabled,
        two_factor_enrollment_required=scope.two_factor_enrollment_required,
        is_system_admin=scope.is_system_admin,
        tenant_id=scope.tenant_id,
        role=scope.role,
        permissions=sorted(scope.permissions),
        tenants=[
            MembershipRead(
                tenant_id=tenant.id,
                tenant_code=tenant.code,
                tenant_name=tenant.name,
                role=role.name,
                is_primary=membership.is_primary,
            )
            for membership, tenant, role in await caller.memberships(session)
        ],
    )


@router.get("/me", response_model=MeRead)
async def me(session: DbSession, scope: CurrentScope):
    return await _me(session, scope)


@router.get("/me/sessions", response_model=list[SessionRead])
async def my_sessions(request: Request, session: DbSession, scope: CurrentScope):
    rows = await sessions.list_sessions(session, request.app.state.settings)
    return [
        SessionRead.model_validate(row).model_copy(update={"current": row.id == scope.session_id})
        for row in rows
    ]


@router.delete("/me/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def end_my_session(session_id: uuid.UUID, session: DbSession, scope: CurrentScope) -> None:
    await sessions.revoke_own_session(session, session_id)


@router.post("/me/password", response_model=PasswordChanged, responses=problem_responses(429))
async def change_password(body: PasswordChange, request: Request, session: DbSession, _: CurrentScope):
    ended = await login_service.change_password(
        session,
        settings=request.app.state.settings,
        current_password=body.current_password,
        new_password=body.new_password,
    )
    return PasswordChanged(other_sessions_ended=ended)


@router.post("/me/2fa/setup", response_model=TotpSetup, responses=problem_responses(429))
async def begin_two_factor(body: TotpBegin, request: Request, session: DbSession, _: CurrentScope):
    secret, uri = await two_factor.begin_totp(
        session, settings=request.app.state.settings, password=body.password
    )
    return TotpSetup(secret=secret, otpauth_uri=uri)


@router.post("/me/2fa/confirm", response_model=RecoveryCodes)
async def confirm_two_factor(body: TotpConfirm, session: DbSession, _: CurrentScope):
    return RecoveryCodes(recovery_codes=await two_factor.confirm_totp(session, body.code))


@router.post("/me/2fa/disable", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(429))
async def disable_two_factor(
    body: ReAuthentication, request: Request, session: DbSession, _: CurrentScope
) -> None:
    await two_factor.disable_totp(
        session, settings=request.app.state.settings, password=body.password, code=body.code
    )


@router.post("/me/2fa/recovery-codes", response_model=RecoveryCodes, responses=problem_responses(429))
async def new_recovery_codes(body: ReAuthentication, request: Request, session: DbSession, _: CurrentScope):
    codes = await two_factor.regenerate_recovery_codes(
        session, settings=request.app.state.settings, password=body.password, code=body.code
    )
    return RecoveryCodes(recovery_codes=codes)
