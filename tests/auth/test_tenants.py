"""A session acts in one tenant at a time: choosing it at login, switching, and who may not."""

from sqlalchemy import delete, update

from mobility.authz.permissions import SystemRole
from mobility.tenants.models import Tenant
from mobility.users.models import UserTenant
from tests.auth.support import attempt, log_in, session_row
from tests.support.app import api_client, bearer, problem
from tests.support.factories import add_membership, make_tenant, make_user
from tests.support.sessions import system_session

SWITCH = "/api/v1/auth/switch-tenant"


async def _deactivate(database_url: str, tenant: Tenant) -> None:
    async with system_session(database_url) as session:
        await session.execute(update(Tenant).where(Tenant.id == tenant.id).values(is_active=False))


async def test_a_member_of_two_tenants_switches_between_them(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        home, away, foreign = [await make_tenant(session) for _ in range(3)]
        member = await make_user(session, home, SystemRole.admin)
        await add_membership(session, member, away, SystemRole.trainer)
    async with api_client(migrated_database_url) as client:
        token = await log_in(client, member.email)
        auth = bearer(token)
        me = (await client.get("/api/v1/me", headers=auth)).json()
        assert (me["tenantId"], me["role"]) == (str(home.id), "Admin")  # the primary tenant first
        assert {t["tenantCode"]: t["role"] for t in me["tenants"]} == {
            home.code: "Admin",
            away.code: "Trainer",
        }

        response = await client.post(SWITCH, json={"tenantCode": away.code.lower()}, headers=auth)
        assert response.status_code == 200, response.text
        assert (response.json()["tenantId"], response.json()["role"]) == (str(away.id), "Trainer")
        me = (await client.get("/api/v1/me", headers=auth)).json()
        assert (me["tenantId"], me["role"]) == (str(away.id), "Trainer")
        assert "users:create" not in me["permissions"]
        assert (await session_row(migrated_database_url, token)).tenant_id == away.id

        # Not a member: refused, and the session stays where it was.
        for code in (foreign.code, "NO-SUCH-TENANT"):
            problem(await client.post(SWITCH, json={"tenantCode": code}, headers=auth), 403, "no_tenant")
        assert (await client.get("/api/v1/me", headers=auth)).json()["tenantId"] == str(away.id)
        # Fields the caller may not set are refused.
        problem(
            await client.post(SWITCH, json={"tenantCode": home.code, "role": "Admin"}, headers=auth),
            422,
            "validation_error",
        )
        problem(await client.post(SWITCH, json={"tenantCode": home.code}), 401)

        # The tenant can also be chosen at login.
        other = bearer(await log_in(client, member.email, tenantCode=away.code))
        assert (await client.get("/api/v1/me", headers=other)).json()["tenantId"] == str(away.id)
        problem(await attempt(client, member.email, tenantCode=foreign.code), 403, "no_tenant")


async def test_a_system_admin_may_act_in_any_active_tenant(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        first, second, closed = [await make_tenant(session) for _ in range(3)]
        root = await make_user(session, None, SystemRole.system_admin)
    await _deactivate(migrated_database_url, closed)
    async with api_client(migrated_database_url) as client:
        auth = bearer(await log_in(client, root.email, tenantCode=first.code))
        me = (await client.get("/api/v1/me", headers=auth)).json()
        assert (me["tenantId"], me["role"], me["isSystemAdmin"]) == (str(first.id), "System Admin", True)
        response = await client.post(SWITCH, json={"tenantCode": second.code}, headers=auth)
        assert response.status_code == 200, response.text
        assert (response.json()["tenantId"], response.json()["role"]) == (str(second.id), "System Admin")
        problem(await client.post(SWITCH, json={"tenantCode": closed.code}, headers=auth), 403)


async def test_a_deactivated_tenant_refuses_its_members(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        home, closing = await make_tenant(session), await make_tenant(session)
        member = await make_user(session, home, SystemRole.admin)
        await add_membership(session, member, closing, SystemRole.admin)
        only_there = await make_user(session, closing, SystemRole.trainer)
    async with api_client(migrated_database_url) as client:
        inside = await log_in(client, member.email, tenantCode=closing.code)
        await _deactivate(migrated_database_url, closing)
        # A session acting in it ends; logging in or switching to it is refused.
        problem(await client.get("/api/v1/me", headers=bearer(inside)), 401, "session_invalid")
        problem(await attempt(client, member.email, tenantCode=closing.code), 403, "no_tenant")
        problem(await attempt(client, only_there.email), 403, "no_tenant")
        auth = bearer(await log_in(client, member.email))
        assert (await client.get("/api/v1/me", headers=auth)).json()["tenantId"] == str(home.id)
        problem(await client.post(SWITCH, json={"tenantCode": closing.code}, headers=auth), 403)


async def test_losing_a_membership_ends_the_sessions_acting_in_it(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        home, away = await make_tenant(session), await make_tenant(session)
        member = await make_user(session, home, SystemRole.admin)
        await add_membership(session, member, away, SystemRole.trainer)
    async with api_client(migrated_database_url) as client:
        at_home, away_token = (
            await log_in(client, member.email),
            await log_in(client, member.email, tenantCode=away.code),
        )
        async with system_session(migrated_database_url) as session:
            await session.execute(
                delete(UserTenant).where(UserTenant.user_id == member.id, UserTenant.tenant_id == away.id)
            )
        problem(await client.get("/api/v1/me", headers=bearer(away_token)), 401, "session_invalid")
        assert (await client.get("/api/v1/me", headers=bearer(at_home))).status_code == 200
