"""The input value types of core/: ISO codes, phone numbers, names, addresses, one-line text, dates.

Expected phone numbers are worked out by hand from the national numbering plans: the country calling
code (ITU-T E.164 assignments: AU 61, NZ 64, FJ 679, PH 63), the trunk prefix dropped (0 in AU, NZ,
PH; Fiji has none), the international call prefix understood (0011 from Australia, 00 from Fiji).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from mobility.core.calendar import add_years, age_on
from mobility.core.contact import PhoneNumber, PostalAddress, national_phones, normalise_phone, person_name
from mobility.core.iso_codes import IsoCountry, IsoCurrency, IsoLanguage, money_step
from mobility.core.schemas import InputModel, IsoDate, SingleLine


def accepts(type_: Any, value: Any) -> Any:
    return TypeAdapter(type_).validate_python(value)


def refuses(type_: Any, value: Any) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(type_).validate_python(value)


# ---------------------------------------------------------------------------------------- ISO codes


@pytest.mark.parametrize(("typed", "stored"), [("FJ", "FJ"), ("fj", "FJ"), ("Au", "AU"), ("gb", "GB")])
def test_country_codes(typed: str, stored: str) -> None:
    assert accepts(IsoCountry, typed) == stored


# UK is not the United Kingdom's code (GB is); XK (Kosovo) and EU are user-assigned or reserved;
# FJI is alpha-3.
@pytest.mark.parametrize("value", ["UK", "XK", "EU", "ZZ", "FJI", "F", "", "1J"])
def test_not_country_codes(value: str) -> None:
    refuses(IsoCountry, value)


@pytest.mark.parametrize(
    ("typed", "stored"), [("FJD", "FJD"), ("aud", "AUD"), ("VUV", "VUV"), ("wst", "WST")]
)
def test_currency_codes(typed: str, stored: str) -> None:
    assert accepts(IsoCurrency, typed) == stored


# Gold, the SDR, the testing code and "no currency" are not money; USN (US dollar next day) is a fund.
@pytest.mark.parametrize("value", ["XAU", "XDR", "XTS", "XXX", "USN", "FJ", "ABC", "EURO"])
def test_not_currency_codes(value: str) -> None:
    refuses(IsoCurrency, value)


def test_money_steps_follow_minor_units_down_to_a_cent() -> None:
    # ISO 4217 minor units: FJD 2, VUV 0, JPY 0, KWD 3 (kept to cents by the Numeric(12, 2) columns).
    assert str(money_step("FJD")) == "0.01"
    assert str(money_step("VUV")) == "1"
    assert str(money_step("JPY")) == "1"
    assert str(money_step("KWD")) == "0.01"


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("en", "en"),
        ("ENG", "en"),  # ISO 639-2/T and 639-3 -> the 639-1 code
        ("fre", "fr"),  # ISO 639-2/B
        ("fj", "fj"),  # Fijian
        ("fij", "fj"),
        ("hif", "hif"),  # Fiji Hindi: ISO 639-3 only
        ("tpi", "tpi"),  # Tok Pisin
        ("sm", "sm"),  # Samoan
        ("to", "to"),  # Tongan
    ],
)
def test_language_codes(typed: str, stored: str) -> None:
    assert accepts(IsoLanguage, typed) == stored


# und, mul, zxx, mis name no language; "english" is a name, not a code; qqq is unassigned.
@pytest.mark.parametrize("value", ["und", "mul", "zxx", "mis", "english", "qqq", "e"])
def test_not_language_codes(value: str) -> None:
    refuses(IsoLanguage, value)


# -------------------------------------------------------------------------------------------- phones


@pytest.mark.parametrize(
    ("typed", "region", "e164"),
    [
        ("0412 345 678", "AU", "+61412345678"),
        ("021 123 4567", "NZ", "+64211234567"),
        ("921 2345", "FJ", "+6799212345"),
        ("0917 123 4567", "PH", "+639171234567"),
        ("(0917) 123-4567", "PH", "+639171234567"),
        ("00 61 412 345 678", "FJ", "+61412345678"),  # dialled from Fiji: 00, then Australia
        ("0011 64 21 123 4567", "AU", "+64211234567"),  # dialled from Australia: 0011, then NZ
        ("+679 921 2345", None, "+6799212345"),
        ("+679 921 2345", "AU", "+6799212345"),  # + wins over the region
        ("+61.412.345.678", None, "+61412345678"),
    ],
)
def test_phone_numbers_to_e164(typed: str, region: str | None, e164: str) -> None:
    assert normalise_phone(typed, region) == e164


@pytest.mark.parametrize(
    ("typed", "region"),
    [
        ("921 2345", None),  # national form, no country to read it in
        ("+61 412 345", None),  # too short for an Australian number
        ("+61 412 345 678 9", None),  # too long
        ("+999 123 4567", None),  # no such country calling code
        ("0412 345 678 ext 5", "AU"),  # E.164 carries no extension
        ("1-800-FLOWERS", "US"),  # letters
        ("+6+1412345678", None),
        ("", "FJ"),
        ("+" + "1" * 40, None),
    ],
)
def test_not_phone_numbers(typed: str, region: str | None) -> None:
    with pytest.raises(ValueError):
        normalise_phone(typed, region)


def test_the_phone_type_needs_international_form_on_its_own() -> None:
    assert accepts(PhoneNumber, "+64 21 123 4567") == "+64211234567"
    refuses(PhoneNumber, "021 123 4567")


class _Contactable(InputModel):
    country: IsoCountry | None = None
    phone: PhoneNumber | None = None
    nested: _Nested | None = None


class _Nested(InputModel):
    phone: PhoneNumber


_Contactable.model_rebuild()


def _read(data: dict[str, Any]) -> _Contactable:
    return _Contactable.model_validate(national_phones(data, "country", "phone", "nested.phone"))


def test_national_numbers_are_read_in_the_records_country() -> None:
    data = {"country": "fj", "phone": "921 2345", "nested": {"phone": "00 64 21 123 4567"}}
    record = _read(data)
    assert record.phone == "+6799212345"
    assert record.nested.phone == "+64211234567"
    # The caller's data is left as it was.
    assert data == {"country": "fj", "phone": "921 2345", "nested": {"phone": "00 64 21 123 4567"}}


def test_without_the_country_a_national_number_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        _read({"phone": "921 2345"})
    assert "international form" in str(caught.value)
    with pytest.raises(ValidationError):
        _read({"country": "UK", "phone": "07700 900123"})  # not a country: no region either


def test_an_invalid_national_number_names_the_country_it_was_read_in() -> None:
    with pytest.raises(ValidationError) as caught:
        _read({"country": "FJ", "phone": "12"})
    assert "read as a number of FJ" in str(caught.value)


# --------------------------------------------------------------------------------------------- names

Name = person_name(100)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("  Mere  ", "Mere"),
        ("Mere   Losa", "Mere Losa"),
        ("Taufa\u02bbahau", "Taufa\u02bbahau"),  # the Tongan ʻokina is a letter
        ("O\u2019Brien", "O\u2019Brien"),
        ("Jean-Luc", "Jean-Luc"),
        ("St. John", "St. John"),
        ("Jose\u0301", "Jos\u00e9"),  # NFC: e + combining acute is stored as é
        ("Nguy\u1ec5n", "Nguy\u1ec5n"),
        ("\u041c\u0430\u0440\u0438\u044f", "\u041c\u0430\u0440\u0438\u044f"),  # Cyrillic
        ("\u0645\u062d\u0645\u062f", "\u0645\u062d\u0645\u062f"),  # Arabic
        ("\u0928\u092e\u0938\u094d\u0924\u0947", "\u0928\u092e\u0938\u094d\u0924\u0947"),  # Devanagari, marks
        ("a" * 100, "a" * 100),
    ],
)
def test_names(typed: str, stored: str) -> None:
    assert accepts(Name, typed) == stored


@pytest.mark.parametrize(
    "value",
    [
        "Mary\nJane",  # a line break
        "Ann\u202eA",  # a right-to-left override
        "Ann\x1bA",  # an escape
        "R2D2",
        "Mere@home",
        "...",  # no letter
        "-",
        "",
        "a" * 101,
    ],
)
def test_not_names(value: str) -> None:
    refuses(Name, value)


# ----------------------------------------------------------------------------- one line, dates, address


def test_single_line_text() -> None:
    assert accepts(SingleLine, "Nadi\u00a0\u00a0Airport\tRoad") == "Nadi Airport Road"
    refuses(SingleLine, "Nadi\nAirport")
    refuses(SingleLine, "Nadi\u2028Airport")
    refuses(SingleLine, "\u202eNadi")


def test_iso_dates_only() -> None:
    assert accepts(IsoDate, "2026-03-01") == date(2026, 3, 1)
    assert accepts(IsoDate, date(2026, 3, 1)) == date(2026, 3, 1)
    for value in [0, 1772323200, "2026-3-1", "01/03/2026", "2026-03-01T00:00:00Z", "2026-02-30"]:
        refuses(IsoDate, value)


def test_ages_and_years() -> None:
    assert age_on(date(2000, 3, 1), date(2026, 2, 28)) == 25
    assert age_on(date(2000, 3, 1), date(2026, 3, 1)) == 26
    # Born on 29 February: a year is completed on 1 March in a common year.
    assert age_on(date(2008, 2, 29), date(2025, 2, 28)) == 16
    assert age_on(date(2008, 2, 29), date(2025, 3, 1)) == 17
    assert add_years(date(2024, 2, 29), 1) == date(2025, 2, 28)
    assert add_years(date(2026, 3, 1), -10) == date(2016, 3, 1)


def test_postal_address() -> None:
    address = PostalAddress.model_validate(
        {"line1": " Naduri  Village ", "region": "Macuata", "postalCode": "FJ-123", "country": " fj "}
    )
    assert (address.line1, address.country, address.postal_code) == ("Naduri Village", "FJ", "FJ-123")
    for bad in [
        {"line1": "Naduri"},  # no country
        {"line1": "", "country": "FJ"},
        {"line1": "Naduri", "country": "FJ", "postalCode": "12#4"},
        {"line1": "Naduri", "country": "FJ", "street": "Main"},  # unknown field
    ]:
        with pytest.raises(ValidationError):
            PostalAddress.model_validate(bad)
