import uuid
from datetime import datetime

from pydantic import EmailStr, Field

from mobility.core.schemas import InputModel, OutputModel, Password


class LoginRequest(InputModel):
    email: EmailStr
    password: Password
    tenant_code: str | None = Field(default=None, max_length=32)
    otp: str | None = Field(default=None, pattern=r"^\d{6}$")
    recovery_code: str | None = Field(default=None, max_length=32)


class LoginResponse(OutputModel):
    token: str
    token_type: str = "bearer"
    expires_at: datetime
    tenant_id: uuid.UUID


class SwitchTenantRequest(InputModel):
    tenant_code: str = Field(min_length=1, max_length=32)


class SessionRead(OutputModel):
    id: uuid.UUID
    tenant_id: uuid.UUID | None
    created_at: datetime
    last_seen_at: datetime | None
    expires_at: datetime
    ip_address: str | None
    user_agent: str | None
    current: bool = False


class PasswordChange(InputModel):
    current_password: Password
    new_password: Password


class PasswordChanged(OutputModel):
    other_sessions_ended: int


class TotpSetup(OutputModel):
    secret: str
    otpauth_uri: str


class TotpConfirm(InputModel):
    code: str = Field(pattern=r"^\d{6}$")


class RecoveryCodes(OutputModel):
    recovery_codes: list[str]


class TotpBegin(InputModel):
    """Setting up 2FA asks for the password: a stolen session must not be able to enrol an attacker's
    authenticator (and so lock the owner out)."""

    password: Password


class ReAuthentication(InputModel):
    password: Password
    code: str | None = Field(
        default=None, max_length=32, description="A current TOTP code or a recovery code"
    )


class MembershipRead(OutputModel):
    tenant_id: uuid.UUID
    tenant_code: str
    tenant_name: str
    role: str
    is_primary: bool


class MeRead(OutputModel):
    id: uuid.UUID
    email: str
    name: str | None
    status: str
    two_factor_enabled: bool
    two_factor_enrollment_required: bool
    is_system_admin: bool
    tenant_id: uuid.UUID
    role: str
    permissions: list[str]
    tenants: list[MembershipRead]


class PasswordResetRequest(InputModel):
    email: EmailStr


class PasswordResetRequested(OutputModel):
    detail: str


class PasswordResetComplete(InputModel):
    token: str = Field(min_length=1, max_length=200)
    password: Password


class PasswordResetDone(OutputModel):
    sessions_ended: int
