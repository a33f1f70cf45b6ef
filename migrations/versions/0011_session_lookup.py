"""Step 11 (PostgreSQL only): the session lookup of every authenticated request in one round trip.

`mobility_session_scope(token_hash, two_factor_key)` does what mobility.auth.authentication.authenticate
did in three statements: say it acts across tenants (`mobility.system`, as the lookup must find the
session before it knows the tenant), read the session with its user, tenant, the membership's role,
the account's global role, the tenant's two-factor setting and the login's candidate / agent / broker
record in that tenant, then set the transaction's row-level-security settings to the session's tenant
and user (system off). Nothing found: the settings are cleared and no row comes back. It decides
nothing: expiry, status and the permissions stay in Python, which answers 401 (ending the request's
transaction) when the session is not valid.

Its plan is generic (made once per connection, whatever the token): see the SET below.

SECURITY INVOKER (the default): it runs with the caller's rights, and the app role may set these
settings itself anyway; the function only saves round trips. Its SELECT is the one of
`mobility.auth.authentication._facts_statement` (used on SQLite, and for login), written out in SQL; the
two are compared row for row by tests/auth/test_session_lookup.py.

On SQLite this revision does nothing. The downgrade drops the function.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from mobility.ops.migration_ops import execute, is_postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
    CREATE FUNCTION mobility_session_scope(token_hash text, two_factor_key text)
    RETURNS TABLE (
        session_id uuid,
        user_id uuid,
        tenant_id uuid,
        expires_at timestamp(3) without time zone,
        created_at timestamp(3) without time zone,
        last_seen_at timestamp with time zone,
        revoked_at timestamp with time zone,
        user_status text,
        two_factor_enabled boolean,
        global_role_name text,
        tenant_is_active boolean,
        role_name text,
        role_permissions jsonb,
        require_two_factor jsonb,
        candidate_id uuid,
        agent_id uuid,
        broker_id uuid
    )
    LANGUAGE plpgsql VOLATILE
    -- The SELECT is planned once per connection: left to choose, PostgreSQL planned it again on every
    -- call (custom plans, ~3 ms each with the row-level-security policies; the lookup itself ~0.2 ms).
    SET plan_cache_mode = force_generic_plan
    AS $function$
    #variable_conflict use_column
    BEGIN
        PERFORM set_config('mobility.system', 'on', true);
        SELECT s.id, s."userId", s."tenantId", s."expiresAt", s."createdAt", s."lastSeenAt", s."revokedAt",
               u.status, u."twoFactorEnabled", g.name,
               -- A lookup by key, not a join: joined, the planner hashed the whole tenants table
               -- on every call (small tables look cheap to scan).
               (SELECT t."isActive" FROM tenants t WHERE t.id = s."tenantId"),
               r.name, r.permissions, st.value,
               (SELECT c.id FROM candidates c WHERE c."userId" = u.id AND c."tenantId" = s."tenantId"),
               (SELECT a.id FROM agents a WHERE a."userId" = u.id AND a."tenantId" = s."tenantId"),
               (SELECT b.id FROM brokers b WHERE b."userId" = u.id AND b."tenantId" = s."tenantId")
          INTO session_id, user_id, tenant_id, expires_at, created_at, last_seen_at, revoked_at,
               user_status, two_factor_enabled, global_role_name, tenant_is_active, role_name,
               role_permissions, require_two_factor, candidate_id, agent_id, broker_id
          FROM sessions s
          JOIN users u ON u.id = s."userId"
          LEFT JOIN user_tenants m ON m."userId" = u.id AND m."tenantId" = s."tenantId"
          LEFT JOIN roles r ON r.id = m."roleId"
          LEFT JOIN roles g ON g.id = u."roleId" AND g."systemRole"
          LEFT JOIN settings st ON st."tenantId" = s."tenantId" AND st.key = two_factor_key
         WHERE s.token = token_hash;
        IF FOUND THEN
            PERFORM set_config('mobility.tenant_id', tenant_id::text, true),
                    set_config('mobility.actor_id', user_id::text, true),
                    set_config('mobility.system', 'off', true);
            RETURN NEXT;
        ELSE
            PERFORM set_config('mobility.tenant_id', '', true),
                    set_config('mobility.actor_id', '', true),
                    set_config('mobility.system', 'off', true);
        END IF;
    END
    $function$
"""


def upgrade() -> None:
    if is_postgresql():
        execute(FUNCTION)


def downgrade() -> None:
    if is_postgresql():
        execute("DROP FUNCTION IF EXISTS mobility_session_scope(text, text)")
