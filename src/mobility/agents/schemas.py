"""Partners' API shapes: agents and brokers share them (PartnerMixin in models.py).

The code is unique per tenant (the database's rule); here, its format. A licence is a number with an
optional expiry (some licences do not expire); an expiry without a number is refused. An expired
licence may be recorded (the service then refuses new candidates from the partner). A phone number
typed without + is read as a number of the partner's `country`. The status changes through its own
actions (suspend with a reason, reactivate, deactivate), never through these shapes.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Any, ClassVar

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mobility.agents.models import PartnerStatus
from mobility.agents.payment_terms import PaymentTerms
from mobility.core.calendar import add_years, today
from mobility.core.contact import EmailAddress, PhoneNumber, PostalAddress, national_phones, person_name
from mobility.core.iso_codes import IsoCountry
from mobility.core.schemas import InputModel, IsoDate, OutputModel, SingleLine, UpdateModel

# Like a tenant's code: A-Z, 0-9 and dashes, not at either end, at most 32 (the column); typed in any
# letter case, kept in upper case.
PARTNER_CODE_PATTERN = r"^[A-Z0-9](?:[A-Z0-9-]{0,30}[A-Z0-9])?$"
# Licence numbers as authorities print them: "RA/2023/045", "LIC-12 345", "No. 778".
_LICENCE_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ./-]*$")
# No authority licenses a recruiter for longer than this; a later expiry is a typo.
LICENCE_YEARS_AHEAD = 20
MAX_NOTES = 5000


class _PartnerFields(InputModel):
    """Every field a partner's record takes from staff, all optional (the create shape requires some)."""

    code: str | None = Field(
        default=None, pattern=PARTNER_CODE_PATTERN, description="A-Z, 0-9 and dashes", examples=["AG-001"]
    )
    name: SingleLine | None = Field(default=None, min_length=1, max_length=200)
    contact_name: person_name(200) | None = None
    email: EmailAddress | None = None
    phone: PhoneNumber | None = None
    address: PostalAddress | None = None
    country: IsoCountry | None = Field(default=None, description="Where the partner is based")
    licence_number: SingleLine | None = Field(default=None, min_length=1, max_length=100)
    licence_expiry: IsoDate | None = None
    payment_terms: PaymentTerms | None = None
    notes: str | None = Field(default=None, min_length=1, max_length=MAX_NOTES)

    @field_validator("code", mode="before")
    @classmethod
    def _upper_code(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("licence_number")
    @classmethod
    def _licence_number(cls, value: str | None) -> str | None:
        if value is not None and not _LICENCE_NUMBER.match(value):
            raise ValueError("A licence number holds letters, digits, spaces and . / -")
        return value

    @field_validator("licence_expiry")
    @classmethod
    def _licence_expiry(cls, value: date | None, info: ValidationInfo) -> date | None:
        if value is not None and value > add_years(today(info), LICENCE_YEARS_AHEAD):
            raise ValueError(f"A licence expiry lies at most {LICENCE_YEARS_AHEAD} years ahead")
        return value

    @model_validator(mode="before")
    @classmethod
    def _national_phones(cls, data: Any) -> Any:
        return national_phones(data, "country", "phone")

    @model_validator(mode="after")
    def _licence(self) -> _PartnerFields:
        if self.licence_expiry is not None and self.licence_number is None:
            raise ValueError("licenceExpiry needs licenceNumber")
        return self


class PartnerCreate(_PartnerFields):
    """A new agent or broker."""

    code: str = Field(pattern=PARTNER_CODE_PATTERN, description="A-Z, 0-9 and dashes", examples=["AG-001"])
    name: SingleLine = Field(min_length=1, max_length=200)


class PartnerUpdate(UpdateModel, _PartnerFields):
    """Staff's changes; null clears an optional field. A licence expiry sent without a number is
    checked against the stored number by the service."""

    nullable: ClassVar[frozenset[str]] = frozenset(
        {
            "contact_name",
            "email",
            "phone",
            "address",
            "country",
            "licence_number",
            "licence_expiry",
            "payment_terms",
            "notes",
        }
    )

    @model_validator(mode="after")
    def _licence(self) -> PartnerUpdate:
        # Here only a body that clears the number while giving an expiry is wrong on its face.
        if "licence_number" in self.model_fields_set and self.licence_number is None and self.licence_expiry:
            raise ValueError("licenceExpiry needs licenceNumber")
        return self


class PartnerSelfUpdate(UpdateModel):
    """What a partner's own login may change on its record: how to reach it. The code, licence,
    terms and notes are staff's."""

    nullable: ClassVar[frozenset[str]] = frozenset({"contact_name", "email", "phone", "address"})

    contact_name: person_name(200) | None = None
    email: EmailAddress | None = None
    phone: PhoneNumber | None = Field(default=None, description="International form: + and the country code")
    address: PostalAddress | None = None


class PartnerSuspension(InputModel):
    reason: str = Field(min_length=1, max_length=1000)


# -------------------------------------------------------------------------------------------- read


class PartnerRead(OutputModel):
    """An agent or broker as its own login and staff see it (no internal notes)."""

    id: uuid.UUID
    code: str
    name: str
    contact_name: str | None
    email: str | None
    phone: str | None
    address: PostalAddress | None
    country: str | None
    licence_number: str | None
    licence_expiry: date | None
    payment_terms: PaymentTerms | None
    status: PartnerStatus
    user_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime

    @field_validator("payment_terms", mode="before")
    @classmethod
    def _none_set(cls, value: Any) -> Any:
        return None if value == {} else value  # the column's default: no terms yet


class PartnerStaffRead(PartnerRead):
    notes: str | None
