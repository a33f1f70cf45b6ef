"""Notifications: queued with the event that causes them (`notify`, the transactional outbox), read by
their recipient in the app (/me/notifications), and each user's e-mail preferences.

`notify` writes its rows in the caller's transaction: a rolled-back event sends nothing, a committed one
is never lost (the worker delivers it, mobility.worker). A dedupe key makes the same reminder for the
same thing a single row per channel and recipient, however often the job that finds it runs. In-app
rows are delivered as they are written; e-mail rows wait for the worker, which checks the recipient's
preferences when it sends (a preference changed meanwhile counts) and renders the template then.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.core import audit
from mobility.core.errors import InvalidInput, NotFound
from mobility.core.models import new_id, utcnow
from mobility.core.pagination import PageParams, paginate, time_key
from mobility.core.scope import TenancyViolation, require_scope
from mobility.notifications import templates
from mobility.notifications.models import (
    Notification,
    NotificationChannel,
    NotificationPreference,
    NotificationStatus,
)
from mobility.notifications.templates import LOCKED, Category, InvalidNotification

IN_APP, EMAIL = NotificationChannel.in_app, NotificationChannel.email
MAX_DEDUPE_KEY = 400


def _insert(session: AsyncSession):
    return postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert


async def notify(
    session: AsyncSession,
    template: str,
    payload: Mapping[str, Any],
    *,
    recipient_id: uuid.UUID | None = None,
    recipient_email: str | None = None,
    channels: Iterable[NotificationChannel] = (IN_APP, EMAIL),
    dedupe_key: str | None = None,
    tenant_id: uuid.UUID | None = None,
    language: str = templates.DEFAULT_LANGUAGE,
) -> list[Notification]:
    """Queue `template` with `payload` for a user (`recipient_id`) or an address without an account
    (`recipient_email`, e-mail only), on each of `channels`, in the session's transaction.

    The tenant is the scope's; under the system scope (jobs, logins) pass `tenant_id`. An unknown
    template or a payload that lacks (or adds) fields raises InvalidNotification here, at queue time.
    With `dedupe_key`, a row that exists already for the same key, channel and recipient is kept and
    nothing new is written (INSERT ... ON CONFLICT DO NOTHING): returns only the rows written now.
    In-app needs a user; it is skipped for an address alone."""
    scope = require_scope(session)
    tenant = tenant_id or scope.tenant_id
    if tenant is None:
        raise TenancyViolation("A notification belongs to a tenant: pass tenant_id under the system scope.")
    if not scope.system and tenant != scope.tenant_id:
        raise TenancyViolation("A notification for another tenant.")
    clean = templates.checked_payload(template, dict(payload))
    if templates.template(template).secret_fields and NotificationChannel.in_app in set(channels):
        raise InvalidNotification(f"{template!r} carries a credential: e-mail only, never in-app")
    if recipient_id is None and not recipient_email:
        raise InvalidNotification("a notification needs a recipient_id or a recipient_email")
    if dedupe_key is not None and not 0 < len(dedupe_key) <= MAX_DEDUPE_KEY:
        raise InvalidNotification(f"a dedupe key has 1 to {MAX_DEDUPE_KEY} characters")
    now = utcnow()
    written: list[Notification] = []
    for channel in dict.fromkeys(NotificationChannel(c) for c in channels):
        if channel is IN_APP and recipient_id is None:
            continue
        recipient = str(recipient_id) if recipient_id is not None else f"email:{recipient_email.lower()}"
        values = {
            "id": new_id(),
            "tenant_id": tenant,
            "recipient_id": recipient_id,
            "recipient_email": recipient_email,
            "channel": channel,
            "template": template,
            "payload": clean,
            "language": language,
            # In-app rows are delivered as written; e-mails wait for the worker.
            "status": NotificationStatus.sent if channel is IN_APP else NotificationStatus.queued,
            "sent_at": now if channel is IN_APP else None,
            "next_attempt_at": None if channel is IN_APP else now,
            "dedupe_key": f"{dedupe_key}|{channel.value}|{recipient}" if dedupe_key is not None else None,
            "created_by": scope.actor_id,
            "updated_by": scope.actor_id,
            "created_at": now,
            "updated_at": now,
        }
        statement = _insert(session)(Notification).values(**values)
        if dedupe_key is not None:
            statement = statement.on_conflict_do_nothing(
                index_elements=[Notification.__table__.c.tenantId, Notification.__table__.c.dedupeKey]
            )
        row = (await session.execute(statement.returning(Notification))).scalar_one_or_none()
        if row is not None:
            written.append(row)
    return written


async def notify_account(
    session: AsyncSession,
    user: Any,
    template: str,
    payload: Mapping[str, Any],
    *,
    tenant_id: uuid.UUID | None = None,
    channels: Iterable[NotificationChannel] = (IN_APP, EMAIL),
) -> list[Notification]:
    """A notice about an account (security notices, a reset link): in `tenant_id` (the tenant acted
    in), else the account's primary tenant, else its first active membership; an account in no tenant
    gets none (a notification belongs to a tenant). Returns the rows written."""
    from mobility.tenants.models import Tenant
    from mobility.users.models import UserTenant

    tenant = tenant_id or user.tenant_id
    if tenant is None:
        scope = require_scope(session)
        if scope.system:
            tenant = (
                await session.execute(
                    select(UserTenant.tenant_id)
                    .where(
                        UserTenant.user_id == user.id,
                        UserTenant.status == "active",
                        UserTenant.tenant_id.in_(select(Tenant.id).where(Tenant.is_active)),
                    )
                    .order_by(UserTenant.is_primary.desc(), UserTenant.created_at)
                    .limit(1)
                )
            ).scalar()
        else:
            tenant = scope.tenant_id
    if tenant is None:
        return []
    return await notify(session, template, payload, recipient_id=user.id, channels=channels, tenant_id=tenant)


# --- in the app: the caller's own -------------------------------------------------------------------


def _mine(scope):
    return and_(Notification.recipient_id == scope.actor_id, Notification.channel == IN_APP)


# Unread first (0), then newest first.
_READ_RANK = case((Notification.read_at.is_(None), 0), else_=1)


@dataclass(frozen=True)
class InboxCursor:
    rank: int
    created_at: datetime
    id: uuid.UUID


def _encode_cursor(row: Notification) -> str:
    import base64
    import json

    value = [0 if row.read_at is None else 1, row.created_at.isoformat(), str(row.id)]
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> InboxCursor:
    import base64
    import json

    try:
        rank, created, ident = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        parsed = InboxCursor(int(rank), datetime.fromisoformat(created), uuid.UUID(ident))
    except (ValueError, TypeError, json.JSONDecodeError):
        raise InvalidInput("The cursor is not valid.", field="cursor") from None
    if parsed.rank not in (0, 1) or parsed.created_at.tzinfo is None:
        raise InvalidInput("The cursor is not valid.", field="cursor")
    return parsed


async def my_notifications(
    session: AsyncSession, *, params: PageParams, unread_only: bool = False
) -> tuple[list[Notification], str | None]:
    """The caller's in-app notifications in the current tenant: unread first, then newest first."""
    scope = require_scope(session)
    statement = select(Notification).where(_mine(scope))
    if unread_only:
        statement = statement.where(Notification.read_at.is_(None))
    if params.cursor:
        after = _decode_cursor(params.cursor)
        statement = statement.where(
            or_(
                after.rank < _READ_RANK,
                and_(
                    after.rank == _READ_RANK,
                    or_(
                        Notification.created_at < after.created_at,
                        and_(Notification.created_at == after.created_at, Notification.id < after.id),
                    ),
                ),
            )
        )
    statement = statement.order_by(_READ_RANK, Notification.created_at.desc(), Notification.id.desc())
    rows = list((await session.execute(statement.limit(params.limit + 1))).scalars())
    next_cursor = None
    if len(rows) > params.limit:
        rows = rows[: params.limit]
        next_cursor = _encode_cursor(rows[-1])
    return rows, next_cursor


async def unread_count(session: AsyncSession) -> int:
    scope = require_scope(session)
    return (
        await session.execute(
            select(func.count()).select_from(Notification).where(_mine(scope), Notification.read_at.is_(None))
        )
    ).scalar_one()


async def mark_read(session: AsyncSession, notification_id: uuid.UUID) -> Notification:
    """One of the caller's notifications read (again: nothing changes); anyone else's is 404."""
    scope = require_scope(session)
    row = (
        await session.execute(select(Notification).where(_mine(scope), Notification.id == notification_id))
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("No such notification.")
    if row.read_at is None:
        row.read_at = utcnow()
        await session.flush()
    return row


async def mark_all_read(session: AsyncSession) -> int:
    scope = require_scope(session)
    result = await session.execute(
        update(Notification)
        .where(_mine(scope), Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


# --- the tenant's outbox (Admins: the dead ones and their errors) -------------------------------------

OUTBOX_SORT_KEYS = {"createdAt": time_key(Notification.created_at)}


async def list_outbox(
    session: AsyncSession,
    *,
    params: PageParams,
    status: NotificationStatus | None = None,
    channel: NotificationChannel | None = None,
) -> tuple[list[Notification], str | None]:
    """The tenant's notifications (the row rules: an Admin all of them, anyone else their own)."""
    statement = select(Notification)
    if status is not None:
        statement = statement.where(Notification.status == status)
    if channel is not None:
        statement = statement.where(Notification.channel == channel)
    return await paginate(
        session,
        statement,
        params=params,
        sort_keys=OUTBOX_SORT_KEYS,
        default_sort="-createdAt",
        id_column=Notification.id,
    )


class NotRetryable(InvalidInput):
    code, title = "not_retryable", "Only a failed e-mail can be sent again"


async def retry(session: AsyncSession, notification_id: uuid.UUID) -> Notification:
    """A dead (failed) e-mail queued again, with a fresh count of attempts."""
    row = (
        await session.execute(select(Notification).where(Notification.id == notification_id))
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("No such notification.")
    if row.status != NotificationStatus.failed or row.channel != EMAIL:
        raise NotRetryable(f"This notification is {row.status.value}; only a failed e-mail is sent again.")
    row.status, row.attempts, row.next_attempt_at, row.lease_until = (
        NotificationStatus.queued,
        0,
        utcnow(),
        None,
    )
    await session.flush()
    return row


# --- preferences --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreferenceView:
    category: str
    email: bool
    locked: bool


async def my_preferences(session: AsyncSession) -> list[PreferenceView]:
    """Every category with whether it comes by e-mail; security and account e-mails always do."""
    scope = require_scope(session)
    rows = {
        row.category: row.email
        for row in (
            await session.execute(
                select(NotificationPreference).where(NotificationPreference.user_id == scope.actor_id)
            )
        ).scalars()
    }
    return [
        PreferenceView(
            category.value, True if category in LOCKED else rows.get(category.value, True), category in LOCKED
        )
        for category in Category
    ]


def category_of(name: str) -> Category:
    try:
        return Category(name)
    except ValueError:
        raise NotFound(
            f"No notification category {name!r}; known: {', '.join(c.value for c in Category)}."
        ) from None


async def set_preference(session: AsyncSession, category_name: str, *, email: bool) -> PreferenceView:
    scope = require_scope(session)
    category = category_of(category_name)
    if category in LOCKED and not email:
        raise InvalidInput(f"{category.value} e-mails cannot be turned off.", field="email")
    row = (
        await session.execute(
            select(NotificationPreference)
            .where(
                NotificationPreference.user_id == scope.actor_id, NotificationPreference.category == category
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    if row is None:
        session.add(NotificationPreference(user_id=scope.actor_id, category=category.value, email=email))
    elif row.email != email:
        row.email = email
    await audit.flush_as(
        session, "notification_preference.update", conflict="The preference changed meanwhile."
    )
    return PreferenceView(category.value, email, category in LOCKED)


async def wants_email(session: AsyncSession, rows: list[Notification]) -> set[uuid.UUID]:
    """Under the system scope (the worker): the ids of `rows` whose recipient has not turned their
    template's category off by e-mail in the row's tenant. Rows for an address alone always go."""
    optional = [
        row
        for row in rows
        if row.recipient_id is not None and templates.template(row.template).category not in LOCKED
    ]
    off: set[tuple[uuid.UUID, uuid.UUID, str]] = set()
    if optional:
        found = await session.execute(
            select(
                NotificationPreference.tenant_id,
                NotificationPreference.user_id,
                NotificationPreference.category,
            ).where(
                NotificationPreference.user_id.in_({row.recipient_id for row in optional}),
                NotificationPreference.email.is_(False),
            )
        )
        off = {tuple(row) for row in found}
    return {row.id for row in rows if row not in optional} | {
        row.id
        for row in optional
        if (row.tenant_id, row.recipient_id, templates.template(row.template).category.value) not in off
    }


@dataclass(frozen=True)
class InboxItem:
    id: uuid.UUID
    template: str
    category: str
    title: str
    payload: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


async def inbox_view(session: AsyncSession, rows: list[Notification]) -> list[InboxItem]:
    """Rows as the inbox shows them, each with its rendered title (the tenant's name for the brand)."""
    from mobility.tenants.models import Tenant

    names = {}
    if rows:
        names = dict(
            (
                await session.execute(
                    select(Tenant.id, Tenant.name).where(Tenant.id.in_({r.tenant_id for r in rows}))
                )
            ).all()
        )
    items = []
    for row in rows:
        known = row.template in templates.TEMPLATES
        items.append(
            InboxItem(
                id=row.id,
                template=row.template,
                category=templates.template(row.template).category.value if known else "updates",
                title=templates.render_subject(
                    row.template, row.payload, language=row.language, brand_name=names.get(row.tenant_id, "")
                ),
                payload=row.payload,
                created_at=row.created_at,
                read_at=row.read_at,
            )
        )
    return items
