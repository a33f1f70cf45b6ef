import uuid
from datetime import datetime
from typing import Literal

from pydantic import EmailStr, Field

from mobility.core.pagination import ListParams, sort_by
from mobility.core.schemas import InputModel, OutputModel, Password, UpdateModel

UserStatus = Literal["active", "invited", "suspended"]


class UserInvite(InputModel):
    """Invite someone to the current tenant with a role (global, or one of the tenant's own)."""

    email: EmailStr = Field(max_length=254)
    name: str = Field(min_length=1, max_length=200)
    role_id: uuid.UUID


class UserUpdate(UpdateModel):
    """Only the name (account-wide: a System Admin's); the e-mail address is the login."""

    name: str | None = Field(default=None, min_length=1, max_length=200)


class MembershipUpdate(InputModel):
    """The user's role in the current tenant; `isPrimary: true` makes this their primary tenant."""

    role_id: uuid.UUID
    is_primary: bool | None = Field(
        default=None, description="true: this becomes the user's primary tenant; leave out to keep"
    )


class UserRead(OutputModel):
    """A member of the current tenant, with the role held there. Never any secret."""

    id: uuid.UUID
    email: str
    name: str | None
    status: UserStatus | str
    two_factor_enabled: bool
    role_id: uuid.UUID
    role_name: str
    is_primary: bool
    is_system_admin: bool
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime | None


InvitationStatus = Literal["pending", "expired", "declined", "accepted"]


class InvitationRead(OutputModel):
    """An invitation as the inviting tenant sees it: the e-mail and name its Admin typed and the role
    offered. The same for every address, whether it has an account elsewhere or not; the token of a new
    account's invitation reaches only its owner, never this answer."""

    id: uuid.UUID
    email: str | None
    name: str | None
    role_id: uuid.UUID | None
    role_name: str | None
    status: InvitationStatus
    expires_at: datetime
    created_at: datetime
    declined_at: datetime | None


class MyInvitationRead(OutputModel):
    """A pending invitation of mine: which tenant, which role."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_code: str
    tenant_name: str
    role_id: uuid.UUID | None
    role_name: str | None
    expires_at: datetime
    created_at: datetime


class InvitationListParams(ListParams):
    sort: sort_by("email", "createdAt") = Field(default=None, description="Default: -createdAt")
    status: Literal["pending", "expired", "declined"] | None = None


class MeUpdate(InputModel):
    """One's own account: the name (the e-mail address is the login and does not change here)."""

    name: str = Field(min_length=1, max_length=200)


class InvitationAccept(InputModel):
    token: str = Field(min_length=1, max_length=200)
    password: Password


class UserListParams(ListParams):
    sort: sort_by("email", "createdAt") = Field(default=None, description="Default: email")
    status: UserStatus | None = None
    role_id: uuid.UUID | None = None
    q: str | None = Field(default=None, min_length=1, max_length=100, description="In e-mail or name")
