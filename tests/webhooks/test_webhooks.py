"""Webhooks: endpoints registered by Admins (secret shown once, rotatable), events delivered signed to a
real HTTP server on loopback (the signature checked by the reference Standard Webhooks library),
retries and the dead state, no redirects, replays with the same event id, endpoints disabled after
failing for days, and the SSRF refusals."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, update
from standardwebhooks import Webhook, WebhookVerificationError

from mobility.core.crypto import secret_box
from mobility.core.models import utcnow
from mobility.notifications.models import Notification, NotificationStatus
from mobility.webhooks import service
from mobility.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.support.admin_api import call, make_world
from tests.support.app import api_client, problem
from tests.support.sessions import get_row, system_session
from tests.webhooks.conftest import Receiver, deliver_webhooks, webhook_settings


async def register(client, world, url: str, events=("candidate.created",)) -> dict:
    response = await call(
        client, "POST", "/webhooks", world.auth(world.admin), json={"url": url, "eventTypes": list(events)}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def publish(url: str, tenant, event_type: str, data: dict) -> list:
    async with system_session(url) as session:
        return [d.id for d in await service.publish(session, event_type, data, tenant_id=tenant.id)]


async def deliveries(url: str, ids) -> list[WebhookDelivery]:
    async with system_session(url) as session:
        rows = {
            d.id: d
            for d in (
                await session.execute(select(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))
            ).scalars()
        }
    return [rows[i] for i in ids]


def verified(secret: str, request: dict) -> dict:
    """The reference implementation's verdict (raises WebhookVerificationError if the signature is wrong)."""
    return Webhook(secret).verify(request["body"], request["headers"])


async def test_an_event_is_delivered_signed_once_to_the_endpoints_that_want_it(
    hook_url: str, receiver: Receiver
) -> None:
    world = await make_world(hook_url)
    path = f"/ok-{world.tenant.code}"
    async with api_client(hook_url, webhook_allow_private_addresses=True) as client:
        created = await register(client, world, receiver.url(path), ("candidate.created", "payment.recorded"))
        other = await register(client, world, receiver.url(path + "-other"), ("placement.changed",))
        shown = await call(client, "GET", f"/webhooks/{created['id']}", world.auth(world.admin))
        assert "secret" not in shown.json() and created["secret"].startswith("whsec_")
        # Another tenant's Admin does not see it.
        problem(await call(client, "GET", f"/webhooks/{created['id']}", world.auth(world.other_admin)), 404)
    [delivery_id] = await publish(
        hook_url, world.tenant, "candidate.created", {"candidateId": "c-1", "name": "Sēra"}
    )
    await publish(hook_url, world.other, "candidate.created", {"candidateId": "elsewhere"})
    await deliver_webhooks(webhook_settings(hook_url), hook_url)
    [request] = receiver.requests(path)
    assert receiver.requests(path + "-other") == []
    body = verified(created["secret"], request)
    [row] = await deliveries(hook_url, [delivery_id])
    assert body == {
        "id": str(row.event_id),
        "type": "candidate.created",
        "timestamp": body["timestamp"],
        "data": {"candidateId": "c-1", "name": "Sēra"},
    }
    assert request["headers"]["webhook-id"] == str(row.event_id)
    assert request["headers"]["content-type"] == "application/json"
    assert (row.status, row.attempts, row.response_status) == (NotificationStatus.sent, 1, 200)
    with pytest.raises(WebhookVerificationError):  # a wrong secret, or a changed body, is refused
        verified(other["secret"], request)
    with pytest.raises(WebhookVerificationError):
        verified(created["secret"], {**request, "body": request["body"].replace("c-1", "c-2")})
    # Nothing more is due: a second run sends nothing again.
    await deliver_webhooks(webhook_settings(hook_url), hook_url)
    assert len(receiver.requests(path)) == 1


@pytest.mark.parametrize(
    ("path", "status", "attempts", "error", "requests"),
    [
        ("/fail", NotificationStatus.failed, 3, "answered 500", 3),
        ("/hang", NotificationStatus.failed, 3, "no answer within 1 s", 3),
        ("/redirect", NotificationStatus.failed, 3, "answered 302, a redirect (not followed)", 3),
        ("/flaky2", NotificationStatus.sent, 3, None, 3),
    ],
)
async def test_endpoint_faults_end_delivered_or_dead_with_their_error(
    hook_url: str, receiver: Receiver, path, status, attempts, error, requests
) -> None:
    world = await make_world(hook_url)
    target = f"{path}-{world.tenant.code}"
    async with api_client(hook_url, webhook_allow_private_addresses=True) as client:
        await register(client, world, receiver.url(target))
    [delivery_id] = await publish(hook_url, world.tenant, "candidate.created", {"n": 1})
    await deliver_webhooks(webhook_settings(hook_url), hook_url)
    [row] = await deliveries(hook_url, [delivery_id])
    assert (row.status, row.attempts, row.last_error) == (status, attempts, error)
    assert len(receiver.requests(target)) == requests
    # Every attempt carried the same event id; no redirect was followed.
    assert {r["headers"]["webhook-id"] for r in receiver.requests(target)} == {str(row.event_id)}
    assert all(r["path"] == target for r in receiver.requests(target))


async def test_a_replay_sends_the_same_event_id_again_and_rotation_signs_with_both_secrets(
    hook_url: str, receiver: Receiver
) -> None:
    world = await make_world(hook_url)
    path = f"/ok-replay-{world.tenant.code}"
    async with api_client(hook_url, webhook_allow_private_addresses=True) as client:
        created = await register(client, world, receiver.url(path))
        [delivery_id] = await publish(hook_url, world.tenant, "candidate.created", {"n": 1})
        await deliver_webhooks(webhook_settings(hook_url), hook_url)
        rotated = await call(
            client, "POST", f"/webhooks/{created['id']}/rotate-secret", world.auth(world.admin)
        )
        assert rotated.status_code == 200 and rotated.json()["secret"] != created["secret"]
        replayed = await call(
            client,
            "POST",
            f"/webhook-deliveries/{delivery_id}/replay",
            world.auth(world.admin),
        )
        assert replayed.status_code == 202, replayed.text
        await deliver_webhooks(webhook_settings(hook_url), hook_url)
        log = await call(
            client,
            "GET",
            "/webhook-deliveries",
            world.auth(world.admin),
            params={"endpointId": created["id"]},
        )
        assert [(d["status"], d["eventId"]) for d in log.json()["items"]] == [
            ("sent", replayed.json()["eventId"]),
            ("sent", replayed.json()["eventId"]),
        ]
    first, again = receiver.requests(path)
    assert first["headers"]["webhook-id"] == again["headers"]["webhook-id"] == replayed.json()["eventId"]
    assert first["body"] == again["body"]
    # After the rotation: two signatures, each verifiable with its secret.
    assert len(again["headers"]["webhook-signature"].split()) == 2
    verified(rotated.json()["secret"], again)
    verified(created["secret"], again)
    with pytest.raises(WebhookVerificationError):
        verified(rotated.json()["secret"], first)


async def test_an_endpoint_failing_for_days_is_disabled_and_its_admins_told(
    hook_url: str, receiver: Receiver
) -> None:
    world = await make_world(hook_url)
    async with api_client(hook_url, webhook_allow_private_addresses=True) as client:
        created = await register(client, world, receiver.url(f"/fail-days-{world.tenant.code}"))
    async with system_session(hook_url) as session:
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == uuid.UUID(created["id"]))
            .values(failing_since=utcnow() - timedelta(days=3, minutes=1))
        )
    await publish(hook_url, world.tenant, "candidate.created", {"n": 1})
    await deliver_webhooks(webhook_settings(hook_url, notify_max_attempts=1), hook_url)
    async with system_session(hook_url) as session:
        endpoint = (
            await session.execute(
                select(WebhookEndpoint).where(WebhookEndpoint.id == uuid.UUID(created["id"]))
            )
        ).scalar_one()
        told = list(
            (
                await session.execute(
                    select(Notification).where(
                        Notification.template == "administration.webhook_disabled",
                        Notification.tenant_id.in_([world.tenant.id]),
                    )
                )
            ).scalars()
        )
    assert not endpoint.is_active and "failed for 3 days" in endpoint.disabled_reason
    assert {row.recipient_id for row in told} == {world.admin.id}
    # Events for a disabled endpoint are no longer queued; enabling it again starts afresh.
    assert await publish(hook_url, world.tenant, "candidate.created", {"n": 2}) == []
    async with api_client(hook_url, webhook_allow_private_addresses=True) as client:
        enabled = await call(
            client, "PATCH", f"/webhooks/{created['id']}", world.auth(world.admin), json={"isActive": True}
        )
        assert (enabled.json()["isActive"], enabled.json()["failingSince"], enabled.json()["disabledAt"]) == (
            True,
            None,
            None,
        )


@pytest.mark.parametrize(
    "url",
    [
        "http://example.org/hook",  # plain http
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",  # link-local: cloud metadata
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[fe80::1]/hook",
        "https://0.0.0.0/hook",
        "https://localhost/hook",
        "https://api.localhost/hook",
        "https://user:secret@example.org/hook",
        "ftp://example.org/hook",
        "https:///no-host",
    ],
)
async def test_private_loopback_and_link_local_addresses_are_refused(hook_url: str, url: str) -> None:
    world = await make_world(hook_url)
    async with api_client(hook_url) as client:
        response = await call(
            client,
            "POST",
            "/webhooks",
            world.auth(world.admin),
            json={"url": url, "eventTypes": ["candidate.created"]},
        )
        assert problem(response, 422, "invalid_input")["field"] == "url"


async def test_a_name_that_resolves_to_a_private_address_is_refused_at_delivery(
    hook_url: str, receiver: Receiver
) -> None:
    world = await make_world(hook_url)
    # Registered while allowed (an on-premises set-up); the setting is off at delivery time.
    async with api_client(hook_url, webhook_allow_private_addresses=True) as client:
        await register(client, world, f"http://localhost:{receiver.port}/ok-private-{world.tenant.code}")
    [delivery_id] = await publish(hook_url, world.tenant, "candidate.created", {"n": 1})
    await deliver_webhooks(
        webhook_settings(hook_url, webhook_allow_private_addresses=False, notify_max_attempts=1), hook_url
    )
    [row] = await deliveries(hook_url, [delivery_id])
    assert row.status == NotificationStatus.failed
    assert "resolves to" in row.last_error and "loopback" in row.last_error
    assert receiver.requests(f"/ok-private-{world.tenant.code}") == []


async def test_signing_secrets_are_stored_encrypted_and_a_secret_no_key_reads_is_never_sent(
    hook_url: str, receiver: Receiver
) -> None:
    world = await make_world(hook_url)
    path = f"/ok-encrypted-{world.tenant.code}"
    async with api_client(hook_url, webhook_allow_private_addresses=True) as client:
        created = await register(client, world, receiver.url(path))
        rotated = await call(
            client, "POST", f"/webhooks/{created['id']}/rotate-secret", world.auth(world.admin)
        )
    shown, previous = rotated.json()["secret"], created["secret"]
    row = await get_row(hook_url, WebhookEndpoint, created["id"])
    # In the database: neither secret as shown (nor its key material), each read back with the key.
    for stored, secret in ((row.secret, shown), (row.previous_secret, previous)):
        assert stored != secret and secret.removeprefix("whsec_") not in stored
        assert secret_box(webhook_settings(hook_url)).decrypt(stored) == secret
    # Stored under another key (a key lost, or the wrong one configured): the delivery is not sent, and
    # ends with the reason.
    other = secret_box(webhook_settings(hook_url, secret_key=Fernet.generate_key().decode()))
    async with system_session(hook_url) as session:
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == uuid.UUID(created["id"]))
            .values(secret=other.encrypt(shown))
        )
    [delivery_id] = await publish(hook_url, world.tenant, "candidate.created", {"n": 1})
    await deliver_webhooks(webhook_settings(hook_url, notify_max_attempts=1), hook_url)
    [delivery] = await deliveries(hook_url, [delivery_id])
    assert delivery.status == NotificationStatus.failed and "cannot be decrypted" in delivery.last_error
    assert receiver.requests(path) == []
