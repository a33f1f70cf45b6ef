"""What the schema at head enforces by itself, whatever the application does.

Runs on the shared database at head; every test works inside a transaction it rolls back.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import DataError, IntegrityError

from mobility.core.models import new_id, utcnow
from mobility.models import metadata
from tests.migrations.support import sync_engine

TABLES = metadata.tables

# What a row needs beyond its tenant and the parents `Rows.make` creates.
REQUIRED: dict[str, Callable[[], dict[str, Any]]] = {
    "agents": lambda: {"code": _token(), "name": "Pacific Labour Partners"},
    "brokers": lambda: {"code": _token(), "name": "Southern Cross Brokers"},
    "candidates": lambda: {"referenceNumber": _token(), "firstName": "Mereani", "lastName": "Vāka"},
    "courses": lambda: {"code": _token(), "title": "Horticulture Level 2"},
    "enrollments": dict,
    "attendance_records": lambda: {"sessionDate": date(2026, 3, 2), "status": "present"},
    "certificates": lambda: {
        "certificateNumber": _token(),
        "verificationCode": _token(),
        "issuedAt": utcnow(),
    },
    "vetting_records": lambda: {"checkType": "medical"},
    "placements": lambda: {"employerName": "Orchard Co", "country": "AU", "position": "Picker"},
    "payments": lambda: {
        "direction": "incoming",
        "partyType": "employer",
        "amount": Decimal("150.00"),
        "currency": "FJD",
        "method": "bank_transfer",
    },
    "invoices": lambda: {"billToType": "employer", "billToName": "Orchard Co", "currency": "FJD"},
    "settings": lambda: {"key": _token(), "value": {"months": 6}},
    "candidate_documents": lambda: {
        "type": "passport",
        "fileName": "passport.pdf",
        "contentType": "application/pdf",
        "sizeBytes": 1024,
        "sha256": "0" * 64,
        "storageKey": f"documents/{_token()}",
    },
}
# References a row cannot be without; made in the same tenant unless given.
PARENTS: dict[str, dict[str, str]] = {
    "enrollments": {"courseId": "courses", "candidateId": "candidates"},
    "attendance_records": {"enrollmentId": "enrollments"},
    "certificates": {"enrollmentId": "enrollments"},
    "vetting_records": {"candidateId": "candidates"},
    "placements": {"candidateId": "candidates"},
    "candidate_documents": {"candidateId": "candidates"},
}


# Global keys (0015): a value the row carries must first be registered for its tenant in a key table.
KEYS: dict[str, dict[str, str]] = {"certificates": {"verificationCode": "certificate_codes"}}


def _token() -> str:
    return secrets.token_hex(6)


class Rows:
    """Minimal valid rows, inserted through the models' tables."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def tenant(self) -> uuid.UUID:
        return self.insert("tenants", name=f"Institute {_token()}", code=_token())

    def user(self) -> uuid.UUID:
        return self.insert("users", email=f"{_token()}@example.test")

    def make(self, table: str, tenant: uuid.UUID, *, register: bool = True, **values: Any) -> uuid.UUID:
        for column, parent in PARENTS.get(table, {}).items():
            if column not in values:
                values[column] = self.make(parent, tenant)
        values = {**REQUIRED[table](), **values}
        for column, key_table in KEYS.get(table, {}).items() if register else ():
            self.insert(key_table, tenantId=tenant, **{column: values[column]})
        return self.insert(table, tenantId=tenant, **values)

    def insert(self, table: str, **values: Any) -> uuid.UUID:
        values.setdefault("id", new_id())
        self.connection.execute(TABLES[table].insert().values(**values))
        return values["id"]

    def count(self, table: str, **where: Any) -> int:
        query = sa.select(sa.func.count()).select_from(TABLES[table])
        for column, value in where.items():
            query = query.where(TABLES[table].c[column] == value)
        return self.connection.execute(query).scalar_one()


@pytest.fixture
def rows(migrated_database_url: str) -> Iterator[Rows]:
    with sync_engine(migrated_database_url) as engine, engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield Rows(connection)
        finally:
            transaction.rollback()


def _refused(rows: Rows, write: Callable[[], object], error: type[Exception] = IntegrityError) -> None:
    with pytest.raises(error), rows.connection.begin_nested():
        write()


# Each case: given rows and a tenant, a function that inserts a row whose unique key is the same
# every time it is called for that tenant, and differs only by tenant otherwise.
UNIQUE_CASES: dict[str, Callable[[Rows, uuid.UUID], Callable[[], object]]] = {
    "agents (tenantId, code)": lambda r, t: lambda: r.make("agents", t, code="AG-001"),
    "brokers (tenantId, code)": lambda r, t: lambda: r.make("brokers", t, code="BR-001"),
    "courses (tenantId, code)": lambda r, t: lambda: r.make("courses", t, code="HORT-2"),
    "candidates (tenantId, referenceNumber)": lambda r, t: (
        lambda: r.make("candidates", t, referenceNumber="WTI-2026-000001")
    ),
    "certificates (tenantId, certificateNumber)": lambda r, t: (
        lambda: r.make("certificates", t, certificateNumber="CERT-0001")
    ),
    "invoices (tenantId, invoiceNumber)": lambda r, t: (
        lambda: r.make("invoices", t, invoiceNumber="INV-0001")
    ),
    "payments (tenantId, idempotencyKey)": lambda r, t: (
        lambda: r.make("payments", t, idempotencyKey="retry-1")
    ),
    "settings (tenantId, key)": lambda r, t: lambda: r.make("settings", t, key="vetting.requiredChecks"),
    "enrollments (tenantId, courseId, candidateId)": lambda r, t: (
        lambda course=r.make("courses", t), candidate=r.make("candidates", t): (
            lambda: r.make("enrollments", t, courseId=course, candidateId=candidate)
        )
    )(),
    "attendance_records (tenantId, enrollmentId, sessionDate)": lambda r, t: (
        lambda enrollment=r.make("enrollments", t): (
            lambda: r.make("attendance_records", t, enrollmentId=enrollment, sessionDate=date(2026, 3, 2))
        )
    )(),
}


@pytest.mark.parametrize("case", list(UNIQUE_CASES))
def test_unique_keys_are_scoped_by_tenant(rows: Rows, case: str) -> None:
    insert_in_a = UNIQUE_CASES[case](rows, rows.tenant())
    insert_in_b = UNIQUE_CASES[case](rows, rows.tenant())
    insert_in_a()
    insert_in_b()  # the same key in another tenant is fine
    _refused(rows, insert_in_a)  # twice in one tenant is not


def test_certificate_verification_code_is_unique_across_tenants(rows: Rows) -> None:
    rows.make("certificates", rows.tenant(), verificationCode="Zq7-public-code")
    other = rows.tenant()
    # Registered for the first tenant, the code cannot be registered for another...
    _refused(rows, lambda: rows.make("certificates", other, verificationCode="Zq7-public-code"))
    # ...nor used there without its registration: the certificate refers to (its tenant, the code).
    _refused(
        rows, lambda: rows.make("certificates", other, register=False, verificationCode="Zq7-public-code")
    )


def test_a_certificate_code_must_be_registered_for_its_tenant(rows: Rows) -> None:
    tenant = rows.tenant()
    _refused(rows, lambda: rows.make("certificates", tenant, register=False, verificationCode="unregistered"))
    rows.make("certificates", tenant, verificationCode="registered")
    assert rows.count("certificate_codes", tenantId=tenant, verificationCode="registered") == 1


def test_an_invitation_token_is_unique_across_tenants(rows: Rows) -> None:
    user = rows.user()

    def invite(tenant: uuid.UUID, token_hash: str, *, register: bool = True) -> None:
        if register:
            rows.insert("invitation_tokens", tenantId=tenant, tokenHash=token_hash)
        rows.insert(
            "user_invitations", tenantId=tenant, userId=user, tokenHash=token_hash, expiresAt=utcnow()
        )

    first, other = rows.tenant(), rows.tenant()
    invite(first, "a" * 64)
    _refused(rows, lambda: invite(other, "a" * 64))
    _refused(rows, lambda: invite(other, "a" * 64, register=False))
    invite(first, "b" * 64)  # another token, the same tenant: fine


def test_draft_invoices_without_a_number_do_not_collide(rows: Rows) -> None:
    tenant = rows.tenant()
    rows.make("invoices", tenant, invoiceNumber=None)
    rows.make("invoices", tenant, invoiceNumber=None)
    assert rows.count("invoices", tenantId=tenant) == 2


# (table, column, referenced table): a same-tenant composite foreign key.
SAME_TENANT_REFERENCES = [
    ("candidates", "agentId", "agents"),
    ("candidates", "brokerId", "brokers"),
    ("enrollments", "courseId", "courses"),
    ("placements", "candidateId", "candidates"),
    ("candidate_documents", "candidateId", "candidates"),
    ("payments", "placementId", "placements"),
    # Added by the last revision, after invoices exist.
    ("payments", "invoiceId", "invoices"),
]


@pytest.mark.parametrize(("table", "column", "target"), SAME_TENANT_REFERENCES)
def test_references_cannot_cross_tenants(rows: Rows, table: str, column: str, target: str) -> None:
    tenant_a, tenant_b = rows.tenant(), rows.tenant()
    own, foreign = rows.make(target, tenant_a), rows.make(target, tenant_b)
    rows.make(table, tenant_a, **{column: own})
    _refused(rows, lambda: rows.make(table, tenant_a, **{column: foreign}))


ENUM_COLUMNS = [
    ("agents", "status"),
    ("candidates", "status"),
    ("candidates", "gender"),
    ("vetting_records", "checkType"),
    ("payments", "method"),
    ("invoices", "billToType"),
    ("candidate_documents", "type"),
]


@pytest.mark.parametrize(("table", "column"), ENUM_COLUMNS)
def test_invalid_enum_values_are_rejected(rows: Rows, backend: str, table: str, column: str) -> None:
    row_id = rows.make(table, rows.tenant())
    valid = TABLES[table].c[column].type.enums[-1]

    def set_value(value: str) -> None:
        statement = sa.text(f'UPDATE {table} SET "{column}" = :value WHERE id = :id')
        rows.connection.execute(
            statement.bindparams(sa.bindparam("id", row_id, type_=sa.Uuid())), {"value": value}
        )

    set_value(valid)  # the same statement with a valid label goes through
    # PostgreSQL: not a label of the enum type; SQLite: the column's CHECK constraint.
    _refused(rows, lambda: set_value("not_a_label"), DataError if backend == "postgresql" else IntegrityError)


def test_every_enum_column_is_enforced_by_the_database(rows: Rows, backend: str) -> None:
    inspector = sa.inspect(rows.connection)
    checked = 0
    for table in metadata.sorted_tables:
        enum_columns = [column for column in table.columns if isinstance(column.type, sa.Enum)]
        checks = {check["name"]: check["sqltext"] for check in inspector.get_check_constraints(table.name)}
        reflected = {column["name"]: column["type"] for column in inspector.get_columns(table.name)}
        for column in enum_columns:
            labels = list(column.type.enums)
            if backend == "postgresql":
                assert (reflected[column.name].name, list(reflected[column.name].enums)) == (
                    column.type.name,
                    labels,
                )
            else:
                check = checks[f"{table.name}_{column.type.name}_check"]
                assert all(f"'{label}'" in check for label in labels), check
            checked += 1
    assert checked >= 21  # every enum column of the spec's tables, at least


def test_deleting_a_candidate_removes_documents_and_vetting_but_no_audit_log(rows: Rows) -> None:
    tenant, actor = rows.tenant(), rows.user()
    candidate = rows.make("candidates", tenant)
    other = rows.make("candidates", tenant)
    for owner in (candidate, candidate, other):
        rows.make("candidate_documents", tenant, candidateId=owner)
        rows.make("vetting_records", tenant, candidateId=owner)
    for action in ("create", "update", "delete"):
        rows.insert(
            "audit_logs",
            tenantId=tenant,
            actorId=actor,
            action=action,
            entityType="candidate",
            entityId=candidate,
        )

    rows.connection.execute(TABLES["candidates"].delete().where(TABLES["candidates"].c.id == candidate))
    assert rows.count("candidate_documents", candidateId=candidate) == 0
    assert rows.count("vetting_records", candidateId=candidate) == 0
    assert rows.count("candidate_documents", candidateId=other) == 1
    assert rows.count("vetting_records", candidateId=other) == 1
    assert rows.count("audit_logs", entityId=candidate) == 3

    rows.connection.execute(TABLES["users"].delete().where(TABLES["users"].c.id == actor))
    assert rows.count("audit_logs", actorId=actor) == 3
