"""New passwords are refused when they are commonly used, breached, or an easy variant of one (ASVS 5.0
6.2.4), wherever a password is set: changing it, accepting an invitation, the seeded admin's (tests/cli/test_seed.py)."""

from __future__ import annotations

import secrets

import pytest

from mobility.authz.permissions import SystemRole
from mobility.core.errors import InvalidInput
from mobility.core.security import check_password_strength
from mobility.users import service as users_service
from tests.auth.support import log_in
from tests.support.admin_api import make_world
from tests.support.app import api_client, bearer, problem
from tests.support.factories import PASSWORD, make_tenant, make_user, system_role
from tests.support.sessions import system_session

# Each long enough for the length rule (10): refused only for being common or an easy variant of one.
COMMON = ("Password123!", "qwertyuiop", "iloveyou2024", "1234567890", "Welcome2024!", "P@ssw0rd2024")


@pytest.mark.parametrize("password", COMMON)
def test_common_passwords_are_refused_saying_why(password: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_password_strength(password, email="someone@example.org")
    assert "too easy to guess" in refused.value.detail
    assert refused.value.extra == {"field": "newPassword"}


def test_random_and_long_passwords_are_accepted() -> None:
    for password in (secrets.token_urlsafe(12), "a long new passphrase from the test", "z" + "x9Q!" * 30):
        check_password_strength(password, email="someone@example.org")


async def test_changing_to_a_common_password_is_refused(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), SystemRole.trainer)
    async with api_client(migrated_database_url) as client:
        token = await log_in(client, member.email)
        response = await client.post(
            "/api/v1/me/password",
            json={"currentPassword": PASSWORD, "newPassword": "Password123!"},
            headers=bearer(token),
        )
        refused = problem(response, 422, "invalid_input")
        assert refused["field"] == "newPassword" and "too easy to guess" in refused["detail"]
        # Nothing changed: the old password still logs in.
        await log_in(client, member.email)


async def test_accepting_an_invitation_with_a_common_password_is_refused(migrated_database_url: str) -> None:
    world = await make_world(migrated_database_url)
    async with system_session(migrated_database_url) as session:
        trainer_role = (await system_role(session, SystemRole.trainer)).id
    email = f"new-{secrets.token_hex(4)}@example.org"
    async with api_client(migrated_database_url) as client:
        invited = await client.post(
            "/api/v1/users",
            headers=world.auth(world.admin),
            json={"email": email, "name": "New Member", "roleId": str(trainer_role)},
        )
        assert invited.status_code == 201, invited.text
        async with system_session(migrated_database_url) as session:
            token = await users_service.issue_invitation_link(
                session, email=email, tenant_code=world.tenant.code
            )
        accept = "/api/v1/invitations/accept"
        refused = problem(
            await client.post(accept, json={"token": token, "password": "iloveyou2024"}), 422, "invalid_input"
        )
        assert refused["field"] == "password" and "too easy to guess" in refused["detail"]
        password = secrets.token_urlsafe(12)
        accepted = await client.post(accept, json={"token": token, "password": password})
        assert accepted.status_code == 204, accepted.text
        await log_in(client, email, password)
