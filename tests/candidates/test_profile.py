"""The parts of a candidate's profile (candidates/profile.py): date of birth, passport and national id,
and the structured sections. The day is fixed through the validation context: 1 March 2026."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from mobility.candidates.profile import (
    DateOfBirth,
    Education,
    EducationHistory,
    EmergencyContact,
    Languages,
    NationalId,
    PassportExpiry,
    PassportNumber,
    Skills,
    WorkExperience,
    WorkHistory,
)

TODAY = date(2026, 3, 1)
CONTEXT = {"today": TODAY}


def accepts(type_: Any, value: Any) -> Any:
    return TypeAdapter(type_).validate_python(value, context=CONTEXT)


def refuses(type_: Any, value: Any) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(type_).validate_python(value, context=CONTEXT)
    return caught.value


# -------------------------------------------------------------------------------------- date of birth
# 16 to 75 completed years on the day of input.


@pytest.mark.parametrize(
    "born",
    [
        "2010-03-01",  # 16 today
        "1950-03-02",  # 75, turns 76 tomorrow
        "1996-04-12",
    ],
)
def test_dates_of_birth(born: str) -> None:
    assert accepts(DateOfBirth, born) == date.fromisoformat(born)


@pytest.mark.parametrize(
    "born",
    [
        "2010-03-02",  # 16 tomorrow: 15 today
        "1950-03-01",  # 76 today
        "2026-03-01",  # the day of input
        "1900-01-01",
        "2096-04-12",  # a century off
        "12/04/1996",
        0,
    ],
)
def test_not_dates_of_birth(born: Any) -> None:
    refuses(DateOfBirth, born)


def test_a_leap_day_birth_turns_sixteen_on_the_day_in_a_leap_year() -> None:
    assert accepts(DateOfBirth, "2008-02-29") == date(2008, 2, 29)  # 17 by 1 March 2026
    with pytest.raises(ValidationError):
        TypeAdapter(DateOfBirth).validate_python("2008-02-29", context={"today": date(2024, 2, 28)})
    assert TypeAdapter(DateOfBirth).validate_python("2008-02-29", context={"today": date(2024, 2, 29)})


def test_without_a_context_the_day_is_today() -> None:
    # Someone born in 1990 is 16 to 75 years old whenever this suite runs (until 2065).
    assert TypeAdapter(DateOfBirth).validate_python("1990-06-15") == date(1990, 6, 15)
    with pytest.raises(ValidationError):
        TypeAdapter(DateOfBirth).validate_python("1800-06-15")


# ------------------------------------------------------------------------------------ passport, id


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("FB123456", "FB123456"),
        (" fb 12-3456 ", "FB123456"),
        ("P<12345678<", "P12345678"),  # copied from the MRZ with its filler
        ("\uff21\uff22\uff11\uff12\uff13\uff14\uff15", "AB12345"),  # full-width, as some keyboards type
        ("ab\u201312345", "AB12345"),  # an en dash
        ("12345", "12345"),  # 5: the shortest
        ("A" * 20, "A" * 20),  # 20: the longest
    ],
)
def test_passport_numbers(typed: str, stored: str) -> None:
    assert accepts(PassportNumber, typed) == stored


@pytest.mark.parametrize(
    "value", ["AB12", "N/A", "A" * 21, "AB#12345", "AB_12345", "\u00c912345", "", "- - -"]
)
def test_not_passport_numbers(value: str) -> None:
    refuses(PassportNumber, value)


def test_national_ids() -> None:
    assert accepts(NationalId, "1234 5678 9012") == "123456789012"
    assert accepts(NationalId, "ab/12.34") == "AB1234"
    for bad in ["123", "A" * 33, "12#45"]:
        refuses(NationalId, bad)


@pytest.mark.parametrize(
    ("expiry", "ok"),
    [
        ("2037-03-01", True),  # today + 11 years
        ("2037-03-02", False),
        ("2016-03-01", True),  # expired 10 years ago
        ("2016-02-29", False),
        ("2026-02-28", True),  # expired yesterday: recorded, renewal due
    ],
)
def test_passport_expiry(expiry: str, ok: bool) -> None:
    if ok:
        assert accepts(PassportExpiry, expiry) == date.fromisoformat(expiry)
    else:
        refuses(PassportExpiry, expiry)


# -------------------------------------------------------------------------------------------- sections


def test_emergency_contact_needs_a_name_and_a_phone() -> None:
    contact = accepts(
        EmergencyContact, {"name": " Losa  Tuilagi ", "relationship": "mother", "phone": "+6799212345"}
    )
    assert (contact.name, contact.phone) == ("Losa Tuilagi", "+6799212345")
    refuses(EmergencyContact, {"name": "Losa"})
    refuses(EmergencyContact, {"phone": "+6799212345"})
    refuses(EmergencyContact, {"name": "Losa", "phone": "+6799212345", "notes": "x"})


def test_skills() -> None:
    skills = accepts(
        Skills, [{"name": "forklift operation", "level": "advanced", "years": 4}, {"name": "pruning"}]
    )
    assert [skill.name for skill in skills] == ["forklift operation", "pruning"]
    refuses(Skills, [{"name": "pruning"}, {"name": "Pruning"}])  # twice, whatever the case
    refuses(Skills, [{"name": f"skill {n}"} for n in range(51)])
    refuses(Skills, [{"name": "pruning", "level": "guru"}])
    refuses(Skills, [{"name": "pruning", "years": 61}])
    assert len(accepts(Skills, [{"name": f"skill {n}"} for n in range(50)])) == 50


def test_languages() -> None:
    languages = accepts(Languages, [{"code": "fij", "level": "native"}, {"code": "ENG", "level": "B2"}])
    assert [(language.code, language.level) for language in languages] == [("fj", "native"), ("en", "B2")]
    refuses(Languages, [{"code": "en", "level": "B2"}, {"code": "eng", "level": "C1"}])  # English twice
    refuses(Languages, [{"code": "en", "level": "B3"}])
    refuses(Languages, [{"code": "en"}])
    refuses(Languages, [{"code": "xx", "level": "A1"}])
    refuses(Languages, [{"code": "en", "level": "A1"}] * 21)


def test_education() -> None:
    school = {"level": "secondary", "institution": "Labasa College", "startYear": 2010, "endYear": 2015}
    assert accepts(Education, school).end_year == 2015
    assert accepts(Education, {**school, "endYear": 2036}).end_year == 2036  # expected completion
    refuses(Education, {**school, "endYear": 2037})
    refuses(Education, {**school, "endYear": 2009})
    refuses(Education, {**school, "startYear": 2027})
    refuses(Education, {**school, "startYear": 1949})
    refuses(Education, {**school, "level": "kindergarten"})
    refuses(EducationHistory, [school] * 21)


def test_work_history() -> None:
    job = {
        "employer": "Fiji Sugar Corporation",
        "position": "cane cutter",
        "country": "fj",
        "startDate": "2018-06-01",
    }
    assert accepts(WorkExperience, job).country == "FJ"
    assert accepts(WorkExperience, {**job, "endDate": "2026-03-01"}).end_date == TODAY
    refuses(WorkExperience, {**job, "endDate": "2018-05-31"})  # ends before it starts
    refuses(WorkExperience, {**job, "endDate": "2026-03-02"})  # ends tomorrow
    refuses(WorkExperience, {**job, "startDate": "2026-03-02"})
    refuses(WorkExperience, {**job, "description": "x" * 1001})
    refuses(WorkHistory, [job] * 31)
