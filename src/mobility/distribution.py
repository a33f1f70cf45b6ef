"""Where every table of the database would live on Citus: the one place that says it (docs/scaling.md).

Past one PostgreSQL, Citus distributes the same schema by tenant. Each table is one of:

- DISTRIBUTED: sharded by `"tenantId"` (uuid, NOT NULL), all co-located, so that one tenant's rows of
  every table sit on the same node and a request of one tenant is answered by one node;
- REFERENCE: copied to every node (small, read everywhere, or referred to by distributed tables);
- LOCAL: kept on the coordinator only (looked up without a tenant, or installation bookkeeping).

tests/distribution/test_citus_rules.py reads the migrated PostgreSQL catalogue (not the models) and
applies Citus's rules to it: every key of a distributed table includes `tenantId`, foreign keys between
distributed tables include it on both sides, nothing refers from a reference or local table to a
distributed one, ... A table that is not listed here fails that test, and so does a listed table that
no longer exists. Adding a table is part of the recipe (docs/architecture.md): classify it here.

Nothing imports this at run time: it is read by the tests, the docs and `mobility.ops.distribution`
(which prints the statements that would distribute a database).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# The column every distributed table is sharded by.
DISTRIBUTION_COLUMN = "tenantId"


class Placement(enum.StrEnum):
    DISTRIBUTED = "distributed"
    REFERENCE = "reference"
    LOCAL = "local"


@dataclass(frozen=True)
class TablePlacement:
    placement: Placement
    why: str


def _distributed(why: str) -> TablePlacement:
    return TablePlacement(Placement.DISTRIBUTED, why)


def _reference(why: str) -> TablePlacement:
    return TablePlacement(Placement.REFERENCE, why)


def _local(why: str) -> TablePlacement:
    return TablePlacement(Placement.LOCAL, why)


TABLES: dict[str, TablePlacement] = {
    # --- distributed by tenantId, co-located -------------------------------------------------------
    "agents": _distributed("a tenant's partner agents"),
    "brokers": _distributed("a tenant's partner brokers"),
    "candidates": _distributed("a tenant's candidates: the biggest domain table with its children"),
    "candidate_reference_counters": _distributed(
        "a tenant's yearly counter of candidate reference numbers, locked by the registering transaction"
    ),
    "candidate_documents": _distributed("a candidate's documents, with the candidate"),
    "courses": _distributed("a tenant's courses"),
    "enrollments": _distributed("enrollments in a tenant's courses"),
    "attendance_records": _distributed("attendance of an enrollment, with it"),
    "assessments": _distributed("assessments of an enrollment, with it"),
    "certificates": _distributed(
        "a tenant's certificates; the public lookup by verification code goes through certificate_codes"
    ),
    "vetting_records": _distributed("a candidate's checks, with the candidate"),
    "placements": _distributed("a tenant's placements"),
    "payments": _distributed("a tenant's payments"),
    "invoices": _distributed("a tenant's invoices (gapless numbers per tenant: one shard per count)"),
    "notifications": _distributed(
        "a tenant's queue; the worker's scan across tenants runs on every shard in parallel"
    ),
    "notification_preferences": _distributed(
        "a user's e-mail choices in a tenant, read when the tenant's notifications are delivered"
    ),
    "webhook_endpoints": _distributed("a tenant's webhook endpoints and their signing secrets"),
    "webhook_deliveries": _distributed(
        "a tenant's delivery log (an outbox, like notifications), with its endpoint (tenantId, endpointId)"
    ),
    "settings": _distributed("a tenant's settings, read with its other rows"),
    "audit_logs": _distributed(
        "the tenant's trail, written in the same transaction (and shard) as the change it records; "
        "installation-level entries, without a tenant, are in system_audit_logs"
    ),
    "user_tenants": _distributed(
        "memberships, with the tenant's rows: the session lookup reads one by (userId, tenantId); "
        "a user's memberships across tenants (/me) is a query on every shard, and a rare one"
    ),
    "user_invitations": _distributed(
        "a tenant's invitations; acceptance by token goes through invitation_tokens, an invitee's "
        "list across tenants (/me/invitations) is a query on every shard"
    ),
    # --- reference: copied to every node --------------------------------------------------------------
    "tenants": _reference("every distributed table refers to it; a few rows, read on every request"),
    "roles": _reference(
        "the global system roles and the tenants' custom roles: a few rows, referred to by memberships "
        "and invitations, read on every request"
    ),
    "users": _reference(
        "accounts are installation-wide (one login, many tenants): every tenant table refers to them "
        "(createdBy, trainerId, ...), and logins find one by e-mail without a tenant, under a unique "
        "index only one place can enforce. Writes (a login's lastLoginAt, the last TOTP step) reach "
        "every node: fine at login rates. Kept local instead, every foreign key to users would go"
    ),
    "certificate_codes": _reference(
        "global key: the public verification looks a code up without a tenant, and the code must be "
        "unique across tenants; certificates refer to it (tenantId, verificationCode)"
    ),
    "invitation_tokens": _reference(
        "global key: an invitation is accepted by its token, without a tenant, and tokens must be "
        "unique across tenants; invitations refer to it (tenantId, tokenHash)"
    ),
    # --- local: on the coordinator only ---------------------------------------------------------------
    "sessions": _local(
        "looked up by token hash on every request, before the tenant is known, and touched often "
        "(lastSeenAt): one coordinator-local index probe; refers to users and tenants (reference)"
    ),
    "login_throttles": _local("failed-login counters per account and address: no tenant, hot writes"),
    "activity_logs": _local("sign-in activity per account: no tenant"),
    "password_resets": _local(
        "forgotten-password links per account (accounts are installation-wide): looked up by token hash "
        "without a tenant, rare writes; refers to users (reference)"
    ),
    "job_leases": _local("the periodic jobs' leases: installation bookkeeping, no tenant"),
    "system_audit_logs": _local(
        "the trail of installation-level changes, made under the system scope without a tenant "
        "(the seed's global roles, `mobility users merge`): rare"
    ),
    "alembic_version": _local("Alembic's bookkeeping: the schema's revision"),
}

# What must still change on these tables before they can join Citus's metadata, each with why. Citus
# refuses a row-level-security policy with a subquery on any table it manages (distributed, reference,
# or a local table with foreign keys to reference tables); these policies look at memberships. The
# test checks that every entry is still needed and that no other table needs one; a distributed
# table may never have one.
BEFORE_CITUS: dict[str, str] = {
    "users": "policy tenant_isolation: `EXISTS (membership in the current tenant)`",
    "roles": "policy tenant_isolation: `EXISTS (a membership of the actor holding the role)`",
    "sessions": "policy tenant_isolation: `EXISTS (membership of the session's user in the tenant)`",
}


def tables_of(placement: Placement) -> list[str]:
    return sorted(name for name, table in TABLES.items() if table.placement is placement)
