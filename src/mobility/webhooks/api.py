"""Webhook endpoints of the current tenant (Admins): register, change, disable or enable, delete, rotate
the secret, send a test event; the delivery log and replays."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from mobility.core.auth import require
from mobility.core.deps import DbSession
from mobility.core.pagination import Page
from mobility.core.routing import ApiRoute
from mobility.webhooks import service
from mobility.webhooks.schemas import (
    DeliveryListParams,
    DeliveryRead,
    EndpointCreate,
    EndpointCreated,
    EndpointListParams,
    EndpointRead,
    EndpointUpdate,
    SecretRotated,
)

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], route_class=ApiRoute)


@router.get("", response_model=Page[EndpointRead], dependencies=[require("webhooks:read")])
async def list_webhooks(session: DbSession, params: Annotated[EndpointListParams, Query()]):
    rows, next_cursor = await service.list_endpoints(session, params=params)
    return Page[EndpointRead](items=rows, next_cursor=next_cursor)


@router.post(
    "",
    response_model=EndpointCreated,
    status_code=status.HTTP_201_CREATED,
    dependencies=[require("webhooks:create")],
)
async def create_webhook(body: EndpointCreate, request: Request, session: DbSession):
    """Register an endpoint; the answer carries its signing secret, shown this once."""
    endpoint, secret = await service.create_endpoint(
        session,
        settings=request.app.state.settings,
        url=body.url,
        description=body.description,
        event_types=[event.value for event in body.event_types],
    )
    return EndpointCreated(**EndpointRead.model_validate(endpoint).model_dump(), secret=secret)


@router.get("/{endpoint_id}", response_model=EndpointRead, dependencies=[require("webhooks:read")])
async def get_webhook(endpoint_id: uuid.UUID, session: DbSession):
    return await service.get_endpoint(session, endpoint_id)


@router.patch("/{endpoint_id}", response_model=EndpointRead, dependencies=[require("webhooks:update")])
async def update_webhook(endpoint_id: uuid.UUID, body: EndpointUpdate, request: Request, session: DbSession):
    changes = body.changes()
    if "event_types" in changes:
        changes["event_types"] = [event.value for event in body.event_types]
    return await service.update_endpoint(session, endpoint_id, changes, settings=request.app.state.settings)


@router.delete(
    "/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[require("webhooks:delete")]
)
async def delete_webhook(endpoint_id: uuid.UUID, session: DbSession) -> Response:
    await service.delete_endpoint(session, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{endpoint_id}/rotate-secret", response_model=SecretRotated, dependencies=[require("webhooks:update")]
)
async def rotate_webhook_secret(endpoint_id: uuid.UUID, request: Request, session: DbSession):
    """A new signing secret, shown this once; the previous one also signs for a day."""
    endpoint, secret = await service.rotate_secret(session, endpoint_id, settings=request.app.state.settings)
    return SecretRotated(secret=secret, previous_secret_until=endpoint.previous_secret_until)


@router.post(
    "/{endpoint_id}/test",
    response_model=DeliveryRead,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[require("webhooks:update")],
)
async def test_webhook(endpoint_id: uuid.UUID, session: DbSession):
    """Queue a `webhook.ping` event to this endpoint alone."""
    return await service.ping(session, endpoint_id)


deliveries = APIRouter(prefix="/api/v1/webhook-deliveries", tags=["webhooks"], route_class=ApiRoute)


@deliveries.get("", response_model=Page[DeliveryRead], dependencies=[require("webhooks:read")])
async def list_webhook_deliveries(session: DbSession, params: Annotated[DeliveryListParams, Query()]):
    """The delivery log: every endpoint's, or one's (`endpointId`), newest first."""
    rows, next_cursor = await service.list_deliveries(
        session, endpoint_id=params.endpoint_id, params=params, status=params.status
    )
    return Page[DeliveryRead](items=rows, next_cursor=next_cursor)


@deliveries.post(
    "/{delivery_id}/replay",
    response_model=DeliveryRead,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[require("webhooks:update")],
)
async def replay_webhook_delivery(delivery_id: uuid.UUID, session: DbSession):
    """The same event (same event id, same body) delivered again to the same endpoint."""
    return await service.replay(session, delivery_id)
