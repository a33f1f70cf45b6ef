import uuid
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator, model_validator

from mobility.authz.permissions import ALL_PERMISSIONS, permissions_for_role
from mobility.core.pagination import ListParams, sort_by
from mobility.core.schemas import InputModel, OutputModel, UpdateModel


def _known_permissions(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    unknown = sorted(set(values).difference(ALL_PERMISSIONS))
    if unknown:
        raise ValueError(f"unknown permissions: {', '.join(unknown)}")
    return sorted(set(values))


class RoleCreate(InputModel):
    """A custom role of the current tenant."""

    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    permissions: list[str] = Field(
        default_factory=list, max_length=len(ALL_PERMISSIONS), description='e.g. "candidates:read"'
    )

    _check_permissions = field_validator("permissions")(_known_permissions)


class RoleUpdate(UpdateModel):
    nullable = frozenset({"description"})

    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    permissions: list[str] | None = Field(default=None, max_length=len(ALL_PERMISSIONS))

    _check_permissions = field_validator("permissions")(_known_permissions)


class RoleRead(OutputModel):
    id: uuid.UUID
    name: str
    description: str | None
    # What the role grants: the matrix's cell for a system role, the stored list for a custom one.
    permissions: list[str]
    system_role: bool
    # Null for the global roles.
    tenant_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime | None

    @model_validator(mode="before")
    @classmethod
    def _effective_permissions(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return data
        return {
            "id": data.id,
            "name": data.name,
            "description": data.description,
            "permissions": sorted(permissions_for_role(data.name, data.permissions)),
            "system_role": data.system_role,
            "tenant_id": data.tenant_id,
            "created_at": data.created_at,
            "updated_at": data.updated_at,
        }


class RoleListParams(ListParams):
    sort: sort_by("name", "createdAt") = Field(default=None, description="Default: name")
    system: bool | None = Field(default=None, description="true: the system roles; false: custom ones")
    q: str | None = Field(default=None, min_length=1, max_length=100, description="In the name")
