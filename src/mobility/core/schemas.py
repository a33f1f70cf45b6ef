"""Base shapes of the API: camelCase JSON (like the columns and a JS front end expect).

Inputs forbid unknown fields: a field the caller may not set (`tenantId`, `createdBy`, `systemRole`,
...) is refused with 422, never silently dropped or, worse, applied (mass assignment).
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel

# A password is taken exactly as typed: InputModel strips the whitespace around strings, which would
# silently change a password (and lock out one set with surrounding spaces through the CLI or seed).
Password = Annotated[str, StringConstraints(strip_whitespace=False, min_length=1, max_length=1024)]


class InputModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_strip_whitespace=True
    )


class OutputModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)
