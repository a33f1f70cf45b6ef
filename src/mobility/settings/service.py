"""Tenant settings: known keys, each with a type and a default; unknown keys are refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, EmailStr, Field, StringConstraints, TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.core import audit
from mobility.core.errors import InvalidInput, NotFound
from mobility.core.scope import Scope, TenancyViolation, require_scope
from mobility.documents.models import DocumentType
from mobility.settings.models import Setting
from mobility.vetting.models import VettingCheckType


@dataclass(frozen=True)
class KnownSetting:
    key: str
    type: Any
    default: Any
    description: str

    def value_of(self, stored: Any) -> Any:
        """The value a stored JSON value stands for (None: not set, the default)."""
        return self.default if stored is None else self.validate(stored)

    def validate(self, value: Any) -> Any:
        try:
            return TypeAdapter(self.type).validate_python(value, strict=False)
        except ValidationError as exc:
            raise InvalidInput(
                f"Not a valid value for {self.key}: {exc.errors()[0]['msg']}.", field="value"
            ) from exc


REQUIRE_TWO_FACTOR = KnownSetting(
    "security.requireTwoFactor",
    bool,
    False,
    "Every user of the tenant must set up two-factor authentication.",
)
REQUIRED_VETTING_CHECKS = KnownSetting(
    "vetting.requiredChecks",
    list[VettingCheckType],
    [VettingCheckType.identity, VettingCheckType.police_clearance, VettingCheckType.medical],
    "The vetting checks a candidate must clear before a placement can be offered.",
)
PASSPORT_VALIDITY_MONTHS = KnownSetting(
    "placements.passportValidityMonths",
    Annotated[int, Field(ge=0, le=120)],
    6,
    "How long a passport must stay valid past the contract start for a placement to be offered.",
)
INVITATION_VALIDITY_DAYS = KnownSetting(
    "users.invitationValidityDays",
    Annotated[int, Field(ge=1, le=90)],
    7,
    "How many days an invitation to join the tenant can be accepted.",
)

NOTIFICATION_SENDER_NAME = KnownSetting(
    "notifications.senderName",
    Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None,
    None,
    "The sender name of the tenant's e-mails (null: the tenant's name).",
)
NOTIFICATION_REPLY_TO = KnownSetting(
    "notifications.replyTo",
    EmailStr | None,
    None,
    "Where replies to the tenant's e-mails go (null: no Reply-To).",
)
NOTIFICATION_LANGUAGE = KnownSetting(
    "notifications.language",
    Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")],
    "en",
    "The language of the tenant's notifications (ISO 639-1; English where a template has no translation).",
)

# Reminder kinds and their lead times (days before the date concerned); a document type may have its
# own ("documentExpiry.passport"), else "documentExpiry" applies.
REMINDER_KINDS = ("documentExpiry", "certificateExpiry", "vettingExpiry", "passportValidity")
_REMINDER_KEYS = frozenset(REMINDER_KINDS) | {f"documentExpiry.{kind.value}" for kind in DocumentType}


def _reminder_keys(value: dict[str, list[int]]) -> dict[str, list[int]]:
    unknown = sorted(set(value) - _REMINDER_KEYS)
    if unknown:
        raise ValueError(
            f"unknown reminder {unknown[0]!r}; known: {', '.join(REMINDER_KINDS)}, documentExpiry.<type>"
        )
    for key, days in value.items():
        if len(set(days)) != len(days):
            raise ValueError(f"{key}: each lead time once")
    return {key: sorted(days, reverse=True) for key, days in value.items()}


REMINDER_LEAD_DAYS = KnownSetting(
    "notifications.reminderLeadDays",
    Annotated[
        dict[str, Annotated[list[Annotated[int, Field(ge=0, le=730)]], Field(min_length=0, max_length=6)]],
        AfterValidator(_reminder_keys),
    ],
    {
        "documentExpiry": [60, 30, 7],
        # Renewing a passport takes months (and a placement needs months of validity left); a medical
        # is redone in weeks; a police clearance takes a month or two to be issued.
        "documentExpiry.passport": [180, 90, 30],
        "documentExpiry.police_clearance": [60, 30, 7],
        "documentExpiry.medical": [30, 7],
        "certificateExpiry": [90, 30],
        "vettingExpiry": [30, 7],
        "passportValidity": [180, 90],
    },
    "Days before a document, certificate or vetting check expires (or a passport stops being valid long "
    "enough for an upcoming placement) that a reminder is sent; per document type as documentExpiry.<type>. "
    "A document type's longest lead time is also how far ahead GET /documents/expiring looks for it.",
)


def document_lead_days(lead_days: dict[str, list[int]], document_type: str) -> list[int]:
    """The lead times of a document type (largest first) in a tenant's `notifications.reminderLeadDays`:
    its own ("documentExpiry.<type>"), else the tenant's "documentExpiry", else the default's for the
    type, else the default's "documentExpiry". The one reading of the setting for the expiry reminders
    and the expiring-documents list."""
    default = REMINDER_LEAD_DAYS.default
    own = f"documentExpiry.{document_type}"
    for values in (lead_days, default):
        for key in (own, "documentExpiry"):
            if key in values:
                return sorted(values[key], reverse=True)
    return []


KNOWN: dict[str, KnownSetting] = {
    s.key: s
    for s in (
        REQUIRE_TWO_FACTOR,
        REQUIRED_VETTING_CHECKS,
        PASSPORT_VALIDITY_MONTHS,
        INVITATION_VALIDITY_DAYS,
        NOTIFICATION_SENDER_NAME,
        NOTIFICATION_REPLY_TO,
        NOTIFICATION_LANGUAGE,
        REMINDER_LEAD_DAYS,
    )
}


def known(key: str) -> KnownSetting:
    try:
        return KNOWN[key]
    except KeyError:
        raise NotFound(f"No setting {key!r}; known: {', '.join(sorted(KNOWN))}.") from None


async def get_value(session: AsyncSession, setting: KnownSetting) -> Any:
    """The value in the session's tenant (the data layer scopes the query), or the default. Under the
    system scope, which sees every tenant, the tenant must be named first (`core.scope.in_tenant`)."""
    if require_scope(session).system:
        raise TenancyViolation(f"{setting.key} read under the system scope: name the tenant (in_tenant).")
    stored = (
        await session.execute(select(Setting.value).where(Setting.key == setting.key))
    ).scalar_one_or_none()
    return setting.value_of(stored)


async def list_values(session: AsyncSession) -> list[tuple[KnownSetting, Any, bool]]:
    """Every known setting of the caller's tenant: (setting, value, whether it was set)."""
    stored = {row.key: row.value for row in (await session.execute(select(Setting))).scalars()}
    return [
        (s, s.validate(stored[s.key]) if s.key in stored else s.default, s.key in stored)
        for s in KNOWN.values()
    ]


async def set_value(session: AsyncSession, key: str, value: Any, *, action: str = "setting.update") -> Any:
    """Set a key in the session's tenant: a tenant scope is required (under the system scope the lookup
    below would not be narrowed to one tenant). Recorded in the audit trail as `action`.

    Race-free: the row is changed under its row lock; a key not set yet is inserted with
    `INSERT ... ON CONFLICT DO NOTHING`, and when a concurrent request inserted it first (the INSERT
    waits for that request to end, then does nothing) its row is locked and changed instead. Two first
    writes of one key both succeed, one after the other, where the plain INSERT made one a 500."""
    scope = require_scope(session)
    if scope.system or scope.tenant_id is None:
        raise TenancyViolation("Settings are set in a tenant's scope.")
    setting = known(key)
    clean = TypeAdapter(setting.type).dump_python(setting.validate(value), mode="json")
    locked = (
        select(Setting).where(Setting.key == key).with_for_update().execution_options(populate_existing=True)
    )
    row = (await session.execute(locked)).scalar_one_or_none()
    if row is None:
        created = await _insert_if_absent(session, scope, key, clean)
        if created is not None:
            await audit.record_inserted(session, created, action)
            return clean
        row = (await session.execute(locked)).scalar_one()  # the concurrent request's, committed
    row.value = clean
    await audit.flush_as(session, action, conflict="The setting changed meanwhile.")
    return clean


async def _insert_if_absent(session: AsyncSession, scope: Scope, key: str, value: Any) -> Setting | None:
    """The new row, or None when the key exists (also when a concurrent transaction just made it)."""
    insert = postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(Setting)
        .values(
            tenant_id=scope.tenant_id,
            key=key,
            value=value,
            created_by=scope.actor_id,
            updated_by=scope.actor_id,
        )
        .on_conflict_do_nothing(index_elements=[Setting.__table__.c.tenantId, Setting.__table__.c.key])
        .returning(Setting)
    )
    return (await session.execute(statement)).scalar_one_or_none()


@dataclass(frozen=True)
class SettingValue:
    """A known setting as the current tenant has it."""

    key: str
    value: Any
    default: Any
    description: str
    is_set: bool


def _view(setting: KnownSetting, value: Any, is_set: bool) -> SettingValue:
    def plain(v: Any) -> Any:
        return TypeAdapter(setting.type).dump_python(v, mode="json")

    return SettingValue(setting.key, plain(value), plain(setting.default), setting.description, is_set)


async def list_settings(session: AsyncSession) -> list[SettingValue]:
    return [_view(setting, value, is_set) for setting, value, is_set in await list_values(session)]


async def update_setting(session: AsyncSession, key: str, value: Any) -> SettingValue:
    """Set a known key (404 for others) to a valid value (422 otherwise), recorded as "setting.update"."""
    setting = known(key)
    stored = await set_value(session, key, value, action="setting.update")
    return _view(setting, setting.validate(stored), True)
