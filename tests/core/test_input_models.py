"""Mass assignment (BOPLA), generically: every input model of the API refuses fields it does not declare.

A field the caller may not set (`tenantId`, `createdBy`, `systemRole`, `passwordHash`, ...) must be
answered with 422, never silently dropped or applied. Per-endpoint tests cover the specific fields; this
one makes sure no input model, present or future, relaxes `extra="forbid"`.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mobility.core.schemas import InputModel
from tests.support.routes import input_models

MODELS = input_models()
PROTECTED = ["tenantId", "createdBy", "updatedBy", "systemRole", "passwordHash", "isSystemAdmin", "id"]


def test_input_models_are_found() -> None:
    assert len(MODELS) >= 5, [model.__name__ for model in MODELS]


@pytest.mark.parametrize("model", MODELS, ids=lambda model: f"{model.__module__}.{model.__qualname__}")
def test_input_model_forbids_extra_fields(model: type[InputModel]) -> None:
    assert model.model_config.get("extra") == "forbid", f"{model.__qualname__} accepts unknown fields"
    declared = {name for name in model.model_fields} | {
        info.alias for info in model.model_fields.values() if info.alias
    }
    for name in PROTECTED:
        if name in declared:
            continue
        with pytest.raises(ValidationError) as caught:
            model.model_validate({name: "00000000-0000-0000-0000-000000000000"})
        assert any(
            error["type"] == "extra_forbidden" and error["loc"][-1] == name for error in caught.value.errors()
        ), f"{model.__qualname__} did not refuse {name}: {caught.value.errors()}"
