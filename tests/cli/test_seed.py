"""`mobility seed`: the spec's seeding plan, idempotent, with an admin whose password is never stored or
shown twice."""

from __future__ import annotations

import json
import re

from mobility.core.security import verify_password
from mobility.ops.seed import SYSTEM_ROLES
from tests.cli.support import Cli, assert_ok, assert_one_line_error

SEEDED_TABLES = (
    "tenants",
    "roles",
    "users",
    "user_tenants",
    "agents",
    "brokers",
    "courses",
    "candidates",
    "enrollments",
    "vetting_records",
    "placements",
    "payments",
    "audit_logs",
)
PASSWORD_LINE = re.compile(r"admin password \(generated, shown only this once\): (\S+)")


def _counts(cli: Cli) -> dict[str, int]:
    return {table: cli.query(f"SELECT COUNT(*) FROM {table}")[0][0] for table in SEEDED_TABLES}


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def test_seed_is_idempotent_and_shows_a_generated_password_once(cli: Cli) -> None:
    assert_ok(cli("db", "upgrade"))

    first = assert_ok(cli("seed"))
    passwords = PASSWORD_LINE.findall(first.stdout)
    assert len(passwords) == 1, first.stdout
    password = passwords[0]
    assert len(password) >= 20
    counts = _counts(cli)
    assert counts["tenants"] == 1 and counts["roles"] == 7 and counts["user_tenants"] >= 1
    for table in SEEDED_TABLES:
        assert counts[table] >= 1, table

    second = assert_ok(cli("seed"))
    assert "0 created" in second.stdout
    assert "password" not in second.stdout.replace("password unchanged", "")
    assert _counts(cli) == counts

    # The admin: stored as an argon2id hash that verifies, the clear password nowhere in the database.
    [(admin_id, password_hash, role_id)] = cli.query(
        'SELECT id, "passwordHash", "roleId" FROM users WHERE email = :email', email="admin@wti.example"
    )
    assert password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password(password_hash, password)
    assert not verify_password(password_hash, password + "x")
    for table in ("users", "audit_logs"):
        rows = cli.query(f"SELECT * FROM {table}")
        assert rows, table
        for row in rows:
            assert password not in " ".join(map(str, row))

    # Tenant, roles, membership as the spec's seeding plan says.
    [(tenant_id, name, branding, contact)] = cli.query(
        "SELECT id, name, branding, \"contactInfo\" FROM tenants WHERE code = 'WTI'"
    )
    assert name == "Waterfront Training Institute"
    assert set(_json(branding)) == {"logoUrl", "colorHex"} and _json(contact)["email"]
    roles = {row[0]: row[1:] for row in cli.query('SELECT name, "systemRole", "tenantId", id FROM roles')}
    assert set(roles) == {name for name, _ in SYSTEM_ROLES}
    assert all(bool(system) and tenant is None for system, tenant, _ in roles.values())
    # Global role System Admin (runs the installation); Admin of WTI through the membership.
    assert role_id == roles["System Admin"][2]
    [(membership_role, primary)] = cli.query(
        'SELECT "roleId", "isPrimary" FROM user_tenants WHERE "userId" = :user AND "tenantId" = :tenant',
        user=admin_id,
        tenant=tenant_id,
    )
    assert membership_role == roles["Admin"][2] and bool(primary)

    # The sample records hang together and were made by the admin.
    [(agent_id, terms)] = cli.query('SELECT id, "paymentTerms" FROM agents')
    [(broker_id,)] = cli.query("SELECT id FROM brokers")
    assert _json(terms)["currency"]
    [(candidate_id, cand_agent, cand_broker, created_by)] = cli.query(
        'SELECT id, "agentId", "brokerId", "createdBy" FROM candidates'
    )
    assert (cand_agent, cand_broker, created_by) == (agent_id, broker_id, admin_id)
    [(course_id,)] = cli.query("SELECT id FROM courses")
    assert cli.query(
        'SELECT 1 FROM enrollments WHERE "candidateId" = :c AND "courseId" = :k', c=candidate_id, k=course_id
    )
    assert cli.query('SELECT 1 FROM vetting_records WHERE "candidateId" = :c', c=candidate_id)
    [(agent_commission, broker_commission)] = cli.query(
        'SELECT "agentCommission", "brokerCommission" FROM placements WHERE "candidateId" = :c AND "agentId" = :a',
        c=candidate_id,
        a=agent_id,
    )
    assert agent_commission > 0 and broker_commission > 0
    assert cli.query('SELECT 1 FROM payments WHERE "candidateId" = :c', c=candidate_id)

    # A second admin from the environment: its password is used, not generated, and not printed.
    third = assert_ok(cli("seed", admin_email="Second@WTI.example", admin_password="correct horse battery"))
    assert "2 created" in third.stdout and "correct horse" not in third.stdout
    assert not PASSWORD_LINE.search(third.stdout)
    [(second_hash,)] = cli.query("SELECT \"passwordHash\" FROM users WHERE email = 'second@wti.example'")
    assert verify_password(second_hash, "correct horse battery")


def test_seed_needs_the_database_at_head(cli: Cli) -> None:
    assert_ok(cli("db", "upgrade", "--to", "0003"))
    assert_one_line_error(cli("seed"), "not at head", "mobility db upgrade")
    assert cli.query("SELECT COUNT(*) FROM roles")[0][0] == 0


def test_seed_refuses_a_common_admin_password(cli: Cli) -> None:
    """The operator's choice is held to the rules of every new password (core/security.py)."""
    assert_ok(cli("db", "upgrade"))
    assert_one_line_error(
        cli("seed", admin_password="qwertyuiop"), "MOBILITY_ADMIN_PASSWORD", "too easy to guess"
    )
    assert cli.query("SELECT 1 FROM users") == []  # nothing was written
    seeded = assert_ok(cli("seed", admin_password=None))
    assert "admin password (generated" in seeded.stdout  # the generated one passes the same rules
