"""Partners' payment terms (agents/payment_terms.py): flat or percent, ISO 4217 currencies with their
minor units (ISO 4217 table: FJD 2, VUV 0, JPY 0, KWD 3), decimals, due days, per-country overrides."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from mobility.agents.payment_terms import FlatTerms, PaymentTerms, PercentTerms, terms_for

TERMS = TypeAdapter(PaymentTerms)
FLAT = {"type": "flat", "amount": "250.00", "currency": "FJD", "dueDays": 30}
PERCENT = {"type": "percent", "percent": "5", "dueDays": 45}


def read(data: dict[str, Any]) -> FlatTerms | PercentTerms:
    return TERMS.validate_python(data)


def refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TERMS.validate_python(data)


def test_flat_terms() -> None:
    terms = read({**FLAT, "currency": "fjd", "amount": 250})
    assert isinstance(terms, FlatTerms)
    assert terms.amount == Decimal("250.00") and isinstance(terms.amount, Decimal)
    assert terms.currency == "FJD"
    assert TERMS.dump_python(terms, mode="json", by_alias=True) == {
        "type": "flat",
        "amount": "250.00",
        "currency": "FJD",
        "dueDays": 30,
        "overrides": {},
    }


def test_percent_terms() -> None:
    terms = read({**PERCENT, "percent": 7.5})
    assert isinstance(terms, PercentTerms)
    assert terms.percent == Decimal("7.50")
    assert TERMS.dump_python(terms, mode="json", by_alias=True)["percent"] == "7.50"


def test_a_json_number_is_read_as_the_decimal_it_spells() -> None:
    # 0.1 + 0.2 as floats is 0.30000000000000004; typed as 0.3 it stays 0.30.
    assert TERMS.validate_json(
        '{"type": "flat", "amount": 0.3, "currency": "USD", "dueDays": 1}'
    ).amount == Decimal("0.30")


@pytest.mark.parametrize(
    ("currency", "amount", "stored"),
    [
        ("VUV", "5000", "5000"),  # the vatu has no minor unit
        ("JPY", "12000", "12000"),
        ("KWD", "12.25", "12.25"),  # three minor units, kept to two places
        ("FJD", "0", "0.00"),  # nothing earned
        ("AUD", "9999999999.99", "9999999999.99"),  # Numeric(12, 2)'s largest
    ],
)
def test_amounts_in_their_currencys_units(currency: str, amount: str, stored: str) -> None:
    terms = read({**FLAT, "currency": currency, "amount": amount})
    assert TERMS.dump_python(terms, mode="json")["amount"] == stored


@pytest.mark.parametrize(
    ("currency", "amount"),
    [
        ("VUV", "5000.5"),
        ("JPY", "0.01"),
        ("KWD", "12.125"),
        ("FJD", "250.001"),
        ("FJD", "-1"),
        ("AUD", "10000000000"),
        ("FJD", "NaN"),
        ("FJD", "Infinity"),
        ("FJD", 0.1 + 0.2),  # a float's binary error is refused, never rounded away
        ("XAU", "1"),  # gold is not money here
        ("FJ", "1"),
        ("EURO", "1"),
    ],
)
def test_amounts_refused(currency: str, amount: str) -> None:
    refused({**FLAT, "currency": currency, "amount": amount})


@pytest.mark.parametrize("percent", ["0", "-1", "100.01", "5.555", "NaN"])
def test_percentages_refused(percent: str) -> None:
    refused({**PERCENT, "percent": percent})


def test_percentages_up_to_a_hundred() -> None:
    assert read({**PERCENT, "percent": "100"}).percent == Decimal("100.00")
    assert read({**PERCENT, "percent": "0.01"}).percent == Decimal("0.01")


@pytest.mark.parametrize("due_days", [0, 365])
def test_due_days(due_days: int) -> None:
    assert read({**FLAT, "dueDays": due_days}).due_days == due_days


@pytest.mark.parametrize("due_days", [-1, 366, "soon", None])
def test_due_days_refused(due_days: Any) -> None:
    refused({**FLAT, "dueDays": due_days})


@pytest.mark.parametrize(
    "data",
    [
        {**FLAT, "type": "hourly"},
        {key: value for key, value in FLAT.items() if key != "type"},
        {key: value for key, value in FLAT.items() if key != "dueDays"},
        {key: value for key, value in FLAT.items() if key != "currency"},
        {**PERCENT, "currency": "FJD"},  # a percentage is of the salary, in the salary's currency
        {**PERCENT, "amount": "10"},
        {**FLAT, "percent": "5"},
    ],
)
def test_the_shape_of_each_kind(data: dict[str, Any]) -> None:
    refused(data)


def test_overrides_by_destination_country() -> None:
    terms = read(
        {
            **FLAT,
            "overrides": {
                "au": PERCENT,
                "NZ": {"type": "flat", "amount": "400", "currency": "NZD", "dueDays": 30},
            },
        }
    )
    assert sorted(terms.overrides) == ["AU", "NZ"]
    assert terms_for(terms, "AU").percent == Decimal("5.00")
    assert terms_for(terms, "NZ").amount == Decimal("400.00")
    assert terms_for(terms, "CA") is terms  # no override: the default
    assert terms_for(terms, None) is terms


@pytest.mark.parametrize(
    "overrides",
    [
        {"UK": PERCENT},  # GB is the code
        {"AUS": PERCENT},
        {"au": PERCENT, "AU": PERCENT},  # one country twice
        {"AU": {**PERCENT, "overrides": {"NZ": FLAT}}},  # overrides do not nest
        {"AU": {**PERCENT, "percent": "0"}},  # an override is checked like the default
    ],
)
def test_overrides_refused(overrides: dict[str, Any]) -> None:
    refused({**FLAT, "overrides": overrides})


def test_at_most_fifty_overrides() -> None:
    countries = [
        "AU",
        "NZ",
        "CA",
        "US",
        "GB",
        "IE",
        "DE",
        "FR",
        "NL",
        "BE",
        "JP",
        "KR",
        "SG",
        "MY",
        "TH",
        "VN",
    ]
    countries += [
        "PH",
        "ID",
        "IN",
        "PK",
        "BD",
        "LK",
        "NP",
        "AE",
        "QA",
        "SA",
        "KW",
        "OM",
        "BH",
        "IL",
        "TR",
        "GR",
    ]
    countries += [
        "IT",
        "ES",
        "PT",
        "PL",
        "CZ",
        "AT",
        "CH",
        "SE",
        "NO",
        "DK",
        "FI",
        "IS",
        "EE",
        "LV",
        "LT",
        "HU",
    ]
    countries += ["RO", "BG", "HR"]
    assert len(set(countries)) == 51
    refused({**FLAT, "overrides": dict.fromkeys(countries, PERCENT)})
    assert len(read({**FLAT, "overrides": dict.fromkeys(countries[:50], PERCENT)}).overrides) == 50
