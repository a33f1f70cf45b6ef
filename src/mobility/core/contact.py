"""Contact details as input types: people's names, e-mail addresses, phone numbers, postal addresses.

Phone numbers are parsed against the numbering plans of Google's libphonenumber (the `phonenumbers`
package, installed as its lite edition `phonenumberslite`: the same parser and metadata without the
geocoding and carrier data) and stored in E.164 form, `+` and at most 15 digits (`+6799212345`).
A number typed without `+` is read as a number of the record's own country (a candidate's nationality,
a partner's country): `national_phones` marks it so before the field is validated; without that
country the number must be given in international form.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Annotated, Any, NamedTuple

import phonenumbers
from pydantic import AfterValidator, BeforeValidator, EmailStr, Field
from pydantic.alias_generators import to_camel

from mobility.core.iso_codes import COUNTRY_CODES, IsoCountry
from mobility.core.schemas import InputModel, SingleLine, invisible_characters

# The type users/schemas.py takes for an invitation: email-validator's syntax check (no DNS lookup),
# at most 254 characters (the longest address SMTP carries, RFC 5321 with RFC 3696's erratum).
EmailAddress = Annotated[EmailStr, Field(max_length=254, examples=["mere.tuilagi@example.com"])]

# ---------------------------------------------------------------------------------------------- names

# Besides letters and combining marks (any script; the Polynesian ʻokina is a letter, Lm), the only
# characters of a name: spaces, apostrophes (' ’ ‘), hyphens (- ‐) and full stops (initials, "St.").
_NAME_PUNCTUATION = frozenset("'\u2019\u2018-\u2010. \u200c\u200d")


def _person_name(value: str, max_length: int) -> str:
    value = unicodedata.normalize("NFC", value)
    if invisible_characters(value):
        raise ValueError("A name must not contain control characters")
    value = " ".join(value.split())
    for char in value:
        if char not in _NAME_PUNCTUATION and unicodedata.category(char)[0] not in "LM":
            raise ValueError("A name may contain only letters, spaces, apostrophes, hyphens and full stops")
    if not any(unicodedata.category(char)[0] == "L" for char in value):
        raise ValueError("A name must contain a letter")
    if len(value) > max_length:
        raise ValueError(f"A name must have at most {max_length} characters")
    return value


def person_name(max_length: int) -> Any:
    """A person's name (or one part of it), as written on their travel documents: trimmed, inner white
    space collapsed, NFC-normalised (so "é" typed two ways is stored one way), letters of any script."""
    return Annotated[
        str,
        Field(min_length=1, max_length=max_length),
        AfterValidator(lambda value: _person_name(value, max_length)),
    ]


# ------------------------------------------------------------------------------------------- phones

# What a person types: digits, one leading +, and the usual separators. Letters (vanity numbers,
# "ext. 12") are refused: E.164 has no extensions, and 1-800-FLOWERS is no way to reach a worker.
_PHONE_TEXT = re.compile(r"^\+?[0-9 ()./\-]+$")
_PHONE_MAX_TEXT = 40


class RegionalPhone(NamedTuple):
    """A number typed without `+`, to be read as a number of `region` (set by `national_phones`)."""

    text: str
    region: str


def normalise_phone(text: str, region: str | None = None) -> str:
    """`text` as an E.164 number, or ValueError. Without `+`, `text` is read as dialled in `region`
    (its trunk prefix dropped, its international call prefix understood: 0011 in AU, 00 in FJ)."""
    text = text.strip()
    if not text or len(text) > _PHONE_MAX_TEXT or not _PHONE_TEXT.match(text):
        raise ValueError("A phone number may contain only digits, spaces, ( ) . / - and a leading +")
    if not text.startswith("+") and region is None:
        raise ValueError("Give the phone number in international form: + and the country code first")
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        where = "" if text.startswith("+") else f" (read as a number of {region})"
        raise ValueError(f"{text!r} is not a valid phone number{where}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _phone(value: Any) -> Any:
    if isinstance(value, RegionalPhone):
        return normalise_phone(value.text, value.region)
    if isinstance(value, str):
        return normalise_phone(value)
    return value  # not text: the str schema refuses it


PhoneNumber = Annotated[
    str,
    BeforeValidator(_phone),
    Field(
        max_length=_PHONE_MAX_TEXT,  # as typed; E.164 itself is at most 16 characters
        description="E.164 (stored as +<country code><number>); typed without + it is read as a number "
        "of the record's country",
        examples=["+6799212345"],
    ),
]


def _field(data: Mapping[str, Any], name: str) -> str | None:
    """The key under which `data` (raw input, by alias or by name) holds field `name`, if any."""
    for key in (to_camel(name), name):
        if key in data:
            return key
    return None


def national_phones(data: Any, region_field: str, *phone_fields: str) -> Any:
    """Raw input `data` with each phone number typed without `+` marked to be read as a number of the
    country in `region_field` (e.g. "nationality"). `phone_fields` are field names, dotted for a field of
    a nested object ("emergency_contact.phone"). Changes nothing when that country is missing or not a
    country code (its own field reports that), and returns a copy: the caller's data is not changed."""
    if not isinstance(data, Mapping):
        return data
    region_key = _field(data, region_field)
    region = data.get(region_key) if region_key else None
    region = region.strip().upper() if isinstance(region, str) else None
    if region not in COUNTRY_CODES:
        return data
    data = dict(data)
    for path in phone_fields:
        *parents, leaf = path.split(".")
        holder = data
        for parent in parents:
            key = _field(holder, parent)
            if key is None or not isinstance(holder[key], Mapping):
                holder = None
                break
            holder[key] = dict(holder[key])
            holder = holder[key]
        key = _field(holder, leaf) if holder is not None else None
        if key is not None and isinstance(holder[key], str) and not holder[key].strip().startswith("+"):
            holder[key] = RegionalPhone(holder[key], region)
    return data


# ---------------------------------------------------------------------------------------- addresses


class PostalAddress(InputModel):
    """A postal address. Villages and settlements without streets go on `line1` ("Naduri Village,
    Macuata"); `region` is a province, state or division."""

    line1: SingleLine = Field(min_length=1, max_length=200)
    line2: SingleLine | None = Field(default=None, min_length=1, max_length=200)
    city: SingleLine | None = Field(default=None, min_length=1, max_length=100)
    region: SingleLine | None = Field(default=None, min_length=1, max_length=100)
    postal_code: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9 -]{0,19}$")
    country: IsoCountry
