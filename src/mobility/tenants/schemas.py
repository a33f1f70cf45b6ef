import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AnyUrl, EmailStr, Field, UrlConstraints, field_validator

from mobility.core.pagination import ListParams, sort_by
from mobility.core.schemas import InputModel, OutputModel, UpdateModel, plain_value

# Upper-case letters, digits and dashes, not starting or ending with a dash (login compares upper-case).
TENANT_CODE_PATTERN = r"^[A-Z0-9](?:[A-Z0-9-]{0,30}[A-Z0-9])?$"
HttpsUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["https"], max_length=2048)]


class Branding(InputModel):
    logo_url: HttpsUrl | None = None
    color_hex: str | None = Field(default=None, pattern=r"^#[0-9A-Fa-f]{6}$", description="#RRGGBB")

    @field_validator("color_hex")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value


class ContactInfo(InputModel):
    name: str | None = Field(default=None, min_length=1, max_length=200, description="Contact person")
    email: EmailStr | None = None
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 ()./-]{3,40}$")
    address: str | None = Field(default=None, min_length=1, max_length=500)
    website: HttpsUrl | None = None


class TenantCreate(InputModel):
    name: str = Field(min_length=1, max_length=200)
    code: str = Field(pattern=TENANT_CODE_PATTERN, description="A-Z, 0-9 and dashes; never changes")
    branding: Branding = Field(default_factory=Branding)
    contact_info: ContactInfo = Field(default_factory=ContactInfo)

    def values(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "code": self.code,
            "branding": plain_value(self.branding),
            "contact_info": plain_value(self.contact_info),
        }


class TenantUpdate(UpdateModel):
    """Name, branding and contact details; a branding or contactInfo sent replaces the old one whole."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    branding: Branding | None = None
    contact_info: ContactInfo | None = None


class TenantRead(OutputModel):
    id: uuid.UUID
    name: str
    code: str
    branding: dict[str, Any]
    contact_info: dict[str, Any]
    is_active: bool
    created_at: datetime
    updated_at: datetime


class TenantListParams(ListParams):
    sort: sort_by("name", "code", "createdAt") = Field(default=None, description="Default: name")
    active: bool | None = None
    q: str | None = Field(default=None, min_length=1, max_length=100, description="In name or code")
