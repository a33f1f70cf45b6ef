from tests.factories import PASSWORD, make_tenant, make_user, system_session
from tests.support.app import api_client, login


async def test_login_then_me(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        tenant = await make_tenant(session)
        admin = await make_user(session, tenant)
    async with api_client(migrated_database_url) as client:
        headers = await login(client, admin.email, PASSWORD)
        me = await client.get("/api/v1/me", headers=headers)
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["email"] == admin.email
    assert body["role"] == "Admin"
    assert body["tenantId"] == str(tenant.id)
    assert "users:read" in body["permissions"]
    assert [t["tenantCode"] for t in body["tenants"]] == [tenant.code]


async def test_wrong_password_is_401_problem(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        tenant = await make_tenant(session)
        admin = await make_user(session, tenant)
    async with api_client(migrated_database_url) as client:
        response = await client.post(
            "/api/v1/auth/login", json={"email": admin.email, "password": "nope-nope-nope"}
        )
        me = await client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"
    assert me.status_code == 401
