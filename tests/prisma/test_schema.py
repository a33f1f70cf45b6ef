"""`prisma/schema.prisma`: up to date with the models, accepted by Prisma's own validator, and right.

No database needed. The validator is npm `@prisma/prisma-schema-wasm`, run by `tools/prisma-validate.mjs`
from the project's `node_modules` (`npm ci`; `make test` does it).
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import INTERVAL

from mobility.candidates.models import CandidateStatus
from mobility.core.db import NAMING_CONVENTION
from mobility.models import Base, metadata
from mobility.ops import prisma
from mobility.ops.migrations import PROJECT_ROOT

SCHEMA = PROJECT_ROOT / "prisma" / "schema.prisma"
VALIDATOR = PROJECT_ROOT / "tools" / "prisma-validate.mjs"
WASM_PACKAGE = PROJECT_ROOT / "node_modules" / "@prisma" / "prisma-schema-wasm" / "package.json"
EXPORT_HINT = "run `mobility prisma export` (or `make prisma`) and commit prisma/schema.prisma"


@pytest.fixture(scope="module")
def rendered() -> str:
    return prisma.render_schema(metadata)


def run_validator(*args: str | Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is not installed: Prisma's validator (npm @prisma/prisma-schema-wasm) needs Node 20+"
        )
    if not WASM_PACKAGE.is_file():
        pytest.fail(
            "node_modules is missing @prisma/prisma-schema-wasm: run `npm ci` at the project root (`make test` does it)"
        )
    locked = json.loads((PROJECT_ROOT / "package-lock.json").read_text())
    wanted = locked["packages"]["node_modules/@prisma/prisma-schema-wasm"]["version"]
    installed = json.loads(WASM_PACKAGE.read_text())["version"]
    if installed != wanted:
        pytest.fail(
            f"node_modules has @prisma/prisma-schema-wasm {installed}, the lock file {wanted}: run `npm ci`"
        )
    return subprocess.run(
        [node, str(VALIDATOR), *map(str, args)], capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT
    )


def block(schema: str, kind: str, name: str) -> list[str]:
    """The lines of `model Name { ... }` (or enum), whitespace collapsed."""
    match = re.search(rf"^{kind} {name} {{\n(.*?)^}}", schema, re.S | re.M)
    assert match, f"{kind} {name} not in the schema"
    return [" ".join(line.split()) for line in match.group(1).splitlines() if line.strip()]


def field(schema: str, model: str, name: str) -> str:
    lines = [line for line in block(schema, "model", model) if line.split(" ", 1)[0] == name]
    assert len(lines) == 1, f"{model}.{name}: {lines}"
    return lines[0]


# ----------------------------------------------------------------------------------------------------
# The committed file


def test_committed_schema_is_up_to_date(rendered: str) -> None:
    if not SCHEMA.is_file():
        pytest.fail(f"prisma/schema.prisma is missing: {EXPORT_HINT}")
    committed = SCHEMA.read_text(encoding="utf-8")
    if committed != rendered:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                rendered.splitlines(keepends=True),
                "prisma/schema.prisma (committed)",
                "render_schema(metadata)",
                n=1,
            )
        )
        pytest.fail(f"prisma/schema.prisma is out of date with the models: {EXPORT_HINT}.\n{diff[:6000]}")


def test_prisma_accepts_the_committed_schema_and_its_format() -> None:
    result = run_validator("--strict", "--check-format", SCHEMA)
    assert result.returncode == 0, f"Prisma's validator rejects prisma/schema.prisma:\n{result.stderr}"


# ----------------------------------------------------------------------------------------------------
# The check can fail


def _break_agent_unique(schema: str) -> str:
    # Composite relations reference (tenantId, id) of Agent, its primary key: without it they are invalid.
    agent = re.search(r"^model Agent \{.*?^\}", schema, re.S | re.M)
    assert agent
    broken = agent.group(0).replace("  @@id([tenantId, id])\n", "")
    assert broken != agent.group(0)
    return schema.replace(agent.group(0), broken)


BROKEN = {
    "unknown type": lambda s: s + "\nmodel Broken {\n  id    String @id\n  owner Nobody\n}\n",
    "syntax": lambda s: s.rstrip().removesuffix("}"),
    "references not unique": _break_agent_unique,
    "unknown enum value as default": lambda s: s.replace("@default(registered)", "@default(hired)"),
}


@pytest.mark.parametrize("breakage", sorted(BROKEN))
def test_prisma_rejects_a_broken_schema(breakage: str, rendered: str, tmp_path: Path) -> None:
    path = tmp_path / "schema.prisma"
    path.write_text(BROKEN[breakage](rendered), encoding="utf-8")
    result = run_validator(path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "invalid Prisma schema" in result.stderr
    assert "error" in result.stderr.lower()


def test_the_format_check_fails_on_an_unformatted_schema(rendered: str, tmp_path: Path) -> None:
    path = tmp_path / "schema.prisma"
    path.write_text(re.sub(r"(?m)^(  \w+) +", r"\1 ", rendered), encoding="utf-8")
    assert run_validator(path).returncode == 0, "still valid, only not aligned"
    result = run_validator("--check-format", path)
    assert result.returncode == 1
    assert "not formatted as `prisma format` would" in result.stderr


def test_the_validator_says_how_to_install_itself(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed")
    script = tmp_path / "prisma-validate.mjs"  # away from the project's node_modules
    shutil.copy(VALIDATOR, script)
    result = subprocess.run([node, str(script), str(SCHEMA)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "npm ci" in result.stderr


# ----------------------------------------------------------------------------------------------------
# What the rendering says


def test_one_model_per_table_named_like_the_orm_class(rendered: str) -> None:
    for mapper in Base.registry.mappers:
        table = mapper.local_table
        assert prisma.model_name(table.name) == mapper.class_.__name__
        assert f'@@map("{table.name}")' in block(rendered, "model", mapper.class_.__name__)
    assert len(re.findall(r"^model ", rendered, re.M)) == len(metadata.tables)


def test_candidate_model(rendered: str) -> None:
    lines = block(rendered, "model", "Candidate")
    assert '@@map("candidates")' in lines
    assert "@@unique([tenantId, referenceNumber])" in lines
    # The primary key (tenantId, id) (0015, for Citus), which the same-tenant relations reference.
    assert "@@id([tenantId, id])" in lines
    assert "@@unique([tenantId, id])" not in lines
    assert "@@index([tenantId, lastName, firstName])" in lines
    assert field(rendered, "Candidate", "id") == "id String @default(uuid(7)) @db.Uuid"
    assert field(rendered, "Candidate", "agent") == (
        'agent Agent? @relation("Candidate_agent", fields: [tenantId, agentId], references: [tenantId, id], '
        "onDelete: Restrict, onUpdate: NoAction)"
    )
    assert field(rendered, "Candidate", "status") == "status CandidateStatus @default(registered)"
    # 48 since 0018: a 32-character tenant code, the year and the sequence number.
    assert field(rendered, "Candidate", "referenceNumber") == "referenceNumber String @db.VarChar(48)"
    # The trigram index of the name search (per tenant since 0022, GiST since 0023) is left to the database, noted on the model.
    assert (
        "/// INDEX candidates_tenantId_searchName_idx: USING gist (tenantId, searchName gist_trgm_ops(siglen=32)) "
        "INCLUDE (searchName, mergedIntoId, id)" in rendered
    )
    # The list's order (0022).
    assert (
        "@@index([tenantId, status, createdAt, id])" in lines
        and "@@index([tenantId, createdAt, id])" in lines
    )
    assert field(rendered, "Candidate", "dateOfBirth") == "dateOfBirth DateTime? @db.Date"
    assert field(rendered, "Candidate", "skills") == 'skills Json @default("[]")'
    # The other side of the relations.
    assert field(rendered, "Agent", "candidates") == 'candidates Candidate[] @relation("Candidate_agent")'
    assert field(rendered, "User", "candidates") == 'candidates Candidate[] @relation("Candidate_user")'
    assert field(rendered, "User", "candidatesCreatedBy") == (
        'candidatesCreatedBy Candidate[] @relation("Candidate_createdByUser")'
    )


def test_candidate_status_enum(rendered: str) -> None:
    assert block(rendered, "enum", "CandidateStatus") == [status.value for status in CandidateStatus]


def test_every_enum_of_the_models_is_rendered(rendered: str) -> None:
    from sqlalchemy import Enum

    for table in metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, Enum):
                assert block(rendered, "enum", column.type.name) == list(column.type.enums)


def test_documents_go_with_their_candidate(rendered: str) -> None:
    assert "onDelete: Cascade" in field(rendered, "CandidateDocument", "candidate")
    assert field(rendered, "Candidate", "candidateDocuments") == (
        'candidateDocuments CandidateDocument[] @relation("CandidateDocument_candidate")'
    )


def test_audit_logs_hang_off_nothing_but_their_tenant(rendered: str) -> None:
    relations = [line for line in block(rendered, "model", "AuditLog") if "fields:" in line]
    assert relations == [
        'tenant Tenant @relation("AuditLog_tenant", fields: [tenantId], references: [id], '
        "onDelete: Restrict, onUpdate: NoAction)"
    ]


def test_global_keys_are_unique_in_their_own_tables_and_referenced_with_the_tenant(rendered: str) -> None:
    """A verification code (an invitation token) is unique across the installation in its key table,
    per tenant on the certificate, which refers to the key's row (0015)."""
    assert "@@unique([tenantId, verificationCode])" in block(rendered, "model", "Certificate")
    assert field(rendered, "CertificateCode", "verificationCode") == (
        "verificationCode String @unique @db.VarChar(64)"
    )
    assert field(rendered, "Certificate", "certificateCode") == (
        'certificateCode CertificateCode @relation("Certificate_certificateCode", '
        "fields: [tenantId, verificationCode], references: [tenantId, verificationCode], "
        "onDelete: Restrict, onUpdate: NoAction)"
    )
    assert field(rendered, "CertificateCode", "certificate") == (
        'certificate Certificate? @relation("Certificate_certificateCode")'
    )
    assert field(rendered, "InvitationToken", "tokenHash") == "tokenHash String @unique"
    assert field(rendered, "UserInvitation", "invitationToken") == (
        'invitationToken InvitationToken? @relation("UserInvitation_invitationToken", '
        "fields: [tenantId, tokenHash], references: [tenantId, tokenHash], onDelete: Restrict, onUpdate: NoAction)"
    )


def test_every_foreign_key_is_a_relation_with_a_unique_name(rendered: str) -> None:
    foreign_keys = sum(
        1 for table in metadata.tables.values() for c in table.foreign_key_constraints if c is not None
    )
    names = re.findall(r'@relation\("([^"]+)", fields:', rendered)
    assert len(names) == foreign_keys
    assert len(set(names)) == len(names)
    for name in names:  # and each has exactly one back-relation field
        assert len(re.findall(rf'@relation\("{name}"\)', rendered)) == 1, name


def test_timestamps_legacy_and_new(rendered: str) -> None:
    assert field(rendered, "User", "createdAt") == "createdAt DateTime @default(now())"  # timestamp(3)
    assert field(rendered, "User", "updatedAt") == "updatedAt DateTime @updatedAt"
    assert field(rendered, "Session", "expiresAt") == "expiresAt DateTime"
    assert (
        field(rendered, "Candidate", "createdAt") == "createdAt DateTime @default(now()) @db.Timestamptz(6)"
    )
    assert field(rendered, "Candidate", "updatedAt") == (
        "updatedAt DateTime @default(now()) @updatedAt @db.Timestamptz(6)"
    )


def test_scalars_and_defaults(rendered: str) -> None:
    assert field(rendered, "Payment", "amount") == "amount Decimal @db.Decimal(12, 2)"
    assert field(rendered, "Invoice", "total") == "total Decimal @default(0) @db.Decimal(12, 2)"
    assert field(rendered, "CandidateDocument", "sizeBytes") == "sizeBytes BigInt"
    assert field(rendered, "Notification", "attempts") == "attempts Int @default(0)"
    assert field(rendered, "User", "authProvider") == 'authProvider String @default("local")'
    assert field(rendered, "User", "twoFactorEnabled") == "twoFactorEnabled Boolean @default(false)"
    assert field(rendered, "Tenant", "isActive") == "isActive Boolean @default(true)"
    assert field(rendered, "Tenant", "code") == "code String @unique @db.VarChar(32)"
    assert field(rendered, "Certificate", "verificationCode") == "verificationCode String @db.VarChar(64)"
    assert field(rendered, "Agent", "status") == "status PartnerStatus @default(active)"


def test_check_constraints_are_noted(rendered: str) -> None:
    assert '/// CHECK payments_amount_positive_check: "amount" > 0\nmodel Payment {' in rendered


def test_datasource_and_generator(rendered: str) -> None:
    assert block(rendered, "datasource", "db") == ['provider = "postgresql"']
    assert block(rendered, "generator", "client")[0] == 'provider = "prisma-client"'


def test_rendering_does_not_depend_on_table_order(rendered: str) -> None:
    shuffled = MetaData(naming_convention=NAMING_CONVENTION)
    for table in reversed(list(metadata.tables.values())):
        table.to_metadata(shuffled)
    assert prisma.render_schema(shuffled) == rendered


def test_export_writes_the_schema(rendered: str, tmp_path: Path) -> None:
    path = prisma.export(tmp_path / "prisma" / "schema.prisma")
    assert path == tmp_path / "prisma" / "schema.prisma"
    assert path.read_text(encoding="utf-8") == rendered
    assert prisma.is_up_to_date(path)
    path.write_text(rendered.replace("@@map", "@@map ", 1), encoding="utf-8")
    assert not prisma.is_up_to_date(path)
    assert prisma.default_path() == SCHEMA


# ----------------------------------------------------------------------------------------------------
# Cases the application's models do not have (yet)


def _edge_metadata() -> MetaData:
    m = MetaData(naming_convention=NAMING_CONVENTION)
    Table(
        "owners",
        m,
        Column("id", Uuid, primary_key=True),
        Column("handle", String(40), nullable=False),
        Column("score", Numeric(6, 3), nullable=False, server_default="1.5"),
        Column("note", Text, nullable=False, server_default=text("'it''s'")),
        Column("token", Text, nullable=False, server_default=text("md5(random()::text)")),
        UniqueConstraint("handle", name="owners_handle_unique"),  # not Prisma's default name
        PrimaryKeyConstraint("id", name="owners_primary"),
    )
    Table(
        "profiles",
        m,
        Column("id", Uuid, primary_key=True, default=uuid.uuid4),
        Column("ownerId", Uuid, ForeignKey("owners.id", ondelete="CASCADE"), nullable=False, unique=True),
    )
    Table(
        "memberships",
        m,
        Column("ownerId", Uuid, nullable=False),
        Column("seq", Integer, nullable=False),
        PrimaryKeyConstraint("ownerId", "seq"),
        ForeignKeyConstraint(["ownerId"], ["owners.id"], name="membership_owner"),
        Index("memberships_by_seq", "seq"),
    )
    return m


def test_edge_cases_render_valid_prisma(tmp_path: Path) -> None:
    schema = prisma.render_schema(_edge_metadata())
    assert field(schema, "Owner", "id") == 'id String @id(map: "owners_primary") @db.Uuid'
    assert (
        field(schema, "Owner", "handle")
        == 'handle String @unique(map: "owners_handle_unique") @db.VarChar(40)'
    )
    assert field(schema, "Owner", "score") == "score Decimal @default(1.5) @db.Decimal(6, 3)"
    assert field(schema, "Owner", "note") == """note String @default("it's")"""
    assert field(schema, "Owner", "token") == 'token String @default(dbgenerated("md5(random()::text)"))'
    assert field(schema, "Profile", "id") == "id String @id @default(uuid()) @db.Uuid"
    # One-to-one: the child's key is unique, so the other side is a single optional field.
    assert field(schema, "Owner", "profile") == 'profile Profile? @relation("Profile_owner")'
    assert field(schema, "Owner", "memberships") == 'memberships Membership[] @relation("Membership_owner")'
    assert "@@id([ownerId, seq])" in block(schema, "model", "Membership")
    assert '@@index([seq], map: "memberships_by_seq")' in block(schema, "model", "Membership")
    assert field(schema, "Membership", "owner") == (
        'owner Owner @relation("Membership_owner", fields: [ownerId], references: [id], '
        'onDelete: NoAction, onUpdate: NoAction, map: "membership_owner")'
    )
    path = tmp_path / "schema.prisma"
    path.write_text(schema, encoding="utf-8")
    result = run_validator("--strict", "--check-format", path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (
            lambda m: Table("spans", m, Column("id", Uuid, primary_key=True), Column("length", INTERVAL)),
            "no Prisma type for PostgreSQL type INTERVAL",
        ),
        (
            lambda m: Table(
                "partial",
                m,
                Column("id", Uuid, primary_key=True),
                Column("name", Text),
                Index("partial_name_idx", "name", postgresql_where=text("name IS NOT NULL")),
            ),
            "index options .*where",
        ),
        (lambda m: Table("keyless", m, Column("name", Text)), "a table without a primary key"),
    ],
    ids=["unknown type", "partial index", "no primary key"],
)
def test_what_prisma_cannot_express_is_an_error_not_a_wrong_schema(extra, error: str) -> None:
    m = MetaData(naming_convention=NAMING_CONVENTION)
    extra(m)
    with pytest.raises(prisma.PrismaRenderError, match=error):
        prisma.render_schema(m)


def test_a_plain_expression_index_is_left_to_the_database_with_a_comment() -> None:
    m = MetaData(naming_convention=NAMING_CONVENTION)
    Table("lowered", m, Column("id", Uuid, primary_key=True), Column("name", Text))
    Index("lowered_name_idx", func.lower(m.tables["lowered"].c.name))
    rendered = prisma.render_schema(m)
    assert "/// INDEX lowered_name_idx: (lower(lowered.name))" in rendered
    assert "@@index" not in rendered


def test_a_unique_expression_index_is_left_to_the_database_with_a_comment() -> None:
    """Prisma cannot express it (as `prisma db pull`, it is left to the database, which enforces it: a
    Prisma client writing a twin gets the database's unique violation); never a plain `@unique`, which
    would claim the column itself unique."""
    m = MetaData(naming_convention=NAMING_CONVENTION)
    Table("lowered", m, Column("id", Uuid, primary_key=True), Column("name", Text))
    Index("lowered_name_key", func.lower(m.tables["lowered"].c.name), unique=True)
    rendered = prisma.render_schema(m)
    assert "/// UNIQUE INDEX lowered_name_key: (lower(lowered.name))" in rendered
    assert "@unique" not in rendered and "@@index" not in rendered
