"""Candidates' documents: the uploaded files (passport, police clearance, medical, ...) and their review.

A document is a row and a stored file (core/storage.py, by content hash). Versions: a document of a
type that a candidate holds one of at a time (`SUPERSEDING_TYPES`) supersedes the current one of that
type when it is uploaded; the older one is kept, with `supersededAt` and `supersededById` (the newer
version) set. The current version of a type is the one with `supersededAt` NULL; only it counts (the
expiring-documents list, the expiry reminders). Certificates, references and "other" documents come
several at a time and never supersede one another.
"""

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from mobility.core.db import Base
from mobility.core.models import TenantScopedMixin, UTCDateTime, db_enum, same_tenant_fk, tenant_table_args


class DocumentType(enum.StrEnum):
    passport = "passport"
    national_id = "national_id"
    birth_certificate = "birth_certificate"
    police_clearance = "police_clearance"
    medical = "medical"
    visa = "visa"
    contract = "contract"
    certificate = "certificate"
    photo = "photo"
    cv = "cv"
    reference = "reference"
    other = "other"


# A person has several of these at once (a certificate per course, a reference per employer): a new one
# supersedes none. Every other type has one current version, which a newer upload supersedes.
SEVERAL_AT_ONCE = frozenset({DocumentType.certificate, DocumentType.reference, DocumentType.other})
SUPERSEDING_TYPES = frozenset(DocumentType) - SEVERAL_AT_ONCE


class DocumentStatus(enum.StrEnum):
    pending = "pending"
    verified = "verified"
    rejected = "rejected"


class CandidateDocument(TenantScopedMixin, Base):
    """An uploaded file; deleting the candidate deletes these rows (and the service, the files)."""

    __tablename__ = "candidate_documents"
    __table_args__ = tenant_table_args(
        same_tenant_fk("candidateId", "candidates", ondelete="CASCADE"),
        Index(None, "tenantId", "candidateId", "type"),
        Index(None, "tenantId", "expiresOn"),
    )

    candidate_id: Mapped[uuid.UUID] = mapped_column("candidateId", Uuid)
    type: Mapped[DocumentType] = mapped_column(db_enum(DocumentType))
    file_name: Mapped[str] = mapped_column("fileName", String(255))
    content_type: Mapped[str] = mapped_column("contentType", String(127))
    size_bytes: Mapped[int] = mapped_column("sizeBytes", BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # Where the file lives in the document store (never a client-supplied path).
    storage_key: Mapped[str] = mapped_column("storageKey", String(512))
    document_number: Mapped[str | None] = mapped_column("documentNumber", String(64))
    issued_on: Mapped[date | None] = mapped_column("issuedOn", Date)
    expires_on: Mapped[date | None] = mapped_column("expiresOn", Date)
    status: Mapped[DocumentStatus] = mapped_column(
        db_enum(DocumentStatus), default=DocumentStatus.pending, server_default="pending"
    )
    # Who verified the document and when (set while it is verified).
    verified_by: Mapped[uuid.UUID | None] = mapped_column(
        "verifiedBy", Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    verified_at: Mapped[datetime | None] = mapped_column("verifiedAt", UTCDateTime())
    notes: Mapped[str | None] = mapped_column(Text)
    # The last review, verification or rejection (0021): who (a staff member's user id, a record like
    # the audit trail's actor, no foreign key), when, and why (required for a rejection).
    reviewed_by: Mapped[uuid.UUID | None] = mapped_column("reviewedBy", Uuid)
    reviewed_at: Mapped[datetime | None] = mapped_column("reviewedAt", UTCDateTime())
    review_reason: Mapped[str | None] = mapped_column("reviewReason", Text)
    # Set when a newer upload of the same type replaced this version (0021): when, and by which
    # document (the documents service keeps the chain when a version is deleted; no foreign key, so a
    # candidate's documents can be deleted together in any order).
    superseded_at: Mapped[datetime | None] = mapped_column("supersededAt", UTCDateTime())
    superseded_by_id: Mapped[uuid.UUID | None] = mapped_column("supersededById", Uuid)

    @property
    def current(self) -> bool:
        """The current version of its type (not superseded by a newer upload)."""
        return self.superseded_at is None
