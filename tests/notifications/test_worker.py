"""The worker delivers queued e-mails to a real SMTP server process: each once, with a stable Message-ID;
faults (refused, busy, timed out, dropped mid-message) end delivered or dead with their error; a claim
left by a dead worker is taken again after its lease; SIGTERM stops gracefully; two workers at once
never send one message twice; the one window no protocol closes is shown with the same Message-ID."""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from mobility.authz.permissions import SystemRole
from mobility.core.models import utcnow
from mobility.notifications.models import Notification, NotificationChannel, NotificationStatus
from mobility.notifications.service import notify
from mobility.settings.models import Setting
from mobility.worker import queue
from tests.notifications.conftest import Sink, run_worker, worker_process, worker_settings
from tests.support.factories import make_tenant, make_user
from tests.support.sessions import Db, system_session

EMAIL = (NotificationChannel.email,)
AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def address(kind: str = "ok") -> str:
    return f"{kind}-{secrets.token_hex(4)}@example.org"


async def queue_mail(db: Db, tenant, *addresses: str, template: str = "security.password_changed") -> list:
    payload = {"ip_address": "203.0.113.7", "at": AT.isoformat()}
    ids = []
    async with system_session(db.url) as session:
        for to in addresses:
            [row] = await notify(
                session, template, payload, recipient_email=to, channels=EMAIL, tenant_id=tenant.id
            )
            ids.append(row.id)
    return ids


async def rows(db: Db, ids) -> list[Notification]:
    async with system_session(db.url) as session:
        found = await session.execute(select(Notification).where(Notification.id.in_(ids)))
        by_id = {row.id: row for row in found.scalars()}
    return [by_id[i] for i in ids]


async def new_tenant(db: Db, **values):
    async with system_session(db.url) as session:
        return await make_tenant(session, **values)


async def test_each_queued_email_is_delivered_once_with_a_stable_message_id(
    outbox_db: Db, smtp_sink: Sink
) -> None:
    tenant = await new_tenant(outbox_db)
    addresses = [address() for _ in range(3)]
    ids = await queue_mail(outbox_db, tenant, *addresses)
    settings = worker_settings(outbox_db, smtp_sink)
    await run_worker(settings, outbox_db)
    for to, notification_id in zip(addresses, ids, strict=True):
        [message] = smtp_sink.messages(to)
        assert message["Message-ID"] == f"<{notification_id}@mobility.test>"
        assert message["Subject"] == "Your password was changed"
    done = await rows(outbox_db, ids)
    assert [(row.status, row.attempts, row.last_error) for row in done] == [
        (NotificationStatus.sent, 1, None)
    ] * 3
    assert all(row.sent_at is not None and row.lease_until is None for row in done)
    # Nothing is due any more: a second run sends nothing again.
    await run_worker(settings, outbox_db)
    assert all(len(smtp_sink.messages(to)) == 1 for to in addresses)


async def test_the_message_is_branded_escaped_and_comes_from_the_tenants_sender(
    outbox_db: Db, smtp_sink: Sink
) -> None:
    tenant = await new_tenant(
        outbox_db,
        name=f"Acme <b>&</b> Co {secrets.token_hex(3)}",
        branding={"colorHex": "#12ab34", "logoUrl": "https://cdn.example.org/logo.png"},
        contact_info={"phone": "+679 123 4567"},
    )
    async with system_session(outbox_db.url) as session:
        session.add(Setting(tenant_id=tenant.id, key="notifications.senderName", value="WTI Admissions"))
        session.add(Setting(tenant_id=tenant.id, key="notifications.replyTo", value="admissions@wti.example"))
    to = address()
    await queue_mail(outbox_db, tenant, to)
    await run_worker(worker_settings(outbox_db, smtp_sink), outbox_db)
    [message] = smtp_sink.messages(to)
    assert message["From"].addresses[0].display_name == "WTI Admissions"
    assert message["From"].addresses[0].addr_spec == "no-reply@mobility.test"
    assert str(message["Reply-To"]) == "admissions@wti.example"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Your password was changed" in text and "+679 123 4567" in text
    assert "background:#12ab34" in html and "https://cdn.example.org/logo.png" in html
    # The tenant's name is text in the HTML, never markup.
    assert "Acme &lt;b&gt;&amp;&lt;/b&gt; Co" in html and "<b>&</b>" not in html


@pytest.mark.parametrize(
    ("kind", "attempts", "status", "error", "received"),
    [
        # Refused for good (5xx): dead at once, with the server's answer.
        ("refuse", 1, NotificationStatus.failed, "550", 0),
        # Busy every time (4xx): retried up to the maximum (3 here), then dead with the last error.
        ("busy", 3, NotificationStatus.failed, "451", 0),
        # Temporary failures, then accepted.
        ("flaky2", 3, NotificationStatus.sent, None, 1),
        # No answer within the client's timeout, then accepted.
        ("slow1", 2, NotificationStatus.sent, None, 1),
        # The connection dropped in the middle of the message, then accepted.
        ("drop1", 2, NotificationStatus.sent, None, 1),
    ],
)
async def test_smtp_faults_end_delivered_or_dead_with_their_error(
    outbox_db: Db, smtp_sink: Sink, kind, attempts, status, error, received
) -> None:
    tenant = await new_tenant(outbox_db)
    to, control = address(kind), address()
    ids = await queue_mail(outbox_db, tenant, to, control)
    await run_worker(worker_settings(outbox_db, smtp_sink), outbox_db)
    row, other = await rows(outbox_db, ids)
    assert (row.status, row.attempts) == (status, attempts)
    assert (error is None and row.last_error is None) or (error in (row.last_error or ""))
    assert len(smtp_sink.messages(to)) == received
    # One bad message does not hold back the others.
    assert other.status == NotificationStatus.sent and len(smtp_sink.messages(control)) == 1


def test_backoff_doubles_is_capped_and_jittered_within_half_to_all() -> None:
    from mobility.core.config import Settings

    rule = Settings(notify_retry_base_seconds=60, notify_retry_max_seconds=600)
    for attempts, full in ((1, 60), (2, 120), (3, 240), (4, 480), (5, 600), (9, 600)):
        waits = [queue.backoff(attempts, rule).total_seconds() for _ in range(200)]
        assert all(full / 2 <= wait <= full for wait in waits), (attempts, min(waits), max(waits))
        assert max(waits) - min(waits) > full / 10  # jittered, not one fixed value


async def test_a_failed_attempt_is_retried_after_its_backoff_not_before(
    outbox_db: Db, smtp_sink: Sink
) -> None:
    tenant = await new_tenant(outbox_db)
    [notification_id] = await queue_mail(outbox_db, tenant, address("flaky1"))
    before = utcnow()
    settings = worker_settings(outbox_db, smtp_sink, notify_retry_base_seconds=60)
    await run_worker(settings, outbox_db)
    [row] = await rows(outbox_db, [notification_id])
    assert (row.status, row.attempts) == (NotificationStatus.queued, 1)
    assert "451" in row.last_error
    assert before + timedelta(seconds=30) <= row.next_attempt_at <= utcnow() + timedelta(seconds=60)
    await run_worker(settings, outbox_db)  # not due yet: untouched
    [again] = await rows(outbox_db, [notification_id])
    assert (again.status, again.attempts) == (NotificationStatus.queued, 1)
    async with system_session(outbox_db.url) as session:
        await session.execute(
            update(Notification).where(Notification.id == notification_id).values(next_attempt_at=utcnow())
        )
    await run_worker(settings, outbox_db)
    [sent] = await rows(outbox_db, [notification_id])
    assert (sent.status, sent.attempts, sent.last_error) == (NotificationStatus.sent, 2, None)


async def test_a_claim_whose_lease_expired_is_taken_again_and_a_live_one_is_not(
    outbox_db: Db, smtp_sink: Sink
) -> None:
    tenant = await new_tenant(outbox_db)
    dead_to, live_to = address(), address()
    dead_id, live_id = await queue_mail(outbox_db, tenant, dead_to, live_to)
    async with system_session(outbox_db.url) as session:
        # As a worker leaves them: claimed (one attempt), one lease run out, one still running.
        for notification_id, lease in ((dead_id, -1), (live_id, 600)):
            await session.execute(
                update(Notification)
                .where(Notification.id == notification_id)
                .values(
                    status=NotificationStatus.sending,
                    attempts=1,
                    lease_until=utcnow() + timedelta(seconds=lease),
                )
            )
    await run_worker(worker_settings(outbox_db, smtp_sink), outbox_db)
    dead, live = await rows(outbox_db, [dead_id, live_id])
    assert (dead.status, dead.attempts) == (NotificationStatus.sent, 2)
    assert len(smtp_sink.messages(dead_to)) == 1
    assert (live.status, live.attempts) == (NotificationStatus.sending, 1)
    assert smtp_sink.messages(live_to) == []
    async with system_session(outbox_db.url) as session:  # leave nothing behind for the next test
        await session.execute(
            update(Notification).where(Notification.id == live_id).values(status=NotificationStatus.cancelled)
        )


async def test_a_message_whose_worker_keeps_dying_ends_dead(outbox_db: Db, smtp_sink: Sink) -> None:
    tenant = await new_tenant(outbox_db)
    settings = worker_settings(outbox_db, smtp_sink)
    [notification_id] = await queue_mail(outbox_db, tenant, address())
    async with system_session(outbox_db.url) as session:
        await session.execute(
            update(Notification)
            .where(Notification.id == notification_id)
            .values(
                status=NotificationStatus.sending,
                attempts=settings.notify_max_attempts,
                lease_until=utcnow() - timedelta(seconds=1),
            )
        )
    await run_worker(settings, outbox_db)
    [row] = await rows(outbox_db, [notification_id])
    assert row.status == NotificationStatus.failed
    assert "lease expired" in row.last_error


async def _wait_for(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_the_window_after_acceptance_resends_with_the_same_message_id(
    outbox_db: Db, smtp_sink: Sink
) -> None:
    """A worker killed (SIGKILL) after the server accepted a message and before recording it: the
    message is sent again once the lease expires, and carries the same Message-ID."""
    tenant = await new_tenant(outbox_db)
    doomed = address("kill")
    # First of its batch (the queue is taken in order of nextAttemptAt): nothing before it is still
    # being recorded when the worker dies (a worker records one result while it sends the next).
    ids = await queue_mail(outbox_db, tenant, doomed, address(), address())
    settings = worker_settings(outbox_db, smtp_sink, worker_lease_seconds=1, worker_batch_size=10)
    process = worker_process(settings, "--once")
    (smtp_sink.directory / "killpid").write_text(str(process.pid))
    await asyncio.to_thread(process.wait, 60)
    assert process.returncode == -signal.SIGKILL
    [first] = smtp_sink.messages(doomed)
    left = await rows(outbox_db, ids)
    assert left[0].status == NotificationStatus.sending  # sent, but never recorded
    await asyncio.sleep(1.1)  # the lease runs out
    again = worker_process(settings, "--once")
    out, err = await asyncio.to_thread(again.communicate, timeout=60)
    assert again.returncode == 0, err
    twice = smtp_sink.messages(doomed)
    assert len(twice) == 2 and twice[1]["Message-ID"] == first["Message-ID"] == f"<{ids[0]}@mobility.test>"
    done = await rows(outbox_db, ids)
    assert [row.status for row in done] == [NotificationStatus.sent] * 3
    assert done[0].attempts == 2
    # Every other message of the batch was received exactly once (none lost, none doubled).
    for row in done[1:]:
        assert len(smtp_sink.messages(row.recipient_email)) == 1


async def test_sigterm_finishes_the_message_in_hand_and_claims_nothing_new(
    outbox_db: Db, smtp_sink: Sink
) -> None:
    tenant = await new_tenant(outbox_db)
    addresses = [address("wait") for _ in range(6)]
    ids = await queue_mail(outbox_db, tenant, *addresses)
    settings = worker_settings(outbox_db, smtp_sink, worker_batch_size=10)
    process = worker_process(settings)
    await _wait_for(lambda: any(smtp_sink.messages(to) for to in addresses))
    process.send_signal(signal.SIGTERM)
    out, err = await asyncio.to_thread(process.communicate, timeout=30)
    assert process.returncode == 0, err
    done = await rows(outbox_db, ids)
    sent = [row for row in done if row.status == NotificationStatus.sent]
    assert 1 <= len(sent) < 6
    # The rest went back to the queue, their attempt not counted; nothing was left claimed.
    assert all(
        (row.status, row.attempts) == (NotificationStatus.queued, 0) for row in done if row not in sent
    )
    assert sum(len(smtp_sink.messages(to)) for to in addresses) == len(sent)
    await run_worker(settings, outbox_db)
    assert [len(smtp_sink.messages(to)) for to in addresses] == [1] * 6


@pytest.mark.postgres_only
async def test_two_workers_at_once_send_each_message_exactly_once(outbox_db: Db, smtp_sink: Sink) -> None:
    tenant = await new_tenant(outbox_db)
    addresses = [address() for _ in range(40)]
    ids = await queue_mail(outbox_db, tenant, *addresses)
    settings = worker_settings(outbox_db, smtp_sink, worker_batch_size=5)
    processes = [worker_process(settings, "--once") for _ in range(2)]
    outputs = [await asyncio.to_thread(p.communicate, timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert [len(smtp_sink.messages(to)) for to in addresses] == [1] * 40
    assert {row.status for row in await rows(outbox_db, ids)} == {NotificationStatus.sent}
    # Both took part (each claims its own batches; SKIP LOCKED lets neither wait for the other).
    sent = [int(out.split("email: ")[1].split(" sent")[0]) for out, _ in outputs if "email: " in out]
    assert sum(sent) == 40


async def test_a_user_who_turned_reminders_off_gets_no_reminder_but_security_notices(
    outbox_db: Db, smtp_sink: Sink
) -> None:
    from mobility.notifications.models import NotificationPreference

    async with system_session(outbox_db.url) as session:
        tenant = await make_tenant(session)
        user = await make_user(session, tenant, SystemRole.trainer, email=address())
        session.add(
            NotificationPreference(tenant_id=tenant.id, user_id=user.id, category="reminders", email=False)
        )
        # Even a row saying so does not turn security notices off.
        session.add(
            NotificationPreference(tenant_id=tenant.id, user_id=user.id, category="security", email=False)
        )
        reminder = {
            "candidate_name": "Sera Tuilagi",
            "document_type": "passport",
            "expiry_date": "2026-05-01",
            "days_left": 30,
        }
        [remind] = await notify(
            session,
            "reminders.document_expiry",
            reminder,
            recipient_id=user.id,
            channels=EMAIL,
            tenant_id=tenant.id,
        )
        [secure] = await notify(
            session,
            "security.password_changed",
            {"at": AT.isoformat()},
            recipient_id=user.id,
            channels=EMAIL,
            tenant_id=tenant.id,
        )
    await run_worker(worker_settings(outbox_db, smtp_sink), outbox_db)
    remind_row, secure_row = await rows(outbox_db, [remind.id, secure.id])
    assert remind_row.status == NotificationStatus.cancelled
    assert secure_row.status == NotificationStatus.sent
    [message] = smtp_sink.messages(user.email)
    assert message["Message-ID"] == f"<{secure.id}@mobility.test>"


async def test_without_an_smtp_host_messages_are_written_as_files(outbox_db: Db, tmp_path) -> None:
    tenant = await new_tenant(outbox_db)
    [notification_id] = await queue_mail(outbox_db, tenant, address())
    from mobility.core.config import Settings

    settings = Settings(database_url=outbox_db.url, data_dir=tmp_path, notify_retry_base_seconds=0)
    await run_worker(settings, outbox_db)
    [row] = await rows(outbox_db, [notification_id])
    assert row.status == NotificationStatus.sent
    assert (tmp_path / "mail" / f"{notification_id}@localhost.eml").is_file()
    assert uuid.UUID(str(notification_id))
