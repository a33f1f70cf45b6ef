"""In-app notifications (/me/notifications): one's own, in the current tenant, unread first then newest,
keyset-paged; marking read; the unread count; e-mail preferences; the tenant's outbox for Admins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from mobility.authz.permissions import SystemRole
from mobility.notifications.models import Notification, NotificationChannel, NotificationStatus
from mobility.notifications.service import notify
from tests.support.admin_api import call, make_world, sign_in
from tests.support.app import api_client, problem
from tests.support.factories import add_membership
from tests.support.sessions import system_session

AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


async def _queue(url: str, tenant, user_id, n: int, *, channels=(NotificationChannel.in_app,)) -> list:
    ids = []
    async with system_session(url) as session:
        for i in range(n):
            [row] = await notify(
                session,
                "security.password_changed",
                {"ip_address": f"203.0.113.{i}", "at": (AT + timedelta(minutes=i)).isoformat()},
                recipient_id=user_id,
                channels=channels,
                tenant_id=tenant.id,
            )
            ids.append(row.id)
            # Distinct creation instants, oldest first.
            await session.execute(
                update(Notification)
                .where(Notification.id == row.id)
                .values(created_at=AT + timedelta(minutes=i))
            )
    return ids


async def _pages(client, headers, **params) -> list[dict]:
    items, cursor = [], None
    for _ in range(20):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await call(client, "GET", "/me/notifications", headers, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        cursor = body["nextCursor"]
        if not cursor:
            return items
    raise AssertionError("paging did not end")


async def test_a_user_sees_only_their_own_notifications_in_the_current_tenant(
    migrated_database_url: str,
) -> None:
    url = migrated_database_url
    world = await make_world(url)
    mine = await _queue(url, world.tenant, world.trainer.id, 5)
    # Not in the list: someone else's, an e-mail row, and the same user's in another tenant.
    await _queue(url, world.tenant, world.admin.id, 2)
    await _queue(url, world.tenant, world.trainer.id, 1, channels=(NotificationChannel.email,))
    async with system_session(url) as session:
        await add_membership(session, world.trainer, world.other, SystemRole.trainer)
        other_token = await sign_in(session, world.trainer, world.other)
    elsewhere = await _queue(url, world.other, world.trainer.id, 1)
    headers = world.auth(world.trainer)
    async with api_client(url) as client:
        # Two read already: unread first (newest first), then the read ones (newest first).
        for notification_id in (mine[1], mine[3]):
            response = await call(client, "POST", f"/me/notifications/{notification_id}/read", headers)
            assert response.status_code == 200 and response.json()["readAt"], response.text
        items = await _pages(client, headers, limit=2)
        assert [item["id"] for item in items] == [
            str(i) for i in (mine[4], mine[2], mine[0], mine[3], mine[1])
        ]
        assert items[0]["title"] == "Your password was changed"
        assert items[0]["category"] == "security"
        assert items[0]["payload"]["ip_address"] == "203.0.113.4"
        unread = await _pages(client, headers, unreadOnly="true")
        assert [item["id"] for item in unread] == [str(i) for i in (mine[4], mine[2], mine[0])]
        count = await call(client, "GET", "/me/notifications/unread-count", headers)
        assert count.json() == {"unread": 3}
        # Someone else's notification, or one of another tenant, does not exist for this caller.
        theirs = await _queue(url, world.tenant, world.admin.id, 1)
        for other_id in (theirs[0], elsewhere[0]):
            problem(await call(client, "POST", f"/me/notifications/{other_id}/read", headers), 404)
        marked = await call(client, "POST", "/me/notifications/read-all", headers)
        assert marked.json() == {"marked": 3}
        assert (await call(client, "GET", "/me/notifications/unread-count", headers)).json() == {"unread": 0}
        # The other tenant's one is still unread there.
        other = {"Authorization": f"Bearer {other_token}"}
        assert (await call(client, "GET", "/me/notifications/unread-count", other)).json() == {"unread": 1}
        problem(await call(client, "GET", "/me/notifications", headers, params={"cursor": "nonsense"}), 422)


async def test_preferences_list_every_category_and_security_cannot_be_turned_off(
    migrated_database_url: str,
) -> None:
    url = migrated_database_url
    world = await make_world(url)
    headers = world.auth(world.trainer)
    async with api_client(url) as client:
        listed = (await call(client, "GET", "/me/notification-preferences", headers)).json()
        assert {row["category"]: (row["email"], row["locked"]) for row in listed} == {
            "security": (True, True),
            "account": (True, True),
            "reminders": (True, False),
            "updates": (True, False),
            "administration": (True, False),
        }
        changed = await call(
            client, "PUT", "/me/notification-preferences/reminders", headers, json={"email": False}
        )
        assert changed.json() == {"category": "reminders", "email": False, "locked": False}
        again = (await call(client, "GET", "/me/notification-preferences", headers)).json()
        assert {row["category"]: row["email"] for row in again}["reminders"] is False
        # Another user's preferences are untouched.
        admins = (await call(client, "GET", "/me/notification-preferences", world.auth(world.admin))).json()
        assert {row["category"]: row["email"] for row in admins}["reminders"] is True
        problem(
            await call(
                client, "PUT", "/me/notification-preferences/security", headers, json={"email": False}
            ),
            422,
        )
        problem(
            await call(client, "PUT", "/me/notification-preferences/nope", headers, json={"email": False}),
            404,
        )


async def test_the_outbox_shows_admins_the_dead_and_others_only_their_own(migrated_database_url: str) -> None:
    url = migrated_database_url
    world = await make_world(url)
    [dead] = await _queue(url, world.tenant, world.trainer.id, 1, channels=(NotificationChannel.email,))
    [admins] = await _queue(url, world.tenant, world.admin.id, 1, channels=(NotificationChannel.email,))
    async with system_session(url) as session:
        await session.execute(
            update(Notification)
            .where(Notification.id == dead)
            .values(status=NotificationStatus.failed, attempts=8, last_error="SMTP 550: no such mailbox")
        )
    async with api_client(url) as client:
        response = await call(
            client, "GET", "/notifications", world.auth(world.admin), params={"status": "failed"}
        )
        assert [(row["id"], row["lastError"], row["attempts"]) for row in response.json()["items"]] == [
            (str(dead), "SMTP 550: no such mailbox", 8)
        ]
        everything = await call(client, "GET", "/notifications", world.auth(world.admin))
        assert {str(dead), str(admins)} <= {row["id"] for row in everything.json()["items"]}
        # A Trainer sees their own only; another tenant's Admin none of these.
        trainers = await call(client, "GET", "/notifications", world.auth(world.trainer))
        assert {row["id"] for row in trainers.json()["items"]} == {str(dead)}
        others = await call(client, "GET", "/notifications", world.auth(world.other_admin))
        assert not {str(dead), str(admins)} & {row["id"] for row in others.json()["items"]}
        problem(
            await call(client, "POST", f"/notifications/{dead}/retry", world.auth(world.other_admin)), 404
        )
        # A dead e-mail is queued again; a live one cannot be "retried".
        retried = await call(client, "POST", f"/notifications/{dead}/retry", world.auth(world.admin))
        assert (retried.json()["status"], retried.json()["attempts"]) == ("queued", 0), retried.text
        problem(await call(client, "POST", f"/notifications/{admins}/retry", world.auth(world.admin)), 422)
    async with system_session(url) as session:  # nothing left for a worker of another test
        await session.execute(
            update(Notification)
            .where(Notification.id.in_([dead, admins]))
            .values(status=NotificationStatus.cancelled)
        )


async def test_the_tenants_notification_settings_are_validated(migrated_database_url: str) -> None:
    world = await make_world(migrated_database_url)
    headers = world.auth(world.admin)
    async with api_client(migrated_database_url) as client:
        for key, bad in (
            ("notifications.reminderLeadDays", {"documentExpiry": [30, 30]}),
            ("notifications.reminderLeadDays", {"nextWeek": [7]}),
            ("notifications.reminderLeadDays", {"certificateExpiry": [-1]}),
            ("notifications.reminderLeadDays", {"vettingExpiry": [1, 2, 3, 4, 5, 6, 7]}),
            ("notifications.replyTo", "not an address"),
            ("notifications.senderName", ""),
            ("notifications.language", "english"),
        ):
            problem(await call(client, "PUT", f"/settings/{key}", headers, json={"value": bad}), 422)
        good = await call(
            client,
            "PUT",
            "/settings/notifications.reminderLeadDays",
            headers,
            json={"value": {"documentExpiry": [7, 60, 30], "documentExpiry.passport": [180]}},
        )
        assert good.json()["value"] == {"documentExpiry": [60, 30, 7], "documentExpiry.passport": [180]}
        for key, value in (
            ("notifications.replyTo", "office@wti.example"),
            ("notifications.senderName", "WTI"),
        ):
            response = await call(client, "PUT", f"/settings/{key}", headers, json={"value": value})
            assert response.json()["value"] == value, response.text
