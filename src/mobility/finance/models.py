"""Money: payments in and out, and invoices to employers and candidates."""

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Date, Index, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from mobility.core.db import Base
from mobility.core.models import (
    EMPTY_JSON_ARRAY,
    Currency,
    JSONType,
    Money,
    TenantScopedMixin,
    UTCDateTime,
    db_enum,
    same_tenant_fk,
    tenant_table_args,
)


class PaymentDirection(enum.StrEnum):
    incoming = "incoming"
    outgoing = "outgoing"


class PartyType(enum.StrEnum):
    candidate = "candidate"
    agent = "agent"
    broker = "broker"
    employer = "employer"


class PaymentMethod(enum.StrEnum):
    bank_transfer = "bank_transfer"
    cash = "cash"
    card = "card"
    mobile_money = "mobile_money"
    cheque = "cheque"
    other = "other"


class PaymentStatus(enum.StrEnum):
    pending = "pending"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"
    refunded = "refunded"


class InvoiceStatus(enum.StrEnum):
    draft = "draft"
    issued = "issued"
    partially_paid = "partially_paid"
    paid = "paid"
    void = "void"


class Payment(TenantScopedMixin, Base):
    __tablename__ = "payments"
    __table_args__ = tenant_table_args(
        # A retried request with the same key returns the first payment, never a second one.
        UniqueConstraint("tenantId", "idempotencyKey"),
        CheckConstraint('"amount" > 0', name="amount_positive"),
        same_tenant_fk("candidateId", "candidates"),
        same_tenant_fk("agentId", "agents"),
        same_tenant_fk("brokerId", "brokers"),
        same_tenant_fk("placementId", "placements"),
        # Added by the last revision: invoices are created after payments in the spec's order.
        same_tenant_fk("invoiceId", "invoices"),
        Index(None, "tenantId", "status", "createdAt"),
        Index(None, "tenantId", "candidateId"),
        Index(None, "tenantId", "agentId"),
        Index(None, "tenantId", "brokerId"),
        Index(None, "tenantId", "invoiceId"),
        Index(None, "tenantId", "placementId"),
    )

    direction: Mapped[PaymentDirection] = mapped_column(db_enum(PaymentDirection))
    party_type: Mapped[PartyType] = mapped_column("partyType", db_enum(PartyType))
    candidate_id: Mapped[uuid.UUID | None] = mapped_column("candidateId", Uuid)
    agent_id: Mapped[uuid.UUID | None] = mapped_column("agentId", Uuid)
    broker_id: Mapped[uuid.UUID | None] = mapped_column("brokerId", Uuid)
    # For employers, who have no record of their own.
    party_name: Mapped[str | None] = mapped_column("partyName", String(200))
    placement_id: Mapped[uuid.UUID | None] = mapped_column("placementId", Uuid)
    invoice_id: Mapped[uuid.UUID | None] = mapped_column("invoiceId", Uuid)
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(Currency)
    method: Mapped[PaymentMethod] = mapped_column(db_enum(PaymentMethod))
    status: Mapped[PaymentStatus] = mapped_column(
        db_enum(PaymentStatus), default=PaymentStatus.pending, server_default="pending"
    )
    reference: Mapped[str | None] = mapped_column(String(100))
    idempotency_key: Mapped[str | None] = mapped_column("idempotencyKey", String(128))
    description: Mapped[str | None] = mapped_column(Text)
    due_date: Mapped[date | None] = mapped_column("dueDate", Date)
    paid_at: Mapped[datetime | None] = mapped_column("paidAt", UTCDateTime())


class Invoice(TenantScopedMixin, Base):
    __tablename__ = "invoices"
    __table_args__ = tenant_table_args(
        # Null while a draft; numbered on issue, gapless per tenant.
        UniqueConstraint("tenantId", "invoiceNumber"),
        same_tenant_fk("candidateId", "candidates"),
        same_tenant_fk("agentId", "agents"),
        same_tenant_fk("brokerId", "brokers"),
        same_tenant_fk("placementId", "placements"),
        Index(None, "tenantId", "status", "dueDate"),
        Index(None, "tenantId", "candidateId"),
        Index(None, "tenantId", "placementId"),
    )

    invoice_number: Mapped[str | None] = mapped_column("invoiceNumber", String(32))
    bill_to_type: Mapped[PartyType] = mapped_column("billToType", db_enum(PartyType))
    candidate_id: Mapped[uuid.UUID | None] = mapped_column("candidateId", Uuid)
    agent_id: Mapped[uuid.UUID | None] = mapped_column("agentId", Uuid)
    broker_id: Mapped[uuid.UUID | None] = mapped_column("brokerId", Uuid)
    placement_id: Mapped[uuid.UUID | None] = mapped_column("placementId", Uuid)
    bill_to_name: Mapped[str] = mapped_column("billToName", String(200))
    bill_to_details: Mapped[dict[str, Any] | None] = mapped_column("billToDetails", JSONType)
    # [{"description": str, "quantity": "1", "unitPrice": "100.00", "amount": "100.00"}]
    line_items: Mapped[list[Any]] = mapped_column(
        "lineItems", JSONType, default=list, server_default=EMPTY_JSON_ARRAY
    )
    subtotal: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"), server_default="0")
    tax: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"), server_default="0")
    total: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"), server_default="0")
    amount_paid: Mapped[Decimal] = mapped_column(
        "amountPaid", Money, default=Decimal("0"), server_default="0"
    )
    currency: Mapped[str] = mapped_column(Currency)
    status: Mapped[InvoiceStatus] = mapped_column(
        db_enum(InvoiceStatus), default=InvoiceStatus.draft, server_default="draft"
    )
    issued_at: Mapped[datetime | None] = mapped_column("issuedAt", UTCDateTime())
    due_date: Mapped[date | None] = mapped_column("dueDate", Date)
    paid_at: Mapped[datetime | None] = mapped_column("paidAt", UTCDateTime())
    voided_at: Mapped[datetime | None] = mapped_column("voidedAt", UTCDateTime())
    void_reason: Mapped[str | None] = mapped_column("voidReason", Text)
