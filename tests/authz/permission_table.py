"""Who may do what through the API, written by hand: every operation, every system role.

This table is the tests' own statement of the rules, taken from ../shared/DESIGN.md ("Who uses it",
"Tenancy and security") and the issues that added each operation, NOT read from the code under test
(`mobility.authz.permissions.MATRIX`, the routes' `require(...)`). tests/authz/test_permission_table.py
calls every route as each system role and as custom roles holding one permission, and compares the
answers with it; a route without a row fails the suite. A new operation gets its row here before it
ships: who may call it, the permission a custom role needs for it, and which object rule narrows it.

Columns:
- operation: method and path template, as the router declares it.
- needs: the permission a role must grant (`resource:action`, as docs/permissions.md names them);
  `login` when any logged-in user may call it; `-` when anyone may, logged in or not.
- SA Ad Tr Ca Ag Br Re: System Admin, Admin, Trainer, Candidate, Agent, Broker, Recruiter;
  `y` allowed, `-` refused with 403 (what the role is; not which objects it may touch).
- anyone: `y` when no login is needed.
- object rule: which of OBJECT_RULES (below) limits the objects an allowed caller reaches.

Choices where the design is silent (write down why when adding one):
- A tenant's Admin reads their own tenant (branding, contacts), no other; only the System Admin
  creates, changes or deactivates tenants. Deactivating is how a tenant is deleted: `tenants:delete`.
- Account-wide changes (name, e-mail, suspending the whole account) belong to the account's owner
  (`PATCH /me`) and the System Admin (`accounts:update`), never to one tenant's Admin (issue 8).
- The tenant's invitation list shows no token, so reading it is reading the tenant's people
  (`users:read`); revoking one undoes an invitation, so it needs what making one needs (`users:create`).
- Settings are written by upsert (`PUT`): `settings:update`.
- Agents and brokers (issue 12): a partner's own login reads and updates its own record only (its
  contact details; the row rules and the service narrow it); suspending, deactivating, reactivating
  and deleting a partner are staff's, under `agents:delete`/`brokers:delete` (as deactivating a tenant
  is `tenants:delete`), so a partner cannot lift its own suspension. Recruiters read partners.
- Candidates (issue 12): an Agent or Broker registers candidates (linked to its own record) and edits
  its own; a Candidate edits their own contacts, address and emergency contact (`candidates:update`,
  the fields narrowed by the service). Manual status moves are staff's (`candidates:update`); a
  partner may only withdraw its own candidate (other moves: 403 `status_change_not_allowed`, an
  object rule), a Candidate none (403 `forbidden`). The history and likely duplicates are read with
  `candidates:read`, among the candidates the caller sees. Merging a duplicate into another record
  ends the duplicate as a record of its own (a tombstone): the tenant's Admins', under
  `candidates:delete` (as deactivating a tenant is `tenants:delete`); not a Recruiter's.
- Candidates' documents (issue 12): a Candidate uploads their own, an Agent or Broker its candidates'
  (`candidate_documents:create`), and each reads what they may see (a document is visible exactly when
  its candidate is; never to a Trainer). Verifying and rejecting are staff's (`candidate_documents:update`:
  Admins and Recruiters, who collect and check what a placement needs); deleting a document or a
  candidate is the Admin's (`candidate_documents:delete`, `candidates:delete`). The expiring-documents
  list is staff's: partners and candidates hold `candidate_documents:read` but are refused there
  (403 `forbidden`); a custom role is staff.
- Webhook endpoints hold the tenant's signing secrets and send its data out: the tenant's Admins (and
  the System Admin) only (issue 13). Rotating a secret, a test event and a replay change what is sent:
  `webhooks:update`.
- Notifications (issue 13): one's own in-app list and e-mail preferences need only a login; the
  tenant's outbox (`notifications:read`) shows an Admin every row and anyone else their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.support.routes import Operation

ROLES = ("System Admin", "Admin", "Trainer", "Candidate", "Agent", "Broker", "Recruiter")

# Each object rule, and the test that proves it (file::function; checked to exist).
OBJECT_RULES: dict[str, tuple[str, str]] = {
    "-": ("no object, or nothing beyond the role", ""),
    "own tenant": (
        "the tenant the caller acts in; the System Admin any tenant",
        "tests/tenants/test_api.py::test_admin_reads_only_their_own_tenant",
    ),
    "tenant": (
        "rows of the caller's tenant only (another tenant's id is 404, a reference to it 422)",
        "tests/isolation/test_api.py::test_another_tenants_object_is_not_found",
    ),
    "tenant member": (
        "members of the caller's tenant only; and only a caller holding the member's rights changes them",
        "tests/users/test_api.py::test_another_tenants_users_do_not_exist",
    ),
    "tenant roles": (
        "the global roles and the caller's tenant's own; a role grants no more than its author holds",
        "tests/roles/test_api.py::test_list_shows_global_and_own_roles_only",
    ),
    "own sessions": (
        "the caller's own sessions only",
        "tests/auth/test_sessions.py::test_ending_one_session_and_not_someone_elses",
    ),
    "own account": ("the caller's own account only", "tests/auth/test_sessions.py::test_password_change"),
    "own invitations": (
        "invitations addressed to the caller's own account only",
        "tests/users/test_invitations.py::test_the_invitee_declines_and_the_tenant_may_invite_again",
    ),
    "member tenants": (
        "tenants the caller is an active member of; the System Admin any active tenant",
        "tests/auth/test_tenants.py::test_a_member_of_two_tenants_switches_between_them",
    ),
    "own notifications": (
        "the caller's own in-app notifications and preferences, in the current tenant",
        "tests/notifications/test_api.py::test_a_user_sees_only_their_own_notifications_in_the_current_tenant",
    ),
    "outbox": (
        "the tenant's notifications for its administrators; anyone else only their own",
        "tests/notifications/test_api.py::test_the_outbox_shows_admins_the_dead_and_others_only_their_own",
    ),
    "reset token": (
        "the account the e-mailed reset link was made for (the token is the credential)",
        "tests/notifications/test_account_emails.py::test_a_reset_link_works_once_ends_every_session_and_is_logged",
    ),
    "invitation token": (
        "the account the token's invitation created (the token is the credential)",
        "tests/users/test_invitations.py::test_cross_tenant_takeover_of_a_pending_account_is_impossible",
    ),
    # DESIGN.md's object rules for the domain tables, for their operations' rows (the data layer applies
    # them by role: a Candidate their own record and what hangs off it, an Agent or Broker the
    # candidates, placements and payments linked to their partner record, a Trainer their courses and
    # those courses' enrollments; staff the whole tenant).
    "row rules": (
        "the tenant's rows, narrowed by the caller's role as DESIGN.md says",
        "tests/core/test_object_rules.py::test_each_sees_exactly_their_own_rows",
    ),
}

TABLE = """
| operation                                             | needs           | SA | Ad | Tr | Ca | Ag | Br | Re | anyone | object rule      |
| ----------------------------------------------------- | --------------- | -- | -- | -- | -- | -- | -- | -- | ------ | ---------------- |
| GET    /health                                        | -               | y  | y  | y  | y  | y  | y  | y  | y      | -                |
| GET    /openapi.json                                  | -               | y  | y  | y  | y  | y  | y  | y  | y      | -                |
| GET    /docs                                          | -               | y  | y  | y  | y  | y  | y  | y  | y      | -                |
| GET    /redoc                                         | -               | y  | y  | y  | y  | y  | y  | y  | y      | -                |
| POST   /api/v1/auth/login                             | -               | y  | y  | y  | y  | y  | y  | y  | y      | -                |
| POST   /api/v1/invitations/accept                     | -               | y  | y  | y  | y  | y  | y  | y  | y      | invitation token |
| POST   /api/v1/auth/password-reset                   | -               | y  | y  | y  | y  | y  | y  | y  | y      | -                |
| POST   /api/v1/auth/password-reset/complete          | -               | y  | y  | y  | y  | y  | y  | y  | y      | reset token      |
| POST   /api/v1/auth/logout                            | login           | y  | y  | y  | y  | y  | y  | y  | -      | own sessions     |
| POST   /api/v1/auth/switch-tenant                     | login           | y  | y  | y  | y  | y  | y  | y  | -      | member tenants   |
| GET    /api/v1/me                                     | login           | y  | y  | y  | y  | y  | y  | y  | -      | own account      |
| PATCH  /api/v1/me                                     | login           | y  | y  | y  | y  | y  | y  | y  | -      | own account      |
| POST   /api/v1/me/password                            | login           | y  | y  | y  | y  | y  | y  | y  | -      | own account      |
| POST   /api/v1/me/2fa/setup                           | login           | y  | y  | y  | y  | y  | y  | y  | -      | own account      |
| POST   /api/v1/me/2fa/confirm                         | login           | y  | y  | y  | y  | y  | y  | y  | -      | own account      |
| POST   /api/v1/me/2fa/disable                         | login           | y  | y  | y  | y  | y  | y  | y  | -      | own account      |
| POST   /api/v1/me/2fa/recovery-codes                  | login           | y  | y  | y  | y  | y  | y  | y  | -      | own account      |
| GET    /api/v1/me/sessions                            | login           | y  | y  | y  | y  | y  | y  | y  | -      | own sessions     |
| DELETE /api/v1/me/sessions/{session_id}               | login           | y  | y  | y  | y  | y  | y  | y  | -      | own sessions     |
| GET    /api/v1/me/invitations                         | login           | y  | y  | y  | y  | y  | y  | y  | -      | own invitations  |
| POST   /api/v1/me/invitations/{invitation_id}/accept  | login           | y  | y  | y  | y  | y  | y  | y  | -      | own invitations  |
| POST   /api/v1/me/invitations/{invitation_id}/decline | login           | y  | y  | y  | y  | y  | y  | y  | -      | own invitations  |
| GET    /api/v1/me/notifications                          | login           | y  | y  | y  | y  | y  | y  | y  | -      | own notifications |
| GET    /api/v1/me/notifications/unread-count             | login           | y  | y  | y  | y  | y  | y  | y  | -      | own notifications |
| POST   /api/v1/me/notifications/read-all                 | login           | y  | y  | y  | y  | y  | y  | y  | -      | own notifications |
| POST   /api/v1/me/notifications/{notification_id}/read  | login           | y  | y  | y  | y  | y  | y  | y  | -      | own notifications |
| GET    /api/v1/me/notification-preferences               | login           | y  | y  | y  | y  | y  | y  | y  | -      | own notifications |
| PUT    /api/v1/me/notification-preferences/{category}    | login           | y  | y  | y  | y  | y  | y  | y  | -      | own notifications |
| GET    /api/v1/notifications                             | notifications:read | y  | y  | y  | y  | y  | y  | y  | -      | outbox           |
| POST   /api/v1/notifications/{notification_id}/retry    | notifications:update | y  | y  | y  | y  | y  | y  | y  | -      | outbox           |
| GET    /api/v1/tenants                                | tenants:read    | y  | y  | -  | -  | -  | -  | -  | -      | own tenant       |
| POST   /api/v1/tenants                                | tenants:create  | y  | -  | -  | -  | -  | -  | -  | -      | -                |
| GET    /api/v1/tenants/{tenant_id}                    | tenants:read    | y  | y  | -  | -  | -  | -  | -  | -      | own tenant       |
| PATCH  /api/v1/tenants/{tenant_id}                    | tenants:update  | y  | -  | -  | -  | -  | -  | -  | -      | own tenant       |
| POST   /api/v1/tenants/{tenant_id}/deactivate         | tenants:delete  | y  | -  | -  | -  | -  | -  | -  | -      | own tenant       |
| POST   /api/v1/tenants/{tenant_id}/activate           | tenants:delete  | y  | -  | -  | -  | -  | -  | -  | -      | own tenant       |
| GET    /api/v1/users                                  | users:read      | y  | y  | -  | -  | -  | -  | -  | -      | tenant member    |
| POST   /api/v1/users                                  | users:create    | y  | y  | -  | -  | -  | -  | -  | -      | tenant roles     |
| GET    /api/v1/users/{user_id}                        | users:read      | y  | y  | -  | -  | -  | -  | -  | -      | tenant member    |
| PATCH  /api/v1/users/{user_id}                        | accounts:update | y  | -  | -  | -  | -  | -  | -  | -      | tenant member    |
| POST   /api/v1/users/{user_id}/suspend                | users:update    | y  | y  | -  | -  | -  | -  | -  | -      | tenant member    |
| POST   /api/v1/users/{user_id}/reactivate             | users:update    | y  | y  | -  | -  | -  | -  | -  | -      | tenant member    |
| POST   /api/v1/users/{user_id}/suspend-account        | accounts:update | y  | -  | -  | -  | -  | -  | -  | -      | tenant member    |
| POST   /api/v1/users/{user_id}/reactivate-account     | accounts:update | y  | -  | -  | -  | -  | -  | -  | -      | tenant member    |
| POST   /api/v1/users/{user_id}/reset-2fa              | users:update    | y  | y  | -  | -  | -  | -  | -  | -      | tenant member    |
| PUT    /api/v1/users/{user_id}/membership             | users:update    | y  | y  | -  | -  | -  | -  | -  | -      | tenant member    |
| DELETE /api/v1/users/{user_id}/membership             | users:delete    | y  | y  | -  | -  | -  | -  | -  | -      | tenant member    |
| GET    /api/v1/invitations                            | users:read      | y  | y  | -  | -  | -  | -  | -  | -      | tenant           |
| DELETE /api/v1/invitations/{invitation_id}            | users:create    | y  | y  | -  | -  | -  | -  | -  | -      | tenant           |
| GET    /api/v1/roles                                  | roles:read      | y  | y  | -  | -  | -  | -  | -  | -      | tenant roles     |
| POST   /api/v1/roles                                  | roles:create    | y  | y  | -  | -  | -  | -  | -  | -      | tenant roles     |
| GET    /api/v1/roles/{role_id}                        | roles:read      | y  | y  | -  | -  | -  | -  | -  | -      | tenant roles     |
| PATCH  /api/v1/roles/{role_id}                        | roles:update    | y  | y  | -  | -  | -  | -  | -  | -      | tenant roles     |
| DELETE /api/v1/roles/{role_id}                        | roles:delete    | y  | y  | -  | -  | -  | -  | -  | -      | tenant roles     |
| GET    /api/v1/settings                               | settings:read   | y  | y  | -  | -  | -  | -  | -  | -      | tenant           |
| PUT    /api/v1/settings/{key}                         | settings:update | y  | y  | -  | -  | -  | -  | -  | -      | tenant           |
| GET    /api/v1/webhooks                                  | webhooks:read   | y  | y  | -  | -  | -  | -  | -  | -      | tenant           |
| POST   /api/v1/webhooks                                  | webhooks:create | y  | y  | -  | -  | -  | -  | -  | -      | -                |
| GET    /api/v1/webhooks/{endpoint_id}                    | webhooks:read   | y  | y  | -  | -  | -  | -  | -  | -      | tenant           |
| PATCH  /api/v1/webhooks/{endpoint_id}                    | webhooks:update | y  | y  | -  | -  | -  | -  | -  | -      | tenant           |
| DELETE /api/v1/webhooks/{endpoint_id}                    | webhooks:delete | y  | y  | -  | -  | -  | -  | -  | -      | tenant           |
| POST   /api/v1/webhooks/{endpoint_id}/rotate-secret      | webhooks:update | y  | y  | -  | -  | -  | -  | -  | -      | tenant           |
| POST   /api/v1/webhooks/{endpoint_id}/test               | webhooks:update | y  | y  | -  | -  | -  | -  | -  | -      | tenant           |
| GET    /api/v1/webhook-deliveries                        | webhooks:read   | y  | y  | -  | -  | -  | -  | -  | -      | tenant           |
| POST   /api/v1/webhook-deliveries/{delivery_id}/replay   | webhooks:update | y  | y  | -  | -  | -  | -  | -  | -      | tenant           |
| GET    /api/v1/audit-logs                             | audit_logs:read | y  | y  | -  | -  | -  | -  | -  | -      | tenant           |
| GET    /api/v1/agents                                 | agents:read     | y  | y  | -  | -  | y  | -  | y  | -      | row rules        |
| POST   /api/v1/agents                                 | agents:create   | y  | y  | -  | -  | -  | -  | -  | -      | -                |
| GET    /api/v1/agents/{agent_id}                      | agents:read     | y  | y  | -  | -  | y  | -  | y  | -      | row rules        |
| PATCH  /api/v1/agents/{agent_id}                      | agents:update   | y  | y  | -  | -  | y  | -  | -  | -      | row rules        |
| POST   /api/v1/agents/{agent_id}/suspend              | agents:delete   | y  | y  | -  | -  | -  | -  | -  | -      | row rules        |
| POST   /api/v1/agents/{agent_id}/deactivate           | agents:delete   | y  | y  | -  | -  | -  | -  | -  | -      | row rules        |
| POST   /api/v1/agents/{agent_id}/reactivate           | agents:delete   | y  | y  | -  | -  | -  | -  | -  | -      | row rules        |
| DELETE /api/v1/agents/{agent_id}                      | agents:delete   | y  | y  | -  | -  | -  | -  | -  | -      | row rules        |
| GET    /api/v1/brokers                                | brokers:read    | y  | y  | -  | -  | -  | y  | y  | -      | row rules        |
| POST   /api/v1/brokers                                | brokers:create  | y  | y  | -  | -  | -  | -  | -  | -      | -                |
| GET    /api/v1/brokers/{broker_id}                    | brokers:read    | y  | y  | -  | -  | -  | y  | y  | -      | row rules        |
| PATCH  /api/v1/brokers/{broker_id}                    | brokers:update  | y  | y  | -  | -  | -  | y  | -  | -      | row rules        |
| POST   /api/v1/brokers/{broker_id}/suspend            | brokers:delete  | y  | y  | -  | -  | -  | -  | -  | -      | row rules        |
| POST   /api/v1/brokers/{broker_id}/deactivate         | brokers:delete  | y  | y  | -  | -  | -  | -  | -  | -      | row rules        |
| POST   /api/v1/brokers/{broker_id}/reactivate         | brokers:delete  | y  | y  | -  | -  | -  | -  | -  | -      | row rules        |
| DELETE /api/v1/brokers/{broker_id}                    | brokers:delete  | y  | y  | -  | -  | -  | -  | -  | -      | row rules        |
| GET    /api/v1/candidates                             | candidates:read   | y  | y  | y  | y  | y  | y  | y  | -      | row rules        |
| POST   /api/v1/candidates                             | candidates:create | y  | y  | -  | -  | y  | y  | -  | -      | row rules        |
| GET    /api/v1/candidates/export.csv                  | candidates:read   | y  | y  | y  | y  | y  | y  | y  | -      | row rules        |
| GET    /api/v1/candidates/export.xlsx                 | candidates:read   | y  | y  | y  | y  | y  | y  | y  | -      | row rules        |
| POST   /api/v1/candidates/import                      | candidates:create | y  | y  | -  | -  | y  | y  | -  | -      | row rules        |
| GET    /api/v1/candidates/{candidate_id}              | candidates:read   | y  | y  | y  | y  | y  | y  | y  | -      | row rules        |
| PATCH  /api/v1/candidates/{candidate_id}              | candidates:update | y  | y  | -  | y  | y  | y  | y  | -      | row rules        |
| POST   /api/v1/candidates/{candidate_id}/status       | candidates:update | y  | y  | -  | -  | y  | y  | y  | -      | row rules        |
| GET    /api/v1/candidates/{candidate_id}/history      | candidates:read   | y  | y  | y  | y  | y  | y  | y  | -      | row rules        |
| GET    /api/v1/candidates/{candidate_id}/possible-duplicates | candidates:read | y | y | y | y | y | y | y | - | row rules |
| DELETE /api/v1/candidates/{candidate_id}              | candidates:delete | y  | y  | -  | -  | -  | -  | -  | -      | row rules        |
| POST   /api/v1/candidates/{candidate_id}/documents    | candidate_documents:create | y | y | - | y | y | y | y | - | row rules  |
| GET    /api/v1/candidates/{candidate_id}/documents    | candidate_documents:read   | y | y | - | y | y | y | y | - | row rules  |
| GET    /api/v1/documents/expiring                     | candidate_documents:read   | y | y | - | - | - | - | y | - | row rules  |
| GET    /api/v1/documents/{document_id}                | candidate_documents:read   | y | y | - | y | y | y | y | - | row rules  |
| GET    /api/v1/documents/{document_id}/download       | candidate_documents:read   | y | y | - | y | y | y | y | - | row rules  |
| POST   /api/v1/documents/{document_id}/verify         | candidate_documents:update | y | y | - | - | - | - | y | - | row rules  |
| POST   /api/v1/documents/{document_id}/reject         | candidate_documents:update | y | y | - | - | - | - | y | - | row rules  |
| DELETE /api/v1/documents/{document_id}                | candidate_documents:delete | y | y | - | - | - | - | - | - | row rules  |
| POST   /api/v1/candidates/{candidate_id}/merge        | candidates:delete | y  | y  | -  | -  | -  | -  | -  | -      | row rules        |
"""


@dataclass(frozen=True)
class Row(Operation):
    needs: str  # a permission, "login" or "-"
    roles: frozenset[str]  # the system roles allowed
    anyone: bool
    object_rule: str

    @property
    def permission(self) -> str | None:
        return None if self.needs in ("-", "login") else self.needs


def _parse(table: str) -> dict[tuple[str, str], Row]:
    rows: dict[tuple[str, str], Row] = {}
    for line in table.strip().splitlines()[2:]:
        operation, needs, *cells, anyone, object_rule = (cell.strip() for cell in line.strip("| ").split("|"))
        assert len(cells) == len(ROLES), f"{operation}: {len(cells)} role columns, expected {len(ROLES)}"
        assert set(cells) | {anyone} <= {"y", "-"}, f"{operation}: cells are y or -"
        method, path = operation.split()
        row = Row(
            method=method,
            path=path,
            needs=needs,
            roles=frozenset(role for role, cell in zip(ROLES, cells, strict=True) if cell == "y"),
            anyone=anyone == "y",
            object_rule=object_rule,
        )
        assert row.key not in rows, f"{row.id}: two rows"
        rows[row.key] = row
    return rows


PERMISSION_TABLE: dict[tuple[str, str], Row] = _parse(TABLE)
PUBLIC_OPERATIONS = frozenset(key for key, row in PERMISSION_TABLE.items() if row.anyone)
