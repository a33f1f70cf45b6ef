"""Partners' shapes (agents/schemas.py): code format, licence, contact details, who may set what."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from mobility.agents.schemas import (
    PartnerCreate,
    PartnerRead,
    PartnerSelfUpdate,
    PartnerStaffRead,
    PartnerSuspension,
    PartnerUpdate,
)

CONTEXT = {"today": date(2026, 3, 1)}
MINIMAL = {"code": "AG-001", "name": "Pacific Labour Hire Ltd"}


def valid(model: Any, data: dict[str, Any]) -> Any:
    return model.model_validate(data, context=CONTEXT)


def errors(model: Any, data: dict[str, Any]) -> list[tuple[str, ...]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data, context=CONTEXT)
    return [tuple(str(part) for part in error["loc"]) for error in caught.value.errors()]


@pytest.mark.parametrize(
    ("typed", "stored"), [("AG-001", "AG-001"), (" ag-001 ", "AG-001"), ("B", "B"), ("A" * 32, "A" * 32)]
)
def test_codes(typed: str, stored: str) -> None:
    assert valid(PartnerCreate, {**MINIMAL, "code": typed}).code == stored


@pytest.mark.parametrize("code", ["-AG", "AG-", "AG_001", "AG 001", "A" * 33, "", "ÄG"])
def test_not_codes(code: str) -> None:
    assert ("code",) in errors(PartnerCreate, {**MINIMAL, "code": code})


@pytest.mark.parametrize("missing", ["code", "name"])
def test_required(missing: str) -> None:
    assert (missing,) in errors(PartnerCreate, {k: v for k, v in MINIMAL.items() if k != missing})


def test_a_full_partner() -> None:
    partner = valid(
        PartnerCreate,
        {
            **MINIMAL,
            "contactName": "Sitiveni  Rabuka",
            "email": "office@pacificlabour.example",
            "country": "fj",
            "phone": "331 2345",
            "address": {"line1": "12 Victoria Parade", "city": "Suva", "country": "FJ"},
            "licenceNumber": "RA/2023/045",
            "licenceExpiry": "2027-06-30",
            "paymentTerms": {"type": "flat", "amount": "250", "currency": "FJD", "dueDays": 30},
            "notes": "met at the 2025 PALM roadshow",
        },
    )
    assert partner.contact_name == "Sitiveni Rabuka"
    assert partner.phone == "+6793312345"  # Fiji: +679 and seven digits, read in the partner's country
    assert partner.payment_terms.amount == 250
    assert partner.licence_expiry == date(2027, 6, 30)


def test_phone_numbers_need_the_country_or_a_plus() -> None:
    assert ("phone",) in errors(PartnerCreate, {**MINIMAL, "phone": "331 2345"})
    assert valid(PartnerCreate, {**MINIMAL, "phone": "+679 331 2345"}).phone == "+6793312345"
    assert (
        valid(PartnerCreate, {**MINIMAL, "country": "AU", "phone": "(02) 9876 5432"}).phone == "+61298765432"
    )


def test_licences() -> None:
    assert (
        valid(PartnerCreate, {**MINIMAL, "licenceNumber": "LIC-12 345"}).licence_expiry is None
    )  # no expiry
    # Expired licences are recorded (the service refuses the partner's new candidates).
    assert valid(PartnerCreate, {**MINIMAL, "licenceNumber": "No. 778", "licenceExpiry": "2020-01-31"})
    assert valid(PartnerCreate, {**MINIMAL, "licenceNumber": "X1", "licenceExpiry": "2046-03-01"})  # 20 years
    assert ("licenceExpiry",) in errors(
        PartnerCreate, {**MINIMAL, "licenceNumber": "X1", "licenceExpiry": "2046-03-02"}
    )
    assert errors(PartnerCreate, {**MINIMAL, "licenceExpiry": "2027-01-01"}) == [
        ()
    ]  # an expiry of no licence
    assert ("licenceNumber",) in errors(PartnerCreate, {**MINIMAL, "licenceNumber": "RA#2023"})
    assert ("licenceNumber",) in errors(PartnerCreate, {**MINIMAL, "licenceNumber": "RA\n2023"})
    assert errors(PartnerUpdate, {"licenceNumber": None, "licenceExpiry": "2027-01-01"}) == [()]
    assert valid(PartnerUpdate, {"licenceExpiry": "2027-01-01"}).licence_expiry == date(2027, 1, 1)


@pytest.mark.parametrize("field", ["status", "userId", "tenantId", "id", "createdBy"])
def test_no_shape_takes_what_the_service_sets(field: str) -> None:
    assert (field,) in errors(PartnerCreate, {**MINIMAL, field: "x"})
    assert (field,) in errors(PartnerUpdate, {field: "x"})
    assert (field,) in errors(PartnerSelfUpdate, {field: "x"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("code", "AG-002"),
        ("name", "Other Ltd"),
        ("licenceNumber", "X1"),
        ("licenceExpiry", "2030-01-01"),
        ("paymentTerms", {"type": "percent", "percent": "50", "dueDays": 0}),
        ("notes", "x"),
        ("country", "AU"),
    ],
)
def test_a_partner_changes_only_how_to_reach_it(field: str, value: Any) -> None:
    assert (field,) in errors(PartnerSelfUpdate, {field: value})


def test_a_partners_own_changes() -> None:
    change = valid(
        PartnerSelfUpdate, {"contactName": "Mere Tuilagi", "phone": "+679 331 2345", "email": None}
    )
    assert change.changes() == {"contact_name": "Mere Tuilagi", "phone": "+6793312345", "email": None}


def test_staff_updates() -> None:
    change = valid(PartnerUpdate, {"code": "ag-9", "paymentTerms": None, "licenceNumber": None})
    assert change.changes() == {"code": "AG-9", "payment_terms": None, "licence_number": None}
    for field in ["code", "name"]:
        with pytest.raises(ValidationError, match=f"{field} cannot be null"):
            PartnerUpdate.model_validate({field: None})


def test_suspension_needs_a_reason() -> None:
    assert (
        PartnerSuspension.model_validate({"reason": " licence under review "}).reason
        == "licence under review"
    )
    assert ("reason",) in errors(PartnerSuspension, {"reason": "  "})
    assert ("reason",) in errors(PartnerSuspension, {})


def test_reading_a_stored_partner() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    row = SimpleNamespace(
        id=uuid.UUID(int=5),
        code="AG-001",
        name="Pacific Labour Hire Ltd",
        contact_name=None,
        email=None,
        phone=None,
        address=None,
        country="FJ",
        licence_number=None,
        licence_expiry=None,
        payment_terms={},  # the column's default: no terms yet
        status="active",
        user_id=None,
        notes="internal",
        created_at=now,
        updated_at=now,
    )
    body = PartnerRead.model_validate(row).model_dump(mode="json", by_alias=True)
    assert body["paymentTerms"] is None and "notes" not in body
    row.payment_terms = {"type": "percent", "percent": "5.00", "dueDays": 30, "overrides": {}}
    assert PartnerStaffRead.model_validate(row).payment_terms.percent == 5
