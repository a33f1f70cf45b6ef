"""Two-factor authentication: TOTP enrolment, login with a code, replay, recovery codes, disabling, and a
tenant that requires it."""

import re
import time
from urllib.parse import parse_qs, unquote, urlparse

import pyotp
from fastapi import APIRouter

from mobility.authz.permissions import SystemRole
from mobility.core.auth import require
from mobility.settings.models import Setting
from mobility.settings.service import REQUIRE_TWO_FACTOR
from mobility.users.models import User
from tests.auth.support import activity, attempt, log_in, throttle
from tests.support.app import api_client, bearer, problem
from tests.support.factories import PASSWORD, make_tenant, make_user
from tests.support.sessions import get_row, system_session

SETUP, CONFIRM = "/api/v1/me/2fa/setup", "/api/v1/me/2fa/confirm"
DISABLE, RECOVERY_CODES = "/api/v1/me/2fa/disable", "/api/v1/me/2fa/recovery-codes"


def code_at(totp: pyotp.TOTP, steps: int = 0) -> str:
    """The code of the time step `steps` away from now (the server accepts one step either side)."""
    return totp.at(time.time() + steps * totp.interval)


def wrong_code(totp: pyotp.TOTP) -> str:
    near = {code_at(totp, steps) for steps in range(-2, 3)}
    return next(code for code in ("000000", "123456", "654321", "999999") if code not in near)


async def test_totp_enrolment_login_replay_and_recovery_codes(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), SystemRole.trainer)
    # Wrong codes count as failures (checked below); the many tries here stay clear of the lockout.
    async with api_client(migrated_database_url, login_free_failures=50) as client:
        token = await log_in(client, member.email)
        auth = bearer(token)

        # Set-up asks for the password again: a stolen session alone cannot enrol an authenticator.
        problem(await client.post(SETUP, headers=auth), 422)
        problem(await client.post(SETUP, json={"password": "not-the-password"}, headers=auth), 422)
        # It gives a secret and its otpauth URI, but 2FA is not on until a first code confirms it.
        response = await client.post(SETUP, json={"password": PASSWORD}, headers=auth)
        assert response.status_code == 200, response.text
        secret, uri = response.json()["secret"], urlparse(response.json()["otpauthUri"])
        assert re.fullmatch(r"[A-Z2-7]{32}", secret)  # 160 bits, base32
        assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
        assert unquote(uri.path) == f"/WTI Labour Mobility:{member.email}"
        query = parse_qs(uri.query)
        assert query["secret"] == [secret] and query["issuer"] == ["WTI Labour Mobility"]
        assert (await client.get("/api/v1/me", headers=auth)).json()["twoFactorEnabled"] is False
        await log_in(client, member.email)  # no code asked yet

        totp = pyotp.TOTP(secret)
        problem(await client.post(CONFIRM, json={"code": wrong_code(totp)}, headers=auth), 422)
        assert (await get_row(migrated_database_url, User, member.id)).two_factor_enabled is False
        problem(await client.post(CONFIRM, json={"code": "12345"}, headers=auth), 422)

        confirmation = code_at(totp)
        response = await client.post(CONFIRM, json={"code": confirmation}, headers=auth)
        assert response.status_code == 200, response.text
        codes = response.json()["recoveryCodes"]
        assert len(codes) == len(set(codes)) == 10
        assert all(re.fullmatch(r"[A-Z2-9]{4}(-[A-Z2-9]{4}){3}", code) for code in codes)
        assert (await client.get("/api/v1/me", headers=auth)).json()["twoFactorEnabled"] is True
        stored = await get_row(migrated_database_url, User, member.id)
        assert stored.two_factor_enabled and stored.totp_secret == secret
        assert len(stored.recovery_codes) == 10
        assert not set(stored.recovery_codes) & {c for code in codes for c in (code, code.replace("-", ""))}

        # Login now needs the code: none, a wrong one, the one just used to confirm: 401.
        problem(await attempt(client, member.email), 401, "two_factor_required")
        problem(await attempt(client, member.email, otp=wrong_code(totp)), 401, "invalid_two_factor_code")
        assert (await throttle(migrated_database_url, f"account:{member.email}")).failures == 1
        problem(await attempt(client, member.email, otp=confirmation), 401, "invalid_two_factor_code")
        # A wrong password with a right code is still a wrong password.
        next_code = code_at(totp, 1)
        problem(await attempt(client, member.email, "nope-nope-nope", otp=next_code), 401)

        await log_in(client, member.email, otp=next_code)
        assert await throttle(migrated_database_url, f"account:{member.email}") is None
        # The same code again is a replay.
        problem(await attempt(client, member.email, otp=next_code), 401, "invalid_two_factor_code")

        # Each recovery code works once, typed as printed or without dashes in lower case.
        await log_in(client, member.email, recoveryCode=codes[0])
        problem(await attempt(client, member.email, recoveryCode=codes[0]), 401)
        await log_in(client, member.email, recoveryCode=codes[1].replace("-", "").lower())
        problem(await attempt(client, member.email, recoveryCode=codes[1]), 401)
        assert len((await get_row(migrated_database_url, User, member.id)).recovery_codes) == 8

        # New recovery codes need re-authentication, and make the old ones worthless.
        problem(await client.post(RECOVERY_CODES, json={"password": PASSWORD}, headers=auth), 422)
        problem(
            await client.post(RECOVERY_CODES, json={"password": "nope-nope", "code": codes[2]}, headers=auth),
            422,
        )
        response = await client.post(
            RECOVERY_CODES, json={"password": PASSWORD, "code": codes[2]}, headers=auth
        )
        assert response.status_code == 200, response.text
        new_codes = response.json()["recoveryCodes"]
        assert len(new_codes) == 10 and not set(new_codes) & set(codes)
        problem(await attempt(client, member.email, recoveryCode=codes[3]), 401)
        await log_in(client, member.email, recoveryCode=new_codes[0])

        # Disabling needs the password and a code.
        for body in (
            {"password": PASSWORD},
            {"password": PASSWORD, "code": wrong_code(totp)},
            {"password": "nope-nope", "code": new_codes[1]},
            {"password": PASSWORD, "code": new_codes[0]},  # already used
        ):
            problem(await client.post(DISABLE, json=body, headers=auth), 422)
        assert (await get_row(migrated_database_url, User, member.id)).two_factor_enabled is True
        response = await client.post(DISABLE, json={"password": PASSWORD, "code": new_codes[1]}, headers=auth)
        assert response.status_code == 204, response.text
        stored = await get_row(migrated_database_url, User, member.id)
        assert not stored.two_factor_enabled
        assert stored.totp_secret is None and stored.recovery_codes is None
        await log_in(client, member.email)

    actions = [row.action for row in await activity(migrated_database_url, client.address)]
    for action in ("two_factor_enabled", "two_factor_disabled", "recovery_codes_regenerated"):
        assert actions.count(action) == 1, actions
    assert actions.count("recovery_code_used") == 3


async def test_set_up_refused_while_on_and_unknown_fields_refused(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), SystemRole.trainer)
    async with api_client(migrated_database_url) as client:
        auth = bearer(await log_in(client, member.email))
        problem(await client.post(CONFIRM, json={"code": "123456"}, headers=auth), 422)  # no set-up
        secret = (await client.post(SETUP, json={"password": PASSWORD}, headers=auth)).json()["secret"]
        # Mass assignment: an extra field is refused, not applied.
        problem(
            await client.post(
                CONFIRM, json={"code": code_at(pyotp.TOTP(secret)), "twoFactorEnabled": True}, headers=auth
            ),
            422,
            "validation_error",
        )
        assert (await get_row(migrated_database_url, User, member.id)).two_factor_enabled is False
        response = await client.post(CONFIRM, json={"code": code_at(pyotp.TOTP(secret))}, headers=auth)
        assert response.status_code == 200, response.text
        # While on, a new set-up would silently replace the secret: refused.
        problem(await client.post(SETUP, json={"password": PASSWORD}, headers=auth), 422)
        assert (await get_row(migrated_database_url, User, member.id)).totp_secret == secret


async def test_a_tenant_can_require_two_factor(migrated_database_url: str) -> None:
    async with system_session(migrated_database_url) as session:
        strict, relaxed = await make_tenant(session), await make_tenant(session)
        session.add(Setting(tenant_id=strict.id, key=REQUIRE_TWO_FACTOR.key, value=True))
        member = await make_user(session, strict, SystemRole.admin)
        trainer = await make_user(session, strict, SystemRole.trainer)
        relaxed_member = await make_user(session, relaxed, SystemRole.admin)
        relaxed_trainer = await make_user(session, relaxed, SystemRole.trainer)

    async with api_client(migrated_database_url) as client:
        # A route guarded by a permission, as every domain route will be.
        probe = APIRouter()

        @probe.get("/api/v1/test-probe", dependencies=[require("users:read")])
        async def _probe() -> dict:
            return {"ok": True}

        client._transport.app.include_router(probe)  # type: ignore[attr-defined]

        auth = bearer(await log_in(client, member.email))
        me = (await client.get("/api/v1/me", headers=auth)).json()
        assert me["twoFactorEnrollmentRequired"] is True
        problem(await client.get("/api/v1/test-probe", headers=auth), 403, "two_factor_enrollment_required")
        # Other tenants are not concerned.
        assert (
            await client.get("/api/v1/test-probe", headers=bearer(await log_in(client, relaxed_member.email)))
        ).status_code == 200

        # /me and /me/2fa stay open so the user can comply.
        secret = (await client.post(SETUP, json={"password": PASSWORD}, headers=auth)).json()["secret"]
        response = await client.post(CONFIRM, json={"code": code_at(pyotp.TOTP(secret))}, headers=auth)
        assert response.status_code == 200, response.text
        assert (await client.get("/api/v1/me", headers=auth)).json()["twoFactorEnrollmentRequired"] is False
        assert (await client.get("/api/v1/test-probe", headers=auth)).status_code == 200

        # Enrolment comes first; the role's permissions still apply after it (a Trainer may not read users).
        trainer_auth = bearer(await log_in(client, trainer.email))
        problem(
            await client.get("/api/v1/test-probe", headers=trainer_auth),
            403,
            "two_factor_enrollment_required",
        )
        relaxed_auth = bearer(await log_in(client, relaxed_trainer.email))
        problem(await client.get("/api/v1/test-probe", headers=relaxed_auth), 403, "forbidden")
