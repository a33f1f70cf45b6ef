"""The notification templates: each key with its category and the payload fields it needs, and the
Jinja2 files that render it (`templates/<language>/<key>.subject.txt`, `.txt`, `.html`).

`notify` refuses an unknown key, or a payload missing (or adding) fields, when the notification is
queued: a mistake shows in the request or job that made it, not days later in the worker. HTML is
autoescaped (a name like `<b>` arrives as text); the subject is one line.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from pydantic import BaseModel, ConfigDict, ValidationError

TEMPLATE_DIR = Path(__file__).parent / "templates"
DEFAULT_LANGUAGE = "en"


class Category(enum.StrEnum):
    """What a user can turn off by e-mail (per tenant); `LOCKED` ones always come."""

    security = "security"  # a login from a new address, a password or 2FA change, a new membership
    account = "account"  # invitations, password-reset links: asked for, so always sent
    reminders = "reminders"  # expiring documents, certificates, vetting checks
    updates = "updates"  # status changes of one's records
    administration = "administration"  # for a tenant's Admins: a webhook endpoint disabled, ...


LOCKED = frozenset({Category.security, Category.account})


class InvalidNotification(ValueError):
    """A notification that cannot be queued: unknown template, payload missing or adding fields."""


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InvitationPayload(Payload):
    tenant_name: str
    role_name: str | None = None
    link: str
    expires_at: datetime


class PasswordResetPayload(Payload):
    link: str
    expires_minutes: int


class NewLoginPayload(Payload):
    tenant_name: str
    ip_address: str
    user_agent: str | None = None
    at: datetime


class AccountChangePayload(Payload):
    ip_address: str | None = None
    at: datetime


class MembershipPayload(Payload):
    tenant_name: str
    role_name: str


class EndpointDisabledPayload(Payload):
    url: str
    failing_since: datetime
    reason: str


class DocumentExpiryPayload(Payload):
    candidate_name: str
    document_type: str
    expiry_date: date
    days_left: int


class CertificateExpiryPayload(Payload):
    candidate_name: str
    course_title: str
    certificate_number: str
    expiry_date: date
    days_left: int


class VettingExpiryPayload(Payload):
    candidate_name: str
    check_type: str
    expiry_date: date
    days_left: int


class VettingLapsedPayload(Payload):
    candidate_name: str
    check_type: str
    expired_on: date
    # A check the tenant requires (vetting.requiredChecks), of a candidate in the work-ready pool.
    required: bool
    in_ready_pool: bool


class PassportValidityPayload(Payload):
    candidate_name: str
    employer_name: str
    position: str
    country: str
    contract_start: date
    days_left: int
    passport_expiry: date | None
    valid_until_needed: date
    validity_months: int


@dataclass(frozen=True)
class Template:
    key: str
    category: Category
    payload: type[Payload]
    # Fields holding a credential (a link with a token): e-mail only, and blanked in the stored
    # payload once the message is sent or has failed for good (the database keeps no usable token).
    secret_fields: frozenset[str] = frozenset()


TEMPLATES: dict[str, Template] = {
    t.key: t
    for t in (
        Template("account.invitation", Category.account, InvitationPayload, frozenset({"link"})),
        Template("account.password_reset", Category.account, PasswordResetPayload, frozenset({"link"})),
        Template("security.new_login", Category.security, NewLoginPayload),
        Template("security.password_changed", Category.security, AccountChangePayload),
        Template("security.password_reset", Category.security, AccountChangePayload),
        Template("security.two_factor_disabled", Category.security, AccountChangePayload),
        Template("security.membership_added", Category.security, MembershipPayload),
        Template("administration.webhook_disabled", Category.administration, EndpointDisabledPayload),
        Template("reminders.document_expiry", Category.reminders, DocumentExpiryPayload),
        Template("reminders.certificate_expiry", Category.reminders, CertificateExpiryPayload),
        Template("reminders.vetting_expiry", Category.reminders, VettingExpiryPayload),
        Template("reminders.vetting_lapsed", Category.reminders, VettingLapsedPayload),
        Template("reminders.passport_validity", Category.reminders, PassportValidityPayload),
    )
}


SPENT = "[sent]"


def template(key: str) -> Template:
    try:
        return TEMPLATES[key]
    except KeyError:
        raise InvalidNotification(f"no notification template {key!r}") from None


def checked_payload(key: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as stored (JSON-ready), if it has exactly the template's fields."""
    try:
        return template(key).payload.model_validate(payload).model_dump(mode="json")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'payload'}: {error['msg']}" for error in exc.errors()
        )
        raise InvalidNotification(f"payload of {key!r} refused: {problems}") from None


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def languages() -> list[str]:
    return sorted(path.name for path in TEMPLATE_DIR.iterdir() if path.is_dir())


def render(key: str, payload: dict[str, Any], *, language: str, brand: dict[str, Any]) -> Rendered:
    """Subject, plain text and HTML of a notification, in `language` if its files exist, else English.
    `brand`: the tenant's name, logoUrl, colorHex and contact (see `branding`)."""
    template(key)
    environment = _environment()
    if not (TEMPLATE_DIR / language / f"{key}.txt").is_file():
        language = DEFAULT_LANGUAGE
    context = {**payload, "brand": brand}

    def one(suffix: str) -> str:
        return environment.get_template(f"{language}/{key}.{suffix}").render(context)

    subject = " ".join(one("subject.txt").split())  # one line: no header injection
    return Rendered(subject=subject, text=one("txt"), html=one("html"))


def branding(tenant_name: str, branding: dict[str, Any] | None, contact: dict[str, Any] | None) -> dict:
    """What the layout shows of a tenant: a colour only if it is a #rrggbb value (it goes into CSS)."""
    branding = branding or {}
    colour = str(branding.get("colorHex") or "")
    valid = (
        len(colour) == 7 and colour.startswith("#") and all(c in "0123456789abcdefABCDEF" for c in colour[1:])
    )
    logo = str(branding.get("logoUrl") or "")
    return {
        "name": tenant_name,
        "logo_url": logo if logo.startswith("https://") else None,
        "color": colour if valid else "#1f4e79",
        "contact": {str(k): str(v) for k, v in (contact or {}).items() if isinstance(v, str | int)},
    }


def render_subject(key: str, payload: dict[str, Any], *, language: str, brand_name: str) -> str:
    """The subject line alone (the in-app list's title)."""
    if key not in TEMPLATES:
        return key
    if not (TEMPLATE_DIR / language / f"{key}.subject.txt").is_file():
        language = DEFAULT_LANGUAGE
    text = (
        _environment()
        .get_template(f"{language}/{key}.subject.txt")
        .render({**payload, "brand": {"name": brand_name}})
    )
    return " ".join(text.split())
