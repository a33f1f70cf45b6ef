"""Who may do what: the two tables of the platform's authorisation, one reviewable table each.

- `permissions`: the permission matrix (system role -> permissions), rendered to docs/permissions.md;
- `rules`: the row rules (which rows of each model a scope sees), applied to every statement by the
  application's session class (mobility.app_session).

They name domain models and roles, so they sit above `mobility.core` (which imports nothing from here)
and below the domains' services.
"""
