"""Agents and brokers: one set of endpoints per kind, the same rules (agents/service.py).

A status change (suspend, deactivate, reactivate) needs the kind's `delete` permission, like a
tenant's deactivation: a partner's own login may update its record (contact details only) but never
lift its own suspension.
"""

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from mobility.agents import service
from mobility.agents.models import Agent, Broker
from mobility.agents.schemas import (
    PartnerCreate,
    PartnerListParams,
    PartnerStaffRead,
    PartnerSuspension,
    PartnerUpdate,
)
from mobility.core.auth import require
from mobility.core.deps import DbSession
from mobility.core.openapi import problem_responses
from mobility.core.pagination import Page
from mobility.core.routing import ApiRoute
from mobility.core.schemas import plain_value


def _read(session, model, partner) -> PartnerStaffRead:
    """The record; internal notes only for staff (null for the partner's own login)."""
    read = PartnerStaffRead.model_validate(partner)
    return read if service.sees_notes(session, model) else read.model_copy(update={"notes": None})


def _router(model: type[Agent] | type[Broker], plural: str, singular: str) -> APIRouter:
    router = APIRouter(prefix=f"/api/v1/{plural}", tags=[plural], route_class=ApiRoute)
    # The path names the kind's id (`agent_id`, `broker_id`), as the isolation suite reads it.
    param = f"{singular}_id"
    PartnerId = Annotated[uuid.UUID, Path(alias=param)]
    read, create, update, delete = (f"{plural}:{action}" for action in ("read", "create", "update", "delete"))

    @router.get(
        "", name=f"list_{plural}", response_model=Page[PartnerStaffRead], dependencies=[require(read)]
    )
    async def list_partners(session: DbSession, params: Annotated[PartnerListParams, Query()]):
        rows, next_cursor = await service.list_partners(session, model, params=params)
        return Page[PartnerStaffRead](
            items=[_read(session, model, row) for row in rows], next_cursor=next_cursor
        )

    @router.post(
        "",
        name=f"create_{singular}",
        response_model=PartnerStaffRead,
        status_code=status.HTTP_201_CREATED,
        dependencies=[require(create)],
        responses=problem_responses(409),
    )
    async def create_partner(body: PartnerCreate, session: DbSession):
        values = {name: plain_value(getattr(body, name)) for name in type(body).model_fields}
        partner = await service.create_partner(session, model, values)
        return _read(session, model, partner)

    @router.get(
        "/{" + param + "}",
        name=f"get_{singular}",
        response_model=PartnerStaffRead,
        dependencies=[require(read)],
    )
    async def get_partner(partner_id: PartnerId, session: DbSession):
        return _read(session, model, await service.get_partner(session, model, partner_id))

    @router.patch(
        "/{" + param + "}",
        name=f"update_{singular}",
        response_model=PartnerStaffRead,
        dependencies=[require(update)],
        responses=problem_responses(409),
    )
    async def update_partner(partner_id: PartnerId, body: PartnerUpdate, session: DbSession):
        partner = await service.update_partner(session, model, partner_id, body.changes())
        return _read(session, model, partner)

    @router.post(
        "/{" + param + "}/suspend",
        name=f"suspend_{singular}",
        response_model=PartnerStaffRead,
        dependencies=[require(delete)],
        responses=problem_responses(409),
    )
    async def suspend_partner(partner_id: PartnerId, body: PartnerSuspension, session: DbSession):
        partner = await service.suspend_partner(session, model, partner_id, reason=body.reason)
        return _read(session, model, partner)

    @router.post(
        "/{" + param + "}/deactivate",
        name=f"deactivate_{singular}",
        response_model=PartnerStaffRead,
        dependencies=[require(delete)],
        responses=problem_responses(409),
    )
    async def deactivate_partner(partner_id: PartnerId, session: DbSession):
        return _read(session, model, await service.deactivate_partner(session, model, partner_id))

    @router.post(
        "/{" + param + "}/reactivate",
        name=f"reactivate_{singular}",
        response_model=PartnerStaffRead,
        dependencies=[require(delete)],
        responses=problem_responses(409),
    )
    async def reactivate_partner(partner_id: PartnerId, session: DbSession):
        return _read(session, model, await service.reactivate_partner(session, model, partner_id))

    @router.delete(
        "/{" + param + "}",
        name=f"delete_{singular}",
        status_code=status.HTTP_204_NO_CONTENT,
        dependencies=[require(delete)],
        responses=problem_responses(409),
    )
    async def delete_partner(partner_id: PartnerId, session: DbSession) -> Response:
        await service.delete_partner(session, model, partner_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router


agents_router = _router(Agent, "agents", "agent")
brokers_router = _router(Broker, "brokers", "broker")
