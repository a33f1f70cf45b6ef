"""The permission matrix: which system role may do which action on which resource.

One table in code, rendered to docs/permissions.md (`mobility docs permissions`) and tested cell by cell
through the API. Row-level rules on top of it (a Candidate sees only their own record, an Agent only
their own candidates, a Trainer only their courses) live in `mobility.authz.rules`.
Custom roles of a tenant carry their own list of permissions in `roles.permissions`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Resource(enum.StrEnum):
    tenants = "tenants"
    # An account is installation-wide (name, status): shared by every tenant it belongs to.
    accounts = "accounts"
    users = "users"
    roles = "roles"
    audit_logs = "audit_logs"
    settings = "settings"
    candidates = "candidates"
    candidate_documents = "candidate_documents"
    agents = "agents"
    brokers = "brokers"
    courses = "courses"
    enrollments = "enrollments"
    attendance = "attendance"
    assessments = "assessments"
    certificates = "certificates"
    vetting = "vetting"
    placements = "placements"
    payments = "payments"
    invoices = "invoices"
    notifications = "notifications"
    # Endpoints that receive the tenant's events, their secrets and delivery log.
    webhooks = "webhooks"


class Action(enum.StrEnum):
    read = "read"  # get one and list
    create = "create"
    update = "update"
    delete = "delete"


def permission(resource: Resource, action: Action) -> str:
    return f"{resource.value}:{action.value}"


# The trail is written by the data layer, never through an endpoint: it can only be read.
_ACTIONS_OF: dict[Resource, tuple[Action, ...]] = {
    Resource.audit_logs: (Action.read,),
    # Accounts are read as the members of a tenant (users:read); they are changed, never made or
    # deleted, through this resource.
    Resource.accounts: (Action.update,),
}

ALL_PERMISSIONS: tuple[str, ...] = tuple(
    permission(resource, action)
    for resource in Resource
    for action in _ACTIONS_OF.get(resource, tuple(Action))
)


class SystemRole(enum.StrEnum):
    system_admin = "System Admin"
    admin = "Admin"
    trainer = "Trainer"
    candidate = "Candidate"
    agent = "Agent"
    broker = "Broker"
    recruiter = "Recruiter"


R, C, U, D = Action.read, Action.create, Action.update, Action.delete
CRUD = (R, C, U, D)


def _grant(*pairs: tuple[Resource, Iterable[Action]]) -> frozenset[str]:
    granted = frozenset(permission(resource, action) for resource, actions in pairs for action in actions)
    unknown = granted.difference(ALL_PERMISSIONS)
    assert not unknown, f"not permissions: {sorted(unknown)}"
    return granted


_TENANT_ADMIN = _grant(
    (Resource.tenants, (R,)),
    *(
        (resource, CRUD)
        for resource in Resource
        if resource not in (Resource.tenants, Resource.accounts, Resource.audit_logs)
    ),
    (Resource.audit_logs, (R,)),
)

MATRIX: dict[SystemRole, frozenset[str]] = {
    # Acts in any tenant (one at a time), and manages the tenants themselves.
    # Changes accounts, which every tenant of theirs shares (a tenant's Admin locks only its own door).
    SystemRole.system_admin: _TENANT_ADMIN | _grant((Resource.tenants, (C, U, D)), (Resource.accounts, (U,))),
    SystemRole.admin: _TENANT_ADMIN,
    # Only the courses they teach, and those courses' enrollments (row rules).
    SystemRole.trainer: _grant(
        (Resource.courses, (R, U)),
        (Resource.enrollments, (R, U)),
        (Resource.attendance, CRUD),
        (Resource.assessments, CRUD),
        (Resource.certificates, (R,)),
        (Resource.candidates, (R,)),
        (Resource.notifications, (R, U)),
    ),
    # Only their own record and what hangs off it (row rules).
    # They change their own contacts, address and emergency contact (issue 12; the service's shape).
    SystemRole.candidate: _grant(
        (Resource.candidates, (R, U)),
        (Resource.candidate_documents, (R, C)),
        (Resource.enrollments, (R,)),
        (Resource.attendance, (R,)),
        (Resource.assessments, (R,)),
        (Resource.certificates, (R,)),
        (Resource.vetting, (R,)),
        (Resource.placements, (R,)),
        (Resource.payments, (R,)),
        (Resource.invoices, (R,)),
        (Resource.notifications, (R, U)),
    ),
    # Only the candidates, placements and payments linked to their partner record (row rules); their
    # own partner record, of which they change only the contact details (agents/service.py, issue 12).
    SystemRole.agent: _grant(
        (Resource.agents, (R, U)),
        (Resource.candidates, (R, C, U)),
        (Resource.candidate_documents, (R, C)),
        (Resource.placements, (R,)),
        (Resource.payments, (R,)),
        (Resource.notifications, (R, U)),
    ),
    # Issue 12: an Agent or Broker registers candidates (linked to its record) and edits its own.
    SystemRole.broker: _grant(
        (Resource.brokers, (R, U)),
        (Resource.candidates, (R, C, U)),
        # Issue 12: partners upload their candidates' documents (never verify them).
        (Resource.candidate_documents, (R, C)),
        (Resource.placements, (R, C, U)),
        (Resource.payments, (R,)),
        (Resource.notifications, (R, U)),
    ),
    # Tenant staff who match ready candidates to employers.
    SystemRole.recruiter: _grant(
        (Resource.candidates, (R, U)),
        # They collect and check the documents a placement needs: upload, verify and reject (update);
        # deleting a document is the Admin's.
        (Resource.candidate_documents, (R, C, U)),
        (Resource.agents, (R,)),
        (Resource.brokers, (R,)),
        (Resource.courses, (R,)),
        (Resource.certificates, (R,)),
        (Resource.vetting, (R, C, U)),
        (Resource.placements, CRUD),
        (Resource.notifications, (R, U)),
    ),
}


def permissions_for_role(role_name: str, custom_permissions: Iterable[str] | None = None) -> frozenset[str]:
    """A system role's cell of the matrix, or a custom role's own list (unknown names dropped)."""
    try:
        return MATRIX[SystemRole(role_name)]
    except ValueError:
        return frozenset(p for p in custom_permissions or () if p in ALL_PERMISSIONS)


def render_markdown() -> str:
    """docs/permissions.md: the matrix as a table, one row per resource and action."""
    roles = list(SystemRole)
    lines = [
        "# Permissions",
        "",
        "Generated from `src/mobility/authz/permissions.py` by `mobility docs permissions`; do not edit.",
        "Row rules apply on top: a Candidate sees only their own record and what hangs off it; an Agent",
        "or Broker only the candidates, placements and payments linked to their partner record; a Trainer",
        "only the courses they teach and those courses' enrollments. Everyone may read and end their own",
        "sessions and read their own profile (`/api/v1/me`).",
        "",
        "| permission | " + " | ".join(role.value for role in roles) + " |",
        "| --- | " + " | ".join("---" for _ in roles) + " |",
    ]
    for name in ALL_PERMISSIONS:
        cells = ["yes" if name in MATRIX[role] else "" for role in roles]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
