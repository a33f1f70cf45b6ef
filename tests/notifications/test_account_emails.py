"""Account e-mails: invitations with their link (the API never shows a token), forgotten passwords
(same answer whatever the e-mail, throttled, a single-use short-lived link that ends every session),
and the security notices (a login from a new address, a password change or reset, 2FA turned off, a new
membership)."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from sqlalchemy import select, update

from mobility.audit.models import ActivityLog
from mobility.auth.credentials import hash_token
from mobility.auth.models import PasswordReset
from mobility.authz.permissions import SystemRole
from mobility.core.config import Settings
from mobility.core.models import utcnow
from mobility.notifications.models import Notification, NotificationChannel
from mobility.users.models import InvitationToken, UserInvitation
from tests.notifications.conftest import Sink, deliver_emails
from tests.support.admin_api import call, make_world
from tests.support.app import api_client, login, problem
from tests.support.factories import PASSWORD, make_user, system_role
from tests.support.sessions import system_session

NEW_PASSWORD = "Tuilagi-harbour-" + secrets.token_hex(4)
LINK = re.compile(r"(https?://\S+?)#token=([A-Za-z0-9_\-]+)")


def settings_for(url: str, sink: Sink) -> Settings:
    return Settings(
        database_url=url,
        smtp_host="127.0.0.1",
        smtp_port=sink.port,
        mail_from="no-reply@mobility.test",
        public_url="https://mobility.example",
        notify_retry_base_seconds=0,
    )


def token_in(message) -> str:
    found = LINK.search(message.get_body(("plain",)).get_content())
    assert found, "no link with a token"
    return found.group(2)


async def notices(url: str, user_id) -> list[Notification]:
    async with system_session(url) as session:
        rows = await session.execute(
            select(Notification).where(Notification.recipient_id == user_id).order_by(Notification.created_at)
        )
        return list(rows.scalars())


async def test_an_invitation_is_e_mailed_with_its_link_and_the_api_shows_no_token(
    migrated_database_url: str, smtp_sink: Sink
) -> None:
    url = migrated_database_url
    world = await make_world(url)
    settings = settings_for(url, smtp_sink)
    new = f"new-{secrets.token_hex(4)}@example.org"
    async with system_session(url) as session:
        trainer_role = await system_role(session, SystemRole.trainer)
        existing = await make_user(session, world.other, SystemRole.trainer)
    async with api_client(url, public_url="https://mobility.example") as client:
        for address in (new, existing.email):
            response = await call(
                client,
                "POST",
                "/users",
                world.auth(world.admin),
                json={"email": address, "name": "Invitee", "roleId": str(trainer_role.id)},
            )
            assert response.status_code == 201, response.text
            assert "token" not in response.text.lower()
        await deliver_emails(settings, url)
        [message] = smtp_sink.messages(new)
        assert message["Subject"] == f"You are invited to join {world.tenant.name}"
        assert LINK.search(message.get_body(("plain",)).get_content()).group(1) == (
            "https://mobility.example/accept-invitation"
        )
        # The link's token sets the first password, and the account joins the tenant.
        accepted = await client.post(
            "/api/v1/invitations/accept", json={"token": token_in(message), "password": NEW_PASSWORD}
        )
        assert accepted.status_code == 204, accepted.text
        # An existing account is told to log in and answer it: no token in its e-mail.
        [other] = smtp_sink.messages(existing.email)
        assert "https://mobility.example/invitations" in other.get_body(("plain",)).get_content()
        assert "#token=" not in other.as_string()
    async with system_session(url) as session:
        rows = list(
            (
                await session.execute(
                    select(Notification).where(
                        Notification.template == "account.invitation",
                        Notification.recipient_email.in_([new, existing.email]),
                    )
                )
            ).scalars()
        )
    # Both e-mails look alike in the tenant's outbox: the typed address, no account; and once sent,
    # the stored payload keeps no usable link.
    assert {(row.recipient_id, row.channel) for row in rows} == {(None, NotificationChannel.email)}
    assert {row.payload["link"] for row in rows} == {"[sent]"}


async def test_a_renewed_invitation_is_e_mailed_with_a_new_link_that_alone_works(
    migrated_database_url: str, smtp_sink: Sink
) -> None:
    """Inviting again after the invitation expired gives it a fresh token (the earlier e-mail's link
    stops working); the token is a global key (0015): accepted by the link alone, without a tenant,
    it is found through invitation_tokens, so the new one must be registered there for the tenant."""
    url = migrated_database_url
    world = await make_world(url)
    settings = settings_for(url, smtp_sink)
    new = f"renewed-{secrets.token_hex(4)}@example.org"
    async with system_session(url) as session:
        trainer_role = await system_role(session, SystemRole.trainer)
    body = {"email": new, "name": "Invitee", "roleId": str(trainer_role.id)}
    async with api_client(url, public_url="https://mobility.example") as client:
        first = await call(client, "POST", "/users", world.auth(world.admin), json=body)
        assert first.status_code == 201, first.text
        async with system_session(url) as session:
            await session.execute(
                update(UserInvitation)
                .where(UserInvitation.email == new)
                .values(expires_at=utcnow() - timedelta(days=1))
            )
        again = await call(client, "POST", "/users", world.auth(world.admin), json=body)
        assert again.status_code == 201, again.text
        await deliver_emails(settings, url)
        tokens = {token_in(message) for message in smtp_sink.messages(new)}
        assert len(tokens) == 2  # two e-mails, each with its own link
        async with system_session(url) as session:
            current = (
                await session.execute(select(UserInvitation.token_hash).where(UserInvitation.email == new))
            ).scalar_one()
            [new_token] = [token for token in tokens if hash_token(token) == current]
            [old_token] = tokens - {new_token}
            registered = set(
                (
                    await session.execute(
                        select(InvitationToken.tenant_id).where(
                            InvitationToken.token_hash.in_([hash_token(old_token), hash_token(new_token)])
                        )
                    )
                ).scalars()
            )
        assert registered == {world.tenant.id}
        stale = await client.post(
            "/api/v1/invitations/accept", json={"token": old_token, "password": NEW_PASSWORD}
        )
        assert stale.status_code == 404, stale.text
        accepted = await client.post(
            "/api/v1/invitations/accept", json={"token": new_token, "password": NEW_PASSWORD}
        )
        assert accepted.status_code == 204, accepted.text


async def test_asking_for_a_reset_answers_the_same_whatever_the_e_mail_and_is_throttled(
    migrated_database_url: str, smtp_sink: Sink
) -> None:
    url = migrated_database_url
    world = await make_world(url)
    unknown = f"nobody-{secrets.token_hex(4)}@example.org"
    async with api_client(url) as client:
        answers = []
        for address in (world.trainer.email, unknown):
            response = await client.post("/api/v1/auth/password-reset", json={"email": address})
            answers.append((response.status_code, response.json()))
        assert answers[0] == answers[1] and answers[0][0] == 202
        # Three requests per address asked for, then a wait, whether the account exists or not.
        for address in (world.trainer.email, unknown):
            for _ in range(2):
                assert (
                    await client.post("/api/v1/auth/password-reset", json={"email": address})
                ).status_code == 202
            refused = await client.post("/api/v1/auth/password-reset", json={"email": address})
            problem(refused, 429, "too_many_attempts")
            assert int(refused.headers["Retry-After"]) >= 1
    await deliver_emails(settings_for(url, smtp_sink), url)
    assert len(smtp_sink.messages(world.trainer.email)) == 3
    assert smtp_sink.messages(unknown) == []
    async with system_session(url) as session:
        logged = (
            await session.execute(
                select(ActivityLog.action, ActivityLog.user_id).where(
                    ActivityLog.action == "password_reset_requested"
                )
            )
        ).all()
    assert (("password_reset_requested", world.trainer.id)) in logged


async def test_a_reset_link_works_once_ends_every_session_and_is_logged(
    migrated_database_url: str, smtp_sink: Sink
) -> None:
    url = migrated_database_url
    world = await make_world(url)
    settings = settings_for(url, smtp_sink)
    member = world.trainer
    async with api_client(url, public_url="https://mobility.example") as client:
        assert (await call(client, "GET", "/me", world.auth(member))).status_code == 200
        for _ in range(2):  # the second link replaces the first
            response = await client.post("/api/v1/auth/password-reset", json={"email": member.email})
            assert response.status_code == 202
            await deliver_emails(settings, url)
        first, second = smtp_sink.messages(member.email)
        assert first["Subject"] == "Reset your password"
        stale = await client.post(
            "/api/v1/auth/password-reset/complete", json={"token": token_in(first), "password": NEW_PASSWORD}
        )
        problem(stale, 410, "reset_link_unusable")
        weak = await client.post(
            "/api/v1/auth/password-reset/complete",
            json={"token": token_in(second), "password": "password123"},
        )
        problem(weak, 422)
        done = await client.post(
            "/api/v1/auth/password-reset/complete", json={"token": token_in(second), "password": NEW_PASSWORD}
        )
        assert (done.status_code, done.json()) == (200, {"sessionsEnded": 1})
        problem(await call(client, "GET", "/me", world.auth(member)), 401)  # every session ended
        again = await client.post(
            "/api/v1/auth/password-reset/complete",
            json={"token": token_in(second), "password": NEW_PASSWORD + "x"},
        )
        problem(again, 410, "reset_link_unusable")
        problem(
            await client.post(
                "/api/v1/auth/password-reset/complete",
                json={"token": "no-such-token", "password": NEW_PASSWORD},
            ),
            404,
        )
        await login(client, member.email, NEW_PASSWORD, world.tenant.code)
    async with system_session(url) as session:
        actions = set(
            (
                await session.execute(select(ActivityLog.action).where(ActivityLog.user_id == member.id))
            ).scalars()
        )
    assert {"password_reset_requested", "password_reset"} <= actions
    assert "security.password_reset" in {row.template for row in await notices(url, member.id)}


async def test_an_expired_reset_link_is_refused(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    from mobility.auth.credentials import hash_token

    token = secrets.token_urlsafe(32)
    async with system_session(url) as session:
        session.add(
            PasswordReset(
                user_id=world.trainer.id,
                token_hash=hash_token(token),
                expires_at=utcnow() - timedelta(seconds=1),
            )
        )
    async with api_client(url) as client:
        response = await client.post(
            "/api/v1/auth/password-reset/complete", json={"token": token, "password": NEW_PASSWORD}
        )
        problem(response, 410, "reset_link_unusable")


async def test_security_notices_for_new_addresses_password_changes_2fa_off_and_new_memberships(
    migrated_database_url: str,
) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with system_session(url) as session:
        member = await make_user(session, world.tenant, SystemRole.trainer)
    async with api_client(url) as first_place, api_client(url) as second_place:
        headers = await login(first_place, member.email, PASSWORD, world.tenant.code)
        await login(first_place, member.email, PASSWORD, world.tenant.code)
        assert [
            row.template for row in await notices(url, member.id)
        ] == []  # first logins: nothing to compare
        await login(second_place, member.email, PASSWORD, world.tenant.code)
        new_login = [row for row in await notices(url, member.id) if row.template == "security.new_login"]
        assert {row.channel for row in new_login} == {NotificationChannel.in_app, NotificationChannel.email}
        assert new_login[0].tenant_id == world.tenant.id
        changed = await first_place.post(
            "/api/v1/me/password",
            headers=headers,
            json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
        )
        assert changed.status_code == 200, changed.text
        # 2FA reset by an Admin (the account belongs to this tenant only).
        async with system_session(url) as session:
            from mobility.users.models import User

            await session.execute(
                update(User)
                .where(User.id == member.id)
                .values(two_factor_enabled=True, totp_secret="JBSWY3DPEHPK3PXP")
            )
        reset = await call(first_place, "POST", f"/users/{member.id}/reset-2fa", world.auth(world.admin))
        assert reset.status_code == 200, reset.text
    templates = [
        row.template for row in await notices(url, member.id) if row.channel == NotificationChannel.email
    ]
    assert templates == ["security.new_login", "security.password_changed", "security.two_factor_disabled"]


async def test_accepting_an_invitation_notifies_the_new_membership(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    async with system_session(url) as session:
        trainer_role = await system_role(session, SystemRole.trainer)
        elsewhere = await make_user(session, world.other, SystemRole.trainer)
    async with api_client(url) as client:
        invited = await call(
            client,
            "POST",
            "/users",
            world.auth(world.admin),
            json={"email": elsewhere.email, "name": "X", "roleId": str(trainer_role.id)},
        )
        headers = await login(client, elsewhere.email, PASSWORD, world.other.code)
        accepted = await client.post(f"/api/v1/me/invitations/{invited.json()['id']}/accept", headers=headers)
        assert accepted.status_code == 204, accepted.text
    rows = [row for row in await notices(url, elsewhere.id) if row.template == "security.membership_added"]
    assert {(row.tenant_id, row.channel) for row in rows} == {
        (world.tenant.id, NotificationChannel.in_app),
        (world.tenant.id, NotificationChannel.email),
    }
    assert rows[0].payload == {"tenant_name": world.tenant.name, "role_name": "Trainer"}
