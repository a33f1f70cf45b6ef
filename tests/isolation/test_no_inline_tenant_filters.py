"""STYLE rule 5: the tenant filter lives in the data layer, once; domain code never filters by tenant inline.

An inline `Model.tenant_id == ...` in a service is either redundant (the ScopedSession already adds it)
or a sign that code works around the scope. Only the files listed below may compare tenant ids, each
for the reason given; a new file doing it fails this test until it is fixed or argued into the list.
"""

from __future__ import annotations

import re
from pathlib import Path

import mobility

SOURCE = Path(mobility.__file__).resolve().parent

ALLOWED = {
    # The scope itself: stamping and refusing writes for another tenant.
    "core/tenancy.py": "applies the scope",
    # The row rules: the one place the tenant filter is written.
    "authz/rules.py": "defines the row filters",
    # Authentication runs before a tenant is known (system scope): it resolves the session's tenant.
    "auth/authentication.py": "resolves the tenant of a session",
    "auth/login.py": "resolves the tenant a login or a tenant switch acts in",
    # A user's memberships and sessions span tenants: joined to their tenant, ended per tenant.
    "auth/caller.py": "joins the caller's memberships to their tenants",
    "auth/sessions.py": "ends a user's sessions acting in one tenant (a suspended membership)",
    # Seeding works across tenants with the system scope.
    "ops/seed.py": "creates tenants and their sample data",
    # A global key's tenant routes the lookup of its row (0015, docs/scaling.md).
    "core/global_keys.py": "finds a row by a global key in the key's tenant",
    # Operator tasks across tenants (system scope, Core statements): a membership is named by its
    # primary key, (tenantId, id).
    "users/accounts.py": "names a membership by its primary key (tenantId, id) in a merge",
    # The duplicate rules (issue 12) hold in the whole tenant, beyond a partner's row rule: the look-up
    # runs under across_tenants, narrowed to the caller's tenant by hand.
    "candidates/service.py": "finds a duplicate candidate anywhere in the caller's tenant",
    # The worker drains the outboxes of every tenant (system scope, 0016): a claimed row, and the
    # endpoint it goes to, are named by their primary key (tenantId, id).
    "worker/queue.py": "claims and records outbox rows by their primary key (tenantId, id)",
    "notifications/delivery.py": "blanks a sent message's secrets by its primary key (tenantId, id)",
    "webhooks/delivery.py": "reads a delivery's endpoint by its primary key (tenantId, id)",
}

# `X.tenant_id == y`, `y == X.tenant_id`, `"tenantId" ==`, `c.tenantId ==`, `filter_by(tenant_id=...)`
INLINE_FILTER = re.compile(
    r"""
      \btenant_id\s*==                       # x.tenant_id == ...
    | ==\s*[\w.\[\]"']*\btenant_id\b          # ... == x.tenant_id
    | ["']?\btenantId\b["']?\]?\s*==          # "tenantId" == / c.tenantId == / c["tenantId"] ==
    | ==\s*[\w.\[\]]*["']?\btenantId\b        # ... == "tenantId"
    | filter_by\([^)]*\btenant_id\s*=(?!=)   # filter_by(tenant_id=...)
    """,
    re.VERBOSE,
)


def _code(line: str) -> str:
    """The line without a trailing comment (good enough for this codebase's style)."""
    return line.split("#", 1)[0]


def violations() -> list[str]:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE).as_posix()
        if relative in ALLOWED:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if INLINE_FILTER.search(_code(line)):
                found.append(f"src/mobility/{relative}:{number}: {line.strip()}")
    return found


def test_no_inline_tenant_filters_in_domain_code() -> None:
    found = violations()
    assert not found, (
        "Inline tenant filters outside the data layer (STYLE rule 5; the ScopedSession filters every "
        "query by the scope's tenant, use it):\n" + "\n".join(found)
    )


def test_the_allowed_files_exist() -> None:
    missing = [name for name in ALLOWED if not (SOURCE / name).is_file()]
    assert not missing, f"stale entries in the allow list: {missing}"


def test_the_pattern_catches_the_usual_forms() -> None:
    for line in [
        "select(Candidate).where(Candidate.tenant_id == scope.tenant_id)",
        "stmt.where(scope.tenant_id == Candidate.tenant_id)",
        "stmt.where(tenant_id == x)",
        'table.c["tenantId"] == tenant',
        "table.c.tenantId == tenant",
        "query.filter_by(tenant_id=tenant.id)",
    ]:
        assert INLINE_FILTER.search(line), line
    for line in [
        "Candidate(tenant_id=tenant.id, name='x')",
        "scope.tenant_id is None",
        'mapped_column("tenantId", Uuid)',
    ]:
        assert not INLINE_FILTER.search(line), line
