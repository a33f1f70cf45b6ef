"""Base shapes of the API: camelCase JSON (like the columns and a JS front end expect).

Inputs forbid unknown fields: a field the caller may not set (`tenantId`, `createdBy`, `systemRole`,
...) is refused with 422, never silently dropped or, worse, applied (mass assignment).
"""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class InputModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_strip_whitespace=True
    )


class OutputModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)
