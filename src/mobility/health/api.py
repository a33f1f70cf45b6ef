from fastapi import APIRouter

from mobility.core.deps import DbSession
from mobility.core.openapi import problem_responses
from mobility.core.routing import ApiRoute
from mobility.health import service
from mobility.health.schemas import HealthRead

router = APIRouter(tags=["health"], route_class=ApiRoute)


@router.get("/health", response_model=HealthRead, responses=problem_responses(503))
async def health(session: DbSession) -> dict[str, str | None]:
    return await service.check(session)
