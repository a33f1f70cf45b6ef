"""`json_response` sends what FastAPI would have sent for the route's `response_model`: the same JSON
(names by alias, dates and decimals as FastAPI renders them), with the JSON media type."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from fastapi import FastAPI
from fastapi.testclient import TestClient

from mobility.core.pagination import Page
from mobility.core.responses import json_response
from mobility.core.schemas import OutputModel


class Thing(OutputModel):
    id: uuid.UUID
    first_name: str
    born_on: date | None
    seen_at: datetime
    amount: Decimal
    address: dict | None
    tags: list[str]
    note: str | None = None


def _page() -> Page[Thing]:
    item = Thing(
        id=uuid.uuid4(),
        first_name='Mere \u0101 "quoted" </script>',
        born_on=date(1995, 3, 4),
        seen_at=datetime(2026, 11, 26, 9, 30, 0, 123456, tzinfo=UTC),
        amount=Decimal("250.50"),
        address={"city": "Suva", "lines": ["1 Victoria Parade"]},
        tags=["welding", "aged care"],
    )
    return Page[Thing](items=[item, item.model_copy(update={"born_on": None})], next_cursor="abc")


def test_the_body_is_what_the_response_model_would_give() -> None:
    app = FastAPI()
    page = _page()

    @app.get("/fastapi", response_model=Page[Thing])
    async def through_fastapi():
        return page

    @app.get("/direct", response_model=Page[Thing])
    async def direct():
        return json_response(page)

    with TestClient(app) as client:
        expected, got = client.get("/fastapi"), client.get("/direct")
    assert got.status_code == expected.status_code == 200
    assert got.headers["content-type"] == expected.headers["content-type"] == "application/json"
    assert json.loads(got.content) == json.loads(expected.content)
    assert "firstName" in got.json()["items"][0] and "nextCursor" in got.json()
    # The route still documents its model.
    schema = app.openapi()["paths"]["/direct"]["get"]["responses"]["200"]["content"]["application/json"]
    assert (
        schema == app.openapi()["paths"]["/fastapi"]["get"]["responses"]["200"]["content"]["application/json"]
    )
