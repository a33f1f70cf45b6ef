"""Answers built from an output model already validated, for the hottest reads.

FastAPI, given a `response_model`, dumps what the endpoint returned to plain data, validates that again
against the model and serializes the result: for a page of 50 candidates about 0.75 ms, against 0.2 ms
for pydantic's own `model_dump_json` of the model the endpoint built. `json_response` sends that one
serialization (by alias, as FastAPI would); the route keeps its `response_model` for the OpenAPI
document, and the body is the same (tests/core/test_responses.py).
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel

JSON = "application/json"


def json_response(model: BaseModel, *, status_code: int = 200) -> Response:
    """`model` (an output model, validated when it was built) as the JSON body of the answer."""
    return Response(model.model_dump_json(by_alias=True), status_code=status_code, media_type=JSON)
