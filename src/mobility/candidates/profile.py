"""The typed parts of a candidate's profile: identity numbers, dates, and the structured sections
(emergency contact, skills, languages, education, work history) kept as JSON columns.

Pure rules, no database. Rules that depend on the day (date of birth, passport expiry, dates of
schooling and work) read it as core/calendar.py says: a validation context may fix it.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, model_validator

from mobility.core.calendar import add_years, age_on, today
from mobility.core.contact import EmailAddress, PhoneNumber, person_name
from mobility.core.iso_codes import IsoCountry, IsoLanguage
from mobility.core.schemas import InputModel, IsoDate, SingleLine

# ---------------------------------------------------------------------------------- date of birth

# Ages accepted at the day of input. 16: the youngest age at which a school leaver starts vocational
# training (ILO C138 allows work from 15; schemes deploy from 18 or 21, a vetting rule, not this one);
# 75: older than anyone a scheme deploys, so a record of a returned worker still fits, while the
# typos this catches (the year of input, 1900, a swapped century) are refused.
MIN_AGE, MAX_AGE = 16, 75


def _date_of_birth(value: date, info: ValidationInfo) -> date:
    age = age_on(value, today(info))
    if age < MIN_AGE or age > MAX_AGE:
        raise ValueError(f"The date of birth must make the candidate {MIN_AGE} to {MAX_AGE} years old today")
    return value


DateOfBirth = Annotated[IsoDate, AfterValidator(_date_of_birth), Field(examples=["1996-04-12"])]

# --------------------------------------------------------------------------------- identity numbers

# Separators people type inside document numbers (spaces, dashes of any kind, dots, slashes) and the
# MRZ filler `<`: none is part of the number.
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212./<]+")
_ALPHANUMERIC = re.compile(r"^[A-Z0-9]+$")

# ICAO Doc 9303: a passport's number is up to 9 characters in the MRZ (longer ones continue in its
# optional data), of A-Z and 0-9. 20 leaves room for those; 5 refuses "N/A", "123" and the like.
PASSPORT_MIN, PASSPORT_MAX = 5, 20
NATIONAL_ID_MIN, NATIONAL_ID_MAX = 4, 32


def _document_number(value: str, kind: str, low: int, high: int) -> str:
    number = _SEPARATORS.sub("", unicodedata.normalize("NFKC", value)).upper()
    if not _ALPHANUMERIC.match(number) or not low <= len(number) <= high:
        raise ValueError(
            f"A {kind} number is {low} to {high} letters A-Z and digits (spaces and dashes ignored)"
        )
    return number


def normalise_passport_number(value: str) -> str:
    """Upper case, no separators: " fb 12-3456 " -> "FB123456"; ValueError if it is not a number."""
    return _document_number(value, "passport", PASSPORT_MIN, PASSPORT_MAX)


def normalise_national_id(value: str) -> str:
    return _document_number(value, "national id", NATIONAL_ID_MIN, NATIONAL_ID_MAX)


PassportNumber = Annotated[
    str, Field(max_length=64, examples=["FB123456"]), AfterValidator(normalise_passport_number)
]
NationalId = Annotated[str, Field(max_length=64), AfterValidator(normalise_national_id)]

# A passport is issued for at most 10 years (ICAO); some carried unused months of the last one over
# (up to 10 years 9 months), hence 11. An expired passport may be recorded (renewal is then due, and the
# expiring-documents list shows it) but not one that expired more than 10 years ago: surely a typo.
PASSPORT_YEARS_AHEAD, PASSPORT_YEARS_PAST = 11, 10


def _passport_expiry(value: date, info: ValidationInfo) -> date:
    day = today(info)
    if value > add_years(day, PASSPORT_YEARS_AHEAD) or value < add_years(day, -PASSPORT_YEARS_PAST):
        raise ValueError(
            f"A passport expiry must lie within {PASSPORT_YEARS_PAST} years before and "
            f"{PASSPORT_YEARS_AHEAD} years after today"
        )
    return value


PassportExpiry = Annotated[IsoDate, AfterValidator(_passport_expiry)]

# ------------------------------------------------------------------------------------ the sections

MAX_SKILLS, MAX_LANGUAGES, MAX_EDUCATION, MAX_WORK_HISTORY = 50, 20, 20, 30
# Years of schooling and work: none before 1950 belongs to a living candidate's record.
EARLIEST_YEAR = 1950


class EmergencyContact(InputModel):
    """Whom to call: a phone number is the point of it; typed without + it is read as a number of
    the candidate's nationality."""

    name: person_name(200)
    relationship: SingleLine | None = Field(default=None, min_length=1, max_length=50, examples=["mother"])
    phone: PhoneNumber
    email: EmailAddress | None = None


SkillLevel = Literal["basic", "intermediate", "advanced", "expert"]


class Skill(InputModel):
    name: SingleLine = Field(min_length=1, max_length=100, examples=["forklift operation"])
    level: SkillLevel | None = None
    years: int | None = Field(default=None, ge=0, le=60, description="Years of experience")


# CEFR levels, plus the candidate's own first language(s).
LanguageLevel = Literal["native", "C2", "C1", "B2", "B1", "A2", "A1"]


class LanguageSkill(InputModel):
    code: IsoLanguage
    level: LanguageLevel = Field(description="CEFR level, or native")


EducationLevel = Literal["primary", "secondary", "vocational", "tertiary", "postgraduate", "other"]


class Education(InputModel):
    level: EducationLevel
    institution: SingleLine = Field(min_length=1, max_length=200)
    qualification: SingleLine | None = Field(default=None, min_length=1, max_length=200)
    field_of_study: SingleLine | None = Field(default=None, min_length=1, max_length=200)
    country: IsoCountry | None = None
    start_year: int | None = Field(default=None, ge=EARLIEST_YEAR)
    # An end year ahead of today is an expected completion.
    end_year: int | None = Field(default=None, ge=EARLIEST_YEAR)
    completed: bool | None = None

    @model_validator(mode="after")
    def _years(self, info: ValidationInfo) -> Education:
        this_year = today(info).year
        if self.start_year is not None and self.start_year > this_year:
            raise ValueError("startYear cannot be in the future")
        if self.end_year is not None and self.end_year > this_year + 10:
            raise ValueError("endYear is more than 10 years ahead")
        if self.start_year is not None and self.end_year is not None and self.end_year < self.start_year:
            raise ValueError("endYear is before startYear")
        return self


class WorkExperience(InputModel):
    """One job. When only the month is known, give its first day."""

    employer: SingleLine = Field(min_length=1, max_length=200)
    position: SingleLine = Field(min_length=1, max_length=200)
    country: IsoCountry | None = None
    start_date: IsoDate
    end_date: IsoDate | None = Field(default=None, description="Leave out for the current job")
    description: str | None = Field(default=None, min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _dates(self, info: ValidationInfo) -> WorkExperience:
        day = today(info)
        if self.start_date.year < EARLIEST_YEAR or self.start_date > day:
            raise ValueError(f"startDate must lie between {EARLIEST_YEAR} and today")
        if self.end_date is not None and (self.end_date > day or self.end_date < self.start_date):
            raise ValueError("endDate must lie between startDate and today")
        return self


def _unique(items: list[Any], key: Any, what: str) -> list[Any]:
    seen = set()
    for item in items:
        value = key(item)
        if value in seen:
            raise ValueError(f"{what} {value!r} is listed twice")
        seen.add(value)
    return items


Skills = Annotated[
    list[Skill],
    Field(max_length=MAX_SKILLS),
    AfterValidator(lambda items: _unique(items, lambda skill: skill.name.casefold(), "The skill")),
]
Languages = Annotated[
    list[LanguageSkill],
    Field(max_length=MAX_LANGUAGES),
    AfterValidator(lambda items: _unique(items, lambda language: language.code, "The language")),
]
EducationHistory = Annotated[list[Education], Field(max_length=MAX_EDUCATION)]
WorkHistory = Annotated[list[WorkExperience], Field(max_length=MAX_WORK_HISTORY)]
