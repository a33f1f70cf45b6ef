from typing import Any

from pydantic import Field

from mobility.core.schemas import InputModel, OutputModel


class SettingRead(OutputModel):
    key: str
    value: Any
    default: Any
    description: str
    # False: the tenant has not set it, and `value` is the default.
    is_set: bool


class SettingUpdate(InputModel):
    value: Any = Field(description="Checked against the setting's type")
