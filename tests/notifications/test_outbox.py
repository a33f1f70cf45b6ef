"""notify(): the transactional outbox. Rows are written in the caller's transaction (a rollback sends
nothing), refused at queue time when the template or payload is wrong, and queued once per dedupe key,
channel and recipient."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from mobility.authz.permissions import SystemRole
from mobility.core.scope import TenancyViolation
from mobility.notifications.models import Notification, NotificationChannel, NotificationStatus
from mobility.notifications.service import notify
from mobility.notifications.templates import InvalidNotification
from tests.support.factories import make_tenant, make_user
from tests.support.sessions import Db, scope_of, system_session

AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
CHANGED = {"ip_address": "203.0.113.7", "at": AT.isoformat()}


async def _world(db: Db):
    async with system_session(db.url) as session:
        tenant, other = await make_tenant(session), await make_tenant(session)
        admin = await make_user(session, tenant, SystemRole.admin)
        user = await make_user(session, tenant, SystemRole.trainer)
    return tenant, other, admin, user


async def _rows(db: Db, tenant) -> list[Notification]:
    async with system_session(db.url) as session:
        rows = await session.execute(select(Notification).where(Notification.tenant_id.in_([tenant.id])))
        return list(rows.scalars())


async def test_a_committed_event_queues_its_rows_and_a_rolled_back_one_nothing(db: Db) -> None:
    tenant, _other, admin, user = await _world(db)
    scope = scope_of(tenant.id, admin.id, SystemRole.admin)
    # acting() always rolls back: the event and its notifications go together.
    async with db.acting(scope) as session:
        written = await notify(session, "security.password_changed", CHANGED, recipient_id=user.id)
        assert len(written) == 2
    assert await _rows(db, tenant) == []

    async with system_session(db.url) as session:
        await notify(session, "security.password_changed", CHANGED, recipient_id=user.id, tenant_id=tenant.id)
    rows = {row.channel: row for row in await _rows(db, tenant)}
    assert set(rows) == {NotificationChannel.in_app, NotificationChannel.email}
    # In-app: delivered as written. E-mail: waiting for the worker, due now.
    assert rows[NotificationChannel.in_app].status == NotificationStatus.sent
    assert rows[NotificationChannel.in_app].sent_at is not None
    assert rows[NotificationChannel.email].status == NotificationStatus.queued
    assert rows[NotificationChannel.email].next_attempt_at is not None
    assert rows[NotificationChannel.email].payload == {
        "ip_address": "203.0.113.7",
        "at": "2026-03-01T09:30:00Z",
    }
    assert all(row.recipient_id == user.id and row.read_at is None for row in rows.values())


async def test_the_same_dedupe_key_queues_once_per_channel_and_recipient(db: Db) -> None:
    tenant, _other, admin, user = await _world(db)
    for _ in range(3):
        async with system_session(db.url) as session:
            for recipient in (user.id, admin.id):
                await notify(
                    session,
                    "security.password_changed",
                    CHANGED,
                    recipient_id=recipient,
                    dedupe_key="reminder:x:30",
                    tenant_id=tenant.id,
                )
    rows = await _rows(db, tenant)
    assert sorted((row.recipient_id, row.channel.value) for row in rows) == sorted(
        (recipient, channel) for recipient in (user.id, admin.id) for channel in ("email", "in_app")
    )
    # Another key for the same recipient is another notification.
    async with system_session(db.url) as session:
        again = await notify(
            session,
            "security.password_changed",
            CHANGED,
            recipient_id=user.id,
            dedupe_key="reminder:x:7",
            tenant_id=tenant.id,
        )
    assert len(again) == 2


@pytest.mark.parametrize(
    ("template", "payload", "message"),
    [
        ("security.no_such_template", CHANGED, "no notification template"),
        ("security.password_changed", {"ip_address": "203.0.113.7"}, "at: Field required"),
        ("security.password_changed", {**CHANGED, "password": "x"}, "password: Extra inputs"),
        ("security.password_changed", {**CHANGED, "at": "yesterday"}, "at: Input should be a valid datetime"),
    ],
)
async def test_a_wrong_template_or_payload_is_refused_when_queued(db: Db, template, payload, message) -> None:
    tenant, _other, admin, user = await _world(db)
    async with db.acting(scope_of(tenant.id, admin.id, SystemRole.admin)) as session:
        with pytest.raises(InvalidNotification, match=message):
            await notify(session, template, payload, recipient_id=user.id)


async def test_an_address_without_an_account_gets_e_mail_only(db: Db) -> None:
    tenant, *_ = await _world(db)
    async with system_session(db.url) as session:
        written = await notify(
            session,
            "security.password_changed",
            CHANGED,
            recipient_email="someone@example.org",
            tenant_id=tenant.id,
        )
    assert [(row.channel, row.recipient_email, row.recipient_id) for row in written] == [
        (NotificationChannel.email, "someone@example.org", None)
    ]


async def test_a_tenant_scope_cannot_queue_for_another_tenant(db: Db) -> None:
    tenant, other, admin, user = await _world(db)
    async with db.acting(scope_of(tenant.id, admin.id, SystemRole.admin)) as session:
        with pytest.raises(TenancyViolation):
            await notify(
                session, "security.password_changed", CHANGED, recipient_id=user.id, tenant_id=other.id
            )
    async with system_session(db.url) as session:
        with pytest.raises(TenancyViolation):  # the system scope must say which tenant
            await notify(session, "security.password_changed", CHANGED, recipient_id=user.id)
