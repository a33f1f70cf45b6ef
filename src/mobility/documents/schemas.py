"""Documents' API shapes: the upload's form fields, a review, what is shown, the expiring list."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator, model_validator

from mobility.core.calendar import add_years, today
from mobility.core.pagination import ListParams, sort_by
from mobility.core.schemas import InputModel, IsoDate, OutputModel, QueryModel, SingleLine
from mobility.documents.models import DocumentStatus, DocumentType

MAX_REASON = 1000
# A document issued more than 60 years ago, or expiring more than 60 years ahead, is surely a typo.
DATE_RANGE_YEARS = 60


def _empty_as_none(value: object) -> object:
    # A form's empty field (an HTML date input left blank) means "not given".
    return None if isinstance(value, str) and not value.strip() else value


OptionalDate = Annotated[IsoDate | None, BeforeValidator(_empty_as_none)]


class DocumentUpload(InputModel):
    """The form fields beside the file (multipart/form-data). The file's part is named `file`."""

    type: DocumentType
    document_number: Annotated[SingleLine | None, BeforeValidator(_empty_as_none)] = Field(
        default=None, max_length=64, examples=["FB123456"]
    )
    issued_on: OptionalDate = None
    expires_on: OptionalDate = None

    @field_validator("issued_on")
    @classmethod
    def _issued_in_the_past(cls, value: date | None) -> date | None:
        if value is not None and not add_years(today(), -DATE_RANGE_YEARS) <= value <= today():
            raise ValueError(f"A document is issued today or in the last {DATE_RANGE_YEARS} years")
        return value

    @field_validator("expires_on")
    @classmethod
    def _expiry_in_range(cls, value: date | None) -> date | None:
        if value is not None and not (
            add_years(today(), -DATE_RANGE_YEARS) <= value <= add_years(today(), DATE_RANGE_YEARS)
        ):
            raise ValueError(f"An expiry lies within {DATE_RANGE_YEARS} years of today")
        return value

    @model_validator(mode="after")
    def _expires_after_issue(self) -> DocumentUpload:
        if self.issued_on and self.expires_on and self.expires_on <= self.issued_on:
            raise ValueError("expiresOn must be after issuedOn")
        return self


class DocumentRejection(InputModel):
    reason: Annotated[str, Field(min_length=1, max_length=MAX_REASON, examples=["The scan is unreadable"])]


class DocumentVerification(InputModel):
    note: Annotated[str | None, Field(max_length=MAX_REASON)] = None


class DocumentRead(OutputModel):
    id: uuid.UUID
    candidate_id: uuid.UUID
    type: DocumentType
    file_name: str
    content_type: str
    size_bytes: int
    sha256: str
    document_number: str | None
    issued_on: date | None
    expires_on: date | None
    status: DocumentStatus
    verified_by: uuid.UUID | None
    verified_at: datetime | None
    reviewed_by: uuid.UUID | None
    reviewed_at: datetime | None
    review_reason: str | None
    # False for a version a newer upload of the same type superseded (history).
    current: bool
    superseded_at: datetime | None
    superseded_by_id: uuid.UUID | None
    created_by: uuid.UUID | None = Field(description="Who uploaded it")
    created_at: datetime
    updated_at: datetime


class CandidateDocumentsParams(QueryModel):
    include_superseded: bool = Field(default=False, description="Also the versions newer uploads superseded")


class ExpiringParams(ListParams):
    within: str | None = Field(
        default=None,
        pattern=r"^\d{1,4}d$",
        examples=["90d"],
        description=(
            "How far ahead to look for every type, in days (`90d`, at most 3650d). Without it, each type's "
            "own lead time: the longest of its reminder lead days (setting notifications.reminderLeadDays)."
        ),
    )
    type: DocumentType | None = None
    include_expired: bool = Field(default=False, description="Also current documents already expired")
    sort: sort_by("expiresOn") = None


class CandidateSummary(OutputModel):
    id: uuid.UUID
    reference_number: str
    first_name: str
    last_name: str


class ExpiringDocumentRead(DocumentRead):
    days_left: int = Field(description="Days until it expires (negative: expired)")
    lead_days: int = Field(description="How far ahead this type was looked at")
    candidate: CandidateSummary
