"""Candidates' API shapes (candidates/schemas.py): required fields, cross-field rules, phone numbers
read in the nationality's numbering plan, and which caller's shape takes which fields."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from mobility.candidates.schemas import (
    CandidateCreate,
    CandidateRead,
    CandidateSelfUpdate,
    CandidateStaffRead,
    CandidateUpdate,
    PartnerCandidateCreate,
    PartnerCandidateUpdate,
    StatusChange,
)

CONTEXT = {"today": date(2026, 3, 1)}
MINIMAL = {"firstName": "Mere", "lastName": "Tuilagi", "dateOfBirth": "1996-04-12", "nationality": "FJ"}


def valid(model: Any, data: dict[str, Any]) -> Any:
    return model.model_validate(data, context=CONTEXT)


def errors(model: Any, data: dict[str, Any]) -> list[tuple[str, ...]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data, context=CONTEXT)
    return [tuple(str(part) for part in error["loc"]) for error in caught.value.errors()]


def test_the_least_a_registration_takes() -> None:
    candidate = valid(CandidateCreate, MINIMAL)
    assert (candidate.first_name, candidate.date_of_birth, candidate.nationality) == (
        "Mere",
        date(1996, 4, 12),
        "FJ",
    )
    assert candidate.skills == [] and candidate.work_history == []


@pytest.mark.parametrize("missing", ["firstName", "lastName", "dateOfBirth", "nationality"])
def test_required(missing: str) -> None:
    data = {key: value for key, value in MINIMAL.items() if key != missing}
    assert (missing,) in errors(CandidateCreate, data)


def test_a_full_registration_normalises_what_it_can() -> None:
    candidate = valid(
        CandidateCreate,
        {
            **MINIMAL,
            "firstName": "  Mere ",
            "nationality": "fj",
            "gender": "female",
            "passportNumber": "fb 123 456",
            "passportExpiry": "2030-06-30",
            "email": "Mere.Tuilagi@Example.com",
            "phone": "921 2345",
            "emergencyContact": {"name": "Losa Tuilagi", "phone": "00 61 412 345 678"},
            "address": {"line1": "Naduri Village", "region": "Macuata", "country": "FJ"},
            "languages": [{"code": "fij", "level": "native"}],
            "agentId": str(uuid.UUID(int=1)),
        },
    )
    assert candidate.first_name == "Mere"
    assert candidate.nationality == "FJ"
    assert candidate.passport_number == "FB123456"
    assert candidate.phone == "+6799212345"  # Fiji: +679, seven digits
    assert candidate.emergency_contact.phone == "+61412345678"  # dialled from Fiji to Australia
    assert candidate.languages[0].code == "fj"
    assert candidate.email.endswith("@example.com")


def test_phones_are_read_in_the_nationality() -> None:
    assert (
        valid(CandidateCreate, {**MINIMAL, "nationality": "PH", "phone": "0917 123 4567"}).phone
        == "+639171234567"
    )
    assert (
        valid(CandidateCreate, {**MINIMAL, "nationality": "AU", "phone": "0412 345 678"}).phone
        == "+61412345678"
    )
    # 921 2345 is a Fijian number, not an Australian one.
    assert ("phone",) in errors(CandidateCreate, {**MINIMAL, "nationality": "AU", "phone": "921 2345"})


def test_passport_rules() -> None:
    assert ("passportExpiry",) not in errors(CandidateCreate, {**MINIMAL, "passportExpiry": "2030-01-01"})
    assert errors(CandidateCreate, {**MINIMAL, "passportExpiry": "2030-01-01"}) == [()]  # needs the number
    assert valid(CandidateCreate, {**MINIMAL, "passportNumber": "FB123456"}).passport_expiry is None


@pytest.mark.parametrize(
    "field",
    ["status", "referenceNumber", "tenantId", "id", "userId", "photoUrl", "createdBy"],
)
def test_no_shape_takes_what_the_service_sets(field: str) -> None:
    for model in (CandidateCreate, PartnerCandidateCreate):
        assert (field,) in errors(model, {**MINIMAL, field: "x"})
    for model in (CandidateUpdate, PartnerCandidateUpdate, CandidateSelfUpdate):
        assert (field,) in errors(model, {field: "x"})


@pytest.mark.parametrize("field", ["agentId", "brokerId", "notes"])
def test_partners_do_not_set_links_or_notes(field: str) -> None:
    value = str(uuid.UUID(int=2)) if field.endswith("Id") else "a note"
    assert (field,) in errors(PartnerCandidateCreate, {**MINIMAL, field: value})
    assert (field,) in errors(PartnerCandidateUpdate, {field: value})
    expected = uuid.UUID(value) if field.endswith("Id") else value
    assert valid(CandidateCreate, {**MINIMAL, field: value}).model_dump(by_alias=True)[field] == expected
    assert valid(CandidateUpdate, {field: value}).model_dump(by_alias=True)[field] == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("firstName", "Mary"),
        ("lastName", "Smith"),
        ("dateOfBirth", "1996-04-12"),
        ("nationality", "AU"),
        ("passportNumber", "FB123456"),
        ("nationalId", "123456789"),
        ("skills", []),
        ("agentId", str(uuid.UUID(int=3))),
        ("notes", "x"),
        ("gender", "male"),
    ],
)
def test_a_candidate_changes_only_contacts_address_and_emergency_contact(field: str, value: Any) -> None:
    assert (field,) in errors(CandidateSelfUpdate, {field: value})


def test_a_candidates_own_changes() -> None:
    change = valid(
        CandidateSelfUpdate,
        {
            "email": "mere@example.com",
            "phone": "+64 21 123 4567",
            "address": {"line1": "12 Queen Street", "city": "Auckland", "country": "NZ"},
            "emergencyContact": {"name": "Losa", "phone": "+679 921 2345"},
        },
    )
    assert change.phone == "+64211234567"
    assert change.emergency_contact.phone == "+6799212345"
    # Null clears each of them.
    cleared = valid(
        CandidateSelfUpdate, {"phone": None, "address": None, "emergencyContact": None, "email": None}
    )
    assert cleared.changes() == {"phone": None, "address": None, "emergency_contact": None, "email": None}
    # No nationality in this shape: a number in national form cannot be read.
    assert ("phone",) in errors(CandidateSelfUpdate, {"phone": "021 123 4567"})


def test_staff_updates() -> None:
    change = valid(
        CandidateUpdate, {"nationality": "nz", "phone": "021 123 4567", "notes": "met at the intake drive"}
    )
    assert (change.nationality, change.phone) == ("NZ", "+64211234567")
    assert valid(CandidateUpdate, {"agentId": None, "passportNumber": None}).changes() == {
        "agent_id": None,
        "passport_number": None,
    }
    # What a record cannot be without is not cleared.
    for field in ["firstName", "lastName", "dateOfBirth", "nationality", "skills"]:
        with pytest.raises(ValidationError, match=f"{field} cannot be null"):
            CandidateUpdate.model_validate({field: None}, context=CONTEXT)


def test_status_change() -> None:
    change = valid(StatusChange, {"status": "withdrawn", "reason": " moved to Suva "})
    assert (change.status, change.reason) == ("withdrawn", "moved to Suva")
    assert ("status",) in errors(StatusChange, {"status": "hired"})
    assert ("reason",) in errors(StatusChange, {"status": "withdrawn", "reason": "x" * 1001})


def test_reading_a_stored_candidate() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    row = SimpleNamespace(
        id=uuid.UUID(int=9),
        reference_number="WTI-2026-000123",
        first_name="Mere",
        middle_name=None,
        last_name="Tuilagi",
        date_of_birth=date(1996, 4, 12),
        gender="female",
        nationality="FJ",
        national_id=None,
        passport_number="FB123456",
        passport_expiry=date(2030, 6, 30),
        email=None,
        phone="+6799212345",
        # JSON columns hold what the shapes wrote: camelCase.
        address={"line1": "Naduri Village", "country": "FJ"},
        emergency_contact={"name": "Losa", "phone": "+61412345678"},
        skills=[{"name": "pruning", "level": "basic"}],
        languages=[{"code": "fj", "level": "native"}],
        education=[],
        work_history=[{"employer": "FSC", "position": "cane cutter", "startDate": "2018-06-01"}],
        photo_url=None,
        cv_url=None,
        status="registered",
        agent_id=None,
        broker_id=None,
        user_id=None,
        notes="internal",
        created_at=now,
        updated_at=now,
    )
    body = CandidateRead.model_validate(row).model_dump(mode="json", by_alias=True)
    assert body["referenceNumber"] == "WTI-2026-000123"
    assert body["workHistory"][0]["startDate"] == "2018-06-01"
    assert "notes" not in body
    assert CandidateStaffRead.model_validate(row).notes == "internal"
