"""Candidates (workers preparing for overseas employment). Their documents are the documents domain's
(mobility/documents/models.py)."""

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from mobility.core.db import Base
from mobility.core.models import (
    EMPTY_JSON_ARRAY,
    CountryCode,
    JSONType,
    TenantScopedMixin,
    UTCDateTime,
    db_enum,
    same_tenant_fk,
    tenant_table_args,
)


class CandidateStatus(enum.StrEnum):
    """The pipeline; the candidates service allows only the transitions of DESIGN.md."""

    registered = "registered"
    in_training = "in_training"
    trained = "trained"
    vetting = "vetting"
    ready = "ready"
    placed = "placed"
    deployed = "deployed"
    returned = "returned"
    withdrawn = "withdrawn"
    rejected = "rejected"


class Gender(enum.StrEnum):
    female = "female"
    male = "male"
    other = "other"
    undisclosed = "undisclosed"


class Candidate(TenantScopedMixin, Base):
    __tablename__ = "candidates"
    __table_args__ = tenant_table_args(
        UniqueConstraint("tenantId", "referenceNumber"),
        # One login stands for at most one candidate (or agent, broker) record per tenant.
        UniqueConstraint("tenantId", "userId"),
        same_tenant_fk("agentId", "agents"),
        same_tenant_fk("brokerId", "brokers"),
        # A merged-away record (a tombstone) points at the record it was merged into (0019); it goes
        # with that record if the record is ever deleted.
        same_tenant_fk("mergedIntoId", "candidates", ondelete="CASCADE"),
        Index(None, "tenantId", "mergedIntoId"),
        # The list's order, newest first, with and without a status filter (0022).
        Index(None, "tenantId", "status", "createdAt", "id"),
        Index(None, "tenantId", "createdAt", "id"),
        Index(None, "tenantId", "agentId"),
        Index(None, "tenantId", "brokerId"),
        Index(None, "tenantId", "lastName", "firstName"),
        Index(None, "tenantId", "passportNumber"),
        # The duplicate rules (candidates/duplicates.py), absolute ones as unique keys per tenant (0018):
        # a concurrent registration of the same person meets the key, not a race.
        UniqueConstraint("tenantId", "passportKey"),
        UniqueConstraint("tenantId", "nationalIdKey"),
        UniqueConstraint("tenantId", "emailKey"),
        Index(None, "tenantId", "dateOfBirth"),
        # The name search within a tenant: trigram similarity on PostgreSQL (pg_trgm, GiST: the tenant's
        # names together under its key through btree_gist; holding what ranks a page, so that the
        # search reads no row but the page's, 0023), a plain index on SQLite.
        Index(
            "candidates_tenantId_searchName_idx",
            "tenantId",
            "searchName",
            postgresql_using="gist",
            postgresql_ops={"searchName": "gist_trgm_ops(siglen=32)"},
            postgresql_include=["searchName", "mergedIntoId", "id"],
        ),
    )

    # Human-facing number, e.g. WTI-2026-000123; unique per tenant. 48: a 32-character tenant code,
    # the year and a sequence number of up to 10 digits (0018).
    reference_number: Mapped[str] = mapped_column("referenceNumber", String(48))
    first_name: Mapped[str] = mapped_column("firstName", String(100))
    middle_name: Mapped[str | None] = mapped_column("middleName", String(100))
    last_name: Mapped[str] = mapped_column("lastName", String(100))
    date_of_birth: Mapped[date | None] = mapped_column("dateOfBirth", Date)
    gender: Mapped[Gender | None] = mapped_column(db_enum(Gender))
    nationality: Mapped[str | None] = mapped_column(CountryCode)
    national_id: Mapped[str | None] = mapped_column("nationalId", String(64))
    passport_number: Mapped[str | None] = mapped_column("passportNumber", String(32))
    passport_expiry: Mapped[date | None] = mapped_column("passportExpiry", Date)
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40))
    address: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    emergency_contact: Mapped[dict[str, Any] | None] = mapped_column("emergencyContact", JSONType)
    skills: Mapped[list[Any]] = mapped_column(JSONType, default=list, server_default=EMPTY_JSON_ARRAY)
    languages: Mapped[list[Any]] = mapped_column(JSONType, default=list, server_default=EMPTY_JSON_ARRAY)
    education: Mapped[list[Any]] = mapped_column(JSONType, default=list, server_default=EMPTY_JSON_ARRAY)
    work_history: Mapped[list[Any]] = mapped_column(
        "workHistory", JSONType, default=list, server_default=EMPTY_JSON_ARRAY
    )
    photo_url: Mapped[str | None] = mapped_column("photoUrl", String(1024))
    cv_url: Mapped[str | None] = mapped_column("cvUrl", String(1024))
    status: Mapped[CandidateStatus] = mapped_column(
        db_enum(CandidateStatus), default=CandidateStatus.registered, server_default="registered"
    )
    agent_id: Mapped[uuid.UUID | None] = mapped_column("agentId", Uuid)
    broker_id: Mapped[uuid.UUID | None] = mapped_column("brokerId", Uuid)
    # The candidate's own login, when they have one.
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        "userId", Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    notes: Mapped[str | None] = mapped_column(Text)
    # Kept by the service from the fields above (duplicates.py), never sent by a client (0018):
    # "FJ:FB123456", "FJ:<national id>", the e-mail in lower case, and the name in ASCII lower case
    # (transliterated: the accent- and case-insensitive name search, trigram-indexed on PostgreSQL).
    passport_key: Mapped[str | None] = mapped_column("passportKey", String(40))
    national_id_key: Mapped[str | None] = mapped_column("nationalIdKey", String(40))
    email_key: Mapped[str | None] = mapped_column("emailKey", String(320))
    search_name: Mapped[str | None] = mapped_column("searchName", String(600))
    # Set when the record was merged into another (candidates/merge.py, 0019): it is then a tombstone,
    # hidden from lists and searches, its id answering with the survivor's. `mergedBy` is the staff
    # member's user id (a record like the audit trail's actor, no foreign key).
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column("mergedIntoId", Uuid)
    merged_at: Mapped[datetime | None] = mapped_column("mergedAt", UTCDateTime())
    merged_by: Mapped[uuid.UUID | None] = mapped_column("mergedBy", Uuid)


class CandidateReferenceCounter(TenantScopedMixin, Base):
    """The last reference sequence number a tenant gave in a year (0018). Taken by an
    INSERT ... ON CONFLICT DO UPDATE ... RETURNING in the registering transaction: the row stays locked
    until it commits, so concurrent registrations get distinct numbers, and a rolled-back one gives
    its number back. Bookkeeping, not audited (the candidate's own entry shows its number)."""

    __tablename__ = "candidate_reference_counters"
    __audited__ = False
    __table_args__ = tenant_table_args(UniqueConstraint("tenantId", "year"))

    year: Mapped[int] = mapped_column(Integer)
    last_number: Mapped[int] = mapped_column("lastNumber", BigInteger)


# Kept importable from here for the modules written before the documents domain had its own package;
# new code imports them from mobility.documents.models.
from mobility.documents.models import CandidateDocument, DocumentStatus, DocumentType  # noqa: E402

__all__ = [
    "Candidate",
    "CandidateDocument",
    "CandidateReferenceCounter",
    "CandidateStatus",
    "DocumentStatus",
    "DocumentType",
    "Gender",
]
