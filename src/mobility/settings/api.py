"""The current tenant's settings: every known key, its value and default; set one at a time."""

from typing import Annotated

from fastapi import APIRouter, Path

from mobility.core.auth import require
from mobility.core.deps import DbSession
from mobility.core.routing import ApiRoute
from mobility.core.schemas import Text
from mobility.settings import service
from mobility.settings.schemas import SettingRead, SettingUpdate

router = APIRouter(prefix="/api/v1/settings", tags=["settings"], route_class=ApiRoute)


@router.get("", response_model=list[SettingRead], dependencies=[require("settings:read")])
async def list_settings(session: DbSession):
    return await service.list_settings(session)


@router.put("/{key}", response_model=SettingRead, dependencies=[require("settings:update")])
async def update_setting(key: Annotated[Text, Path(max_length=64)], body: SettingUpdate, session: DbSession):
    return await service.update_setting(session, key, body.value)
