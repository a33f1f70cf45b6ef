import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import AnyUrl, EmailStr, Field, UrlConstraints, field_validator, model_validator

from mobility.core.pagination import PageParams, sort_by
from mobility.core.schemas import InputModel, OutputModel

# Upper-case letters, digits and dashes, not starting or ending with a dash (login compares upper-case).
TENANT_CODE_PATTERN = r"^[A-Z0-9](?:[A-Z0-9-]{0,30}[A-Z0-9])?$"
HttpsUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["https"], max_length=2048)]


class UpdateModel(InputModel):
    """A PATCH body: every field optional; a field that is sent must carry a value, unless it is one of
    `nullable` (then null clears it)."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_nulls(self):
        nulls = sorted(
            (field.alias or name)
            for name, field in type(self).model_fields.items()
            if name in self.model_fields_set and getattr(self, name) is None and name not in self.nullable
        )
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null; leave a field out to keep its value")
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        # The document says what `_no_nulls` enforces: only the `nullable` fields take null.
        schema = handler(core_schema)
        resolved = handler.resolve_ref_schema(schema)
        for name, field in cls.model_fields.items():
            prop = resolved.get("properties", {}).get(field.alias or name)
            if name in cls.nullable or prop is None or "anyOf" not in prop:
                continue
            options = [option for option in prop.pop("anyOf") if option.get("type") != "null"]
            prop.pop("default", None)
            if len(options) == 1:
                prop.update(options[0])
            else:
                prop["anyOf"] = options
        return schema

    def changes(self) -> dict[str, Any]:
        """The fields sent, as plain values (snake_case keys)."""
        return {name: _plain(getattr(self, name)) for name in self.model_fields_set}


def _plain(value: Any) -> Any:
    if isinstance(value, InputModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    return value


class ListParams(PageParams):
    """Query parameters of a list: camelCase, unknown ones refused (core.schemas.QueryModel)."""


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
            "branding": _plain(self.branding),
            "contact_info": _plain(self.contact_info),
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
