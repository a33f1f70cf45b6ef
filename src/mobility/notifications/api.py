"""One's own notifications in the app and e-mail preferences (/me), and the tenant's outbox (Admins:
what failed for good, and why; send a failed e-mail again)."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query

from mobility.core.auth import CurrentScope, require
from mobility.core.deps import DbSession
from mobility.core.pagination import Page
from mobility.core.routing import ApiRoute
from mobility.core.schemas import Text
from mobility.notifications import service
from mobility.notifications.schemas import (
    MarkedRead,
    MyNotificationParams,
    MyNotificationRead,
    OutboxParams,
    OutboxRead,
    PreferenceRead,
    PreferenceUpdate,
    UnreadCount,
)

router = APIRouter(prefix="/api/v1", tags=["notifications"], route_class=ApiRoute)


@router.get("/me/notifications", response_model=Page[MyNotificationRead])
async def list_my_notifications(
    session: DbSession, _: CurrentScope, params: Annotated[MyNotificationParams, Query()]
):
    """The caller's in-app notifications in the current tenant: unread first, then newest first."""
    rows, next_cursor = await service.my_notifications(session, params=params, unread_only=params.unread_only)
    return Page[MyNotificationRead](items=await service.inbox_view(session, rows), next_cursor=next_cursor)


@router.get("/me/notifications/unread-count", response_model=UnreadCount)
async def count_my_unread_notifications(session: DbSession, _: CurrentScope):
    return UnreadCount(unread=await service.unread_count(session))


@router.post("/me/notifications/read-all", response_model=MarkedRead)
async def mark_all_my_notifications_read(session: DbSession, _: CurrentScope):
    return MarkedRead(marked=await service.mark_all_read(session))


@router.post("/me/notifications/{notification_id}/read", response_model=MyNotificationRead)
async def mark_my_notification_read(notification_id: uuid.UUID, session: DbSession, _: CurrentScope):
    row = await service.mark_read(session, notification_id)
    return (await service.inbox_view(session, [row]))[0]


@router.get("/me/notification-preferences", response_model=list[PreferenceRead])
async def list_my_notification_preferences(session: DbSession, _: CurrentScope):
    return await service.my_preferences(session)


@router.put("/me/notification-preferences/{category}", response_model=PreferenceRead)
async def set_my_notification_preference(
    category: Annotated[Text, Path(max_length=32)],
    body: PreferenceUpdate,
    session: DbSession,
    _: CurrentScope,
):
    """Whether this category comes by e-mail in the current tenant (security and account: always)."""
    return await service.set_preference(session, category, email=body.email)


@router.get("/notifications", response_model=Page[OutboxRead], dependencies=[require("notifications:read")])
async def list_notifications(session: DbSession, params: Annotated[OutboxParams, Query()]):
    """The tenant's notifications on every channel, with their delivery state (an Admin sees the
    tenant's, anyone else their own)."""
    rows, next_cursor = await service.list_outbox(
        session, params=params, status=params.status, channel=params.channel
    )
    return Page[OutboxRead](items=rows, next_cursor=next_cursor)


@router.post(
    "/notifications/{notification_id}/retry",
    response_model=OutboxRead,
    dependencies=[require("notifications:update")],
)
async def retry_notification(notification_id: uuid.UUID, session: DbSession):
    """A failed (dead) e-mail queued again with a fresh count of attempts."""
    return await service.retry(session, notification_id)
