from mobility.core.errors import PROBLEM_JSON
from tests.health.support import head_revision
from tests.support.app import api_client


async def test_health_reports_the_revision(migrated_database_url: str) -> None:
    async with api_client(migrated_database_url) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok"
    assert body["revision"] == head_revision()


async def test_health_is_503_on_an_unmigrated_database(empty_database_url: str) -> None:
    async with api_client(empty_database_url) as client:
        response = await client.get("/health")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["code"] == "service_unavailable"


async def test_health_is_503_when_the_database_is_unreachable(backend: str, tmp_path) -> None:
    url = {
        # A port nothing listens on; a "database file" that is a directory.
        "postgresql": "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere",
        "sqlite": f"sqlite+aiosqlite:///{tmp_path}",
    }[backend]
    async with api_client(url) as client:
        response = await client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == 503
    assert response.json()["database"] == "unreachable"


async def test_unknown_path_is_problem_json(migrated_database_url: str) -> None:
    async with api_client(migrated_database_url) as client:
        response = await client.get("/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["title"]


async def test_openapi_docs_are_served(migrated_database_url: str) -> None:
    async with api_client(migrated_database_url) as client:
        docs = await client.get("/docs")
        schema = await client.get("/openapi.json")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "/health" in schema.json()["paths"]
    paths = schema.json()["paths"]
    assert set(schema.json()["components"]["securitySchemes"]) == {"sessionToken", "sessionCookie"}
    # Operations behind require(...) or CurrentScope say so; public ones do not.
    assert paths["/api/v1/users/{user_id}"]["get"]["security"] == [
        {"sessionToken": []},
        {"sessionCookie": []},
    ]
    assert "security" in paths["/api/v1/me"]["get"]
    assert "security" not in paths["/api/v1/auth/login"]["post"]
    assert "security" not in paths["/health"]["get"]
