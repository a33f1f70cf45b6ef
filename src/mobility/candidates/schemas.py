"""Candidates' API shapes: who may send which fields is in the shape itself.

- Staff: `CandidateCreate` / `CandidateUpdate`: the profile, the partner links and the internal notes.
- An Agent or Broker: `PartnerCandidateCreate` / `PartnerCandidateUpdate`: the profile only; the
  service links the candidate to the caller's own partner record.
- The candidate themself: `CandidateSelfUpdate`: contacts, address and emergency contact only.
A field outside the caller's shape is refused with 422 (the bases forbid unknown fields), never dropped.
The status is never in these shapes: it changes through `StatusChange` and the pipeline's rule.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, ClassVar

from pydantic import Field, model_validator

from mobility.candidates.models import CandidateStatus, Gender
from mobility.candidates.pipeline import MAX_REASON
from mobility.candidates.profile import (
    DateOfBirth,
    Education,
    EducationHistory,
    EmergencyContact,
    Languages,
    LanguageSkill,
    NationalId,
    PassportExpiry,
    PassportNumber,
    Skill,
    Skills,
    WorkExperience,
    WorkHistory,
)
from mobility.core.contact import EmailAddress, PhoneNumber, PostalAddress, national_phones, person_name
from mobility.core.iso_codes import IsoCountry
from mobility.core.pagination import ListParams, sort_by
from mobility.core.schemas import InputModel, IsoDate, IsoDateTime, OutputModel, QueryModel, UpdateModel

Name = person_name(100)  # the column's length
MAX_NOTES = 5000
# Phone numbers typed without + are read as numbers of the candidate's nationality.
PHONE_FIELDS = ("phone", "emergency_contact.phone")


class _ProfileCreate(InputModel):
    first_name: Name = Field(examples=["Mere"])
    middle_name: Name | None = None
    last_name: Name = Field(examples=["Tuilagi"])
    # Required: the passport key, the phone region and the likely-duplicate check hang on them, and an
    # institute registering a worker for employment abroad always knows them.
    date_of_birth: DateOfBirth
    nationality: IsoCountry
    gender: Gender | None = None
    national_id: NationalId | None = None
    passport_number: PassportNumber | None = None
    passport_expiry: PassportExpiry | None = None
    email: EmailAddress | None = None
    phone: PhoneNumber | None = None
    address: PostalAddress | None = None
    emergency_contact: EmergencyContact | None = None
    skills: Skills = Field(default_factory=list)
    languages: Languages = Field(default_factory=list)
    education: EducationHistory = Field(default_factory=list)
    work_history: WorkHistory = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _national_phones(cls, data: Any) -> Any:
        return national_phones(data, "nationality", *PHONE_FIELDS)

    @model_validator(mode="after")
    def _passport(self) -> _ProfileCreate:
        # (An expiry before the birth cannot pass both fields' ranges: 16+ years old, expired 10- ago.)
        if self.passport_expiry is not None and self.passport_number is None:
            raise ValueError("passportExpiry needs passportNumber")
        return self


class PartnerCandidateCreate(_ProfileCreate):
    """A candidate registered by an Agent or Broker (linked to the caller's partner record)."""


class CandidateCreate(_ProfileCreate):
    """A candidate registered by staff."""

    agent_id: uuid.UUID | None = None
    broker_id: uuid.UUID | None = None
    notes: str | None = Field(default=None, min_length=1, max_length=MAX_NOTES)


class CandidateSelfUpdate(UpdateModel):
    """What a candidate may change on their own record. Their nationality is not in this shape, so a
    phone number must be given in international form (+ and the country code)."""

    nullable: ClassVar[frozenset[str]] = frozenset({"email", "phone", "address", "emergency_contact"})

    email: EmailAddress | None = None
    phone: PhoneNumber | None = None
    address: PostalAddress | None = None
    emergency_contact: EmergencyContact | None = None


class PartnerCandidateUpdate(CandidateSelfUpdate):
    """What an Agent or Broker may change on their own candidates: the profile, not the links."""

    nullable: ClassVar[frozenset[str]] = CandidateSelfUpdate.nullable | {
        "middle_name",
        "gender",
        "national_id",
        "passport_number",
        "passport_expiry",
    }

    first_name: Name | None = None
    middle_name: Name | None = None
    last_name: Name | None = None
    date_of_birth: DateOfBirth | None = None
    nationality: IsoCountry | None = None
    gender: Gender | None = None
    national_id: NationalId | None = None
    passport_number: PassportNumber | None = None
    passport_expiry: PassportExpiry | None = None
    skills: Skills | None = None
    languages: Languages | None = None
    education: EducationHistory | None = None
    work_history: WorkHistory | None = None

    @model_validator(mode="before")
    @classmethod
    def _national_phones(cls, data: Any) -> Any:
        # Only when the same body carries the nationality; else + form (the service may validate again
        # with the stored nationality in the data when it wants national forms read).
        return national_phones(data, "nationality", *PHONE_FIELDS)


class CandidateUpdate(PartnerCandidateUpdate):
    """What staff may change: the profile, the partner links and the notes (never the status)."""

    nullable: ClassVar[frozenset[str]] = PartnerCandidateUpdate.nullable | {"agent_id", "broker_id", "notes"}

    agent_id: uuid.UUID | None = None
    broker_id: uuid.UUID | None = None
    notes: str | None = Field(default=None, min_length=1, max_length=MAX_NOTES)


class StatusChange(InputModel):
    """A manual move along the pipeline; some moves need a reason (pipeline.py)."""

    status: CandidateStatus
    reason: str | None = Field(default=None, max_length=MAX_REASON)


# -------------------------------------------------------------------------------------------- read


class CandidateRead(OutputModel):
    """A candidate as partners and the candidate themself see it (no internal notes)."""

    id: uuid.UUID
    reference_number: str
    first_name: str
    middle_name: str | None
    last_name: str
    date_of_birth: date | None
    gender: Gender | None
    nationality: str | None
    national_id: str | None
    passport_number: str | None
    passport_expiry: date | None
    email: str | None
    phone: str | None
    address: PostalAddress | None
    emergency_contact: EmergencyContact | None
    skills: list[Skill]
    languages: list[LanguageSkill]
    education: list[Education]
    work_history: list[WorkExperience]
    photo_url: str | None
    cv_url: str | None
    status: CandidateStatus
    agent_id: uuid.UUID | None
    broker_id: uuid.UUID | None
    user_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class CandidateStaffRead(CandidateRead):
    notes: str | None


class PossibleDuplicateRead(OutputModel):
    """A candidate who is likely the same person (same date of birth, similar name): not refused."""

    id: uuid.UUID
    reference_number: str
    first_name: str
    last_name: str
    date_of_birth: date | None
    nationality: str | None
    status: CandidateStatus
    similarity: float = Field(description="Name similarity, 0..100")


class CandidateCreated(CandidateStaffRead):
    """The registered candidate (the internal notes only for staff) and its likely duplicates."""

    notes: str | None = None
    possible_duplicates: list[PossibleDuplicateRead]


class CandidateHistoryEntry(OutputModel):
    """One change of the record, from the audit trail: who, when, what (the changed fields before and
    after; a status change's reason in `after.reason`)."""

    id: uuid.UUID
    candidate_id: uuid.UUID = Field(
        description="The record changed: this candidate, or a record merged into it (a tombstone)"
    )
    at: datetime
    actor_id: uuid.UUID | None
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class CandidateHistoryParams(ListParams):
    """Oldest first by default (`sort=createdAt`); `sort=-createdAt` for the newest first."""

    sort: sort_by("createdAt") = Field(default=None, description="Default: createdAt")


class CandidateFilterParams(QueryModel):
    """The list's filters and order (also the export's, candidates/exports.py). Newest first by
    default; with `q` on PostgreSQL, best name match first unless `sort` is given."""

    sort: sort_by("name", "createdAt") = Field(default=None, description="Default: -createdAt")
    status: CandidateStatus | None = None
    agent_id: uuid.UUID | None = None
    broker_id: uuid.UUID | None = None
    nationality: IsoCountry | None = None
    created_from: IsoDateTime | None = Field(default=None, description="Inclusive")
    created_to: IsoDateTime | None = Field(default=None, description="Exclusive")
    passport_expiring_before: IsoDate | None = Field(default=None, description="Exclusive")
    q: str | None = Field(
        default=None, min_length=1, max_length=100, description="Name, reference, passport or national id"
    )


class CandidateListParams(CandidateFilterParams, ListParams):
    """Newest first by default; with `q` on PostgreSQL, best name match first unless `sort` is given."""


class CandidateImportParams(QueryModel):
    """`POST /candidates/import`: check only, or write the valid rows and skip the refused ones."""

    dry_run: bool = Field(default=False, description="Check every row as an import would; write nothing")
    skip_invalid: bool = Field(
        default=False,
        description="Import the valid rows and report the refused ones (default: all or nothing)",
    )


class RefusedRowRead(OutputModel):
    line: int = Field(description="The file's line (CSV) or row number (xlsx)")
    reasons: list[str]


class CandidateImportReport(OutputModel):
    """What an import did (or, on a dry run, would do): candidates/imports.py."""

    format: str = Field(description="csv or xlsx, from the file's content")
    dry_run: bool
    written: bool = Field(description="Whether the candidates were saved")
    rows: int = Field(description="Data rows read")
    valid: int = Field(description="Rows that passed every rule")
    created: int
    rejected: int
    rejected_rows: list[RefusedRowRead] = Field(description="The first 10,000 refused rows")
    truncated: bool = Field(description="More rows were refused than are listed")


# ------------------------------------------------------------------------------------------- merge


class CandidateMergeRequest(InputModel):
    """The duplicate record to fold into the candidate of the path (the survivor)."""

    duplicate_candidate_id: uuid.UUID = Field(description="The record merged away (kept as a tombstone)")


class CandidateMergeResult(OutputModel):
    """The survivor after the merge, and what the merge did (also in its `candidate.merge` history
    entry): the rows moved, per table (`moved`; rows that hang off an enrollment follow it, listed
    under their own table), and the survivor's fields filled from the duplicate."""

    survivor: CandidateStaffRead
    merged_id: uuid.UUID
    moved: dict[str, list[uuid.UUID]]
    filled_fields: list[str]
