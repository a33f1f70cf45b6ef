"""Step 14: memberships by consent, and a tenant's own lock on its members.

- user_tenants.status ('active' | 'suspended'): a tenant's Admin suspends a member's access to that
  tenant without touching the account, which other tenants share. A metadata-only column (constant
  default); its CHECK is added NOT VALID and validated after the commit, as 0003 does.
- user_invitations: the role the membership gets on acceptance (`roleId`), the e-mail and name as the
  inviting Admin typed them (the tenant's view of a pending invitation, never the account's own data),
  `declinedAt`, and `tokenHash` nullable: only an invitation that creates an account carries a token.
  Existing invitations get their role from the membership they made (before 0014 the membership came
  at once) and their e-mail and name from the account.
- mobility_session_scope (0011) counts a membership only while it is active, so a suspension ends the
  member's sessions in that tenant at their next request, whatever else happens.

The downgrade refuses while a membership is suspended (the older schema would silently give that
member access again): reactivate or remove those memberships first. Invitations without a token get
an unusable placeholder hash (the older schema needs one); their role, e-mail, name and decline are
dropped.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from mobility.ops.migration_ops import execute, is_postgresql, outside_the_transaction

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS_CHECK = "user_tenants_status_check"
ROLE_FK = "user_invitations_roleId_fkey"

# The function of 0011; `{membership}` is the join condition on the membership row.
_SESSION_SCOPE = """
    CREATE OR REPLACE FUNCTION mobility_session_scope(token_hash text, two_factor_key text)
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
          LEFT JOIN user_tenants m ON {membership}
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
_MEMBERSHIP_0011 = 'm."userId" = u.id AND m."tenantId" = s."tenantId"'
_MEMBERSHIP_ACTIVE = _MEMBERSHIP_0011 + " AND m.status = 'active'"

_BACKFILL = (
    """
    UPDATE user_invitations i SET "roleId" = m."roleId"
      FROM user_tenants m
     WHERE i."roleId" IS NULL AND m."userId" = i."userId" AND m."tenantId" = i."tenantId"
    """,
    """
    UPDATE user_invitations i SET email = u.email, name = u.name
      FROM users u
     WHERE i.email IS NULL AND u.id = i."userId"
    """,
)
_SUSPENDED_REFUSAL = (
    "some memberships are suspended; the schema before 0014 would give those members access again: "
    "reactivate or remove them first"
)
# Matches no token: a token's hash is 64 hex digits.
_PLACEHOLDER_HASH = "'none:' || id"


def upgrade() -> None:
    if is_postgresql():
        execute(
            """
            ALTER TABLE user_tenants ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'active'
            """
        )
        execute(
            f"""
            ALTER TABLE user_tenants
                DROP CONSTRAINT IF EXISTS {STATUS_CHECK},
                ADD CONSTRAINT {STATUS_CHECK} CHECK (status IN ('active', 'suspended')) NOT VALID
            """
        )
        execute(
            f"""
            ALTER TABLE user_invitations
                ADD COLUMN IF NOT EXISTS "roleId" uuid,
                ADD COLUMN IF NOT EXISTS email text,
                ADD COLUMN IF NOT EXISTS name text,
                ADD COLUMN IF NOT EXISTS "declinedAt" timestamp with time zone,
                ALTER COLUMN "tokenHash" DROP NOT NULL,
                DROP CONSTRAINT IF EXISTS "{ROLE_FK}",
                ADD CONSTRAINT "{ROLE_FK}" FOREIGN KEY ("roleId") REFERENCES roles (id) ON DELETE CASCADE
                    NOT VALID
            """
        )
        # Row-level security (0009) is forced on these tables: the backfill acts across tenants.
        execute("SET LOCAL mobility.system = 'on'")
        for statement in _BACKFILL:
            execute(statement)
        execute(_SESSION_SCOPE.replace("{membership}", _MEMBERSHIP_ACTIVE))
        block, _ = outside_the_transaction()
        with block:
            op.execute(f"ALTER TABLE user_tenants VALIDATE CONSTRAINT {STATUS_CHECK}")
            op.execute(f'ALTER TABLE user_invitations VALIDATE CONSTRAINT "{ROLE_FK}"')
        return

    with op.batch_alter_table("user_tenants") as batch:
        batch.add_column(sa.Column("status", sa.Text(), server_default="active", nullable=False))
        batch.create_check_constraint(op.f(STATUS_CHECK), "status IN ('active', 'suspended')")
    with op.batch_alter_table("user_invitations") as batch:
        batch.add_column(sa.Column("roleId", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("email", sa.Text(), nullable=True))
        batch.add_column(sa.Column("name", sa.Text(), nullable=True))
        batch.add_column(sa.Column("declinedAt", sa.DateTime(timezone=True), nullable=True))
        batch.alter_column("tokenHash", existing_type=sa.Text(), nullable=True)
        batch.create_foreign_key(ROLE_FK, "roles", ["roleId"], ["id"], ondelete="CASCADE")
    execute(
        """
        UPDATE user_invitations SET "roleId" = (
            SELECT m."roleId" FROM user_tenants m
             WHERE m."userId" = user_invitations."userId" AND m."tenantId" = user_invitations."tenantId")
         WHERE "roleId" IS NULL
        """
    )
    execute(
        """
        UPDATE user_invitations
           SET email = (SELECT u.email FROM users u WHERE u.id = user_invitations."userId"),
               name = (SELECT u.name FROM users u WHERE u.id = user_invitations."userId")
         WHERE email IS NULL
        """
    )


def downgrade() -> None:
    if is_postgresql():
        execute("SET LOCAL mobility.system = 'on'")
        execute(
            f"""
            DO $check$
            BEGIN
                -- Nested: the inner condition is planned only once the column is known to exist.
                IF EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'user_tenants'::regclass
                            AND attname = 'status' AND NOT attisdropped) THEN
                    IF EXISTS (SELECT FROM user_tenants WHERE status <> 'active') THEN
                        RAISE EXCEPTION '0014 downgrade refused: {_SUSPENDED_REFUSAL}';
                    END IF;
                END IF;
            END
            $check$
            """
        )
        execute(_SESSION_SCOPE.replace("{membership}", _MEMBERSHIP_0011))
        execute(
            f'UPDATE user_invitations SET "tokenHash" = {_PLACEHOLDER_HASH}::text WHERE "tokenHash" IS NULL'
        )
        execute(
            f"""
            ALTER TABLE user_invitations
                DROP CONSTRAINT IF EXISTS "{ROLE_FK}",
                DROP COLUMN IF EXISTS "roleId",
                DROP COLUMN IF EXISTS email,
                DROP COLUMN IF EXISTS name,
                DROP COLUMN IF EXISTS "declinedAt",
                ALTER COLUMN "tokenHash" SET NOT NULL
            """
        )
        execute(
            f"""
            ALTER TABLE user_tenants
                DROP CONSTRAINT IF EXISTS {STATUS_CHECK},
                DROP COLUMN IF EXISTS status
            """
        )
        return

    suspended = op.get_bind().execute(sa.text("SELECT count(*) FROM user_tenants WHERE status <> 'active'"))
    if suspended.scalar_one():
        raise RuntimeError(f"0014 downgrade refused: {_SUSPENDED_REFUSAL}")
    execute(f'UPDATE user_invitations SET "tokenHash" = {_PLACEHOLDER_HASH} WHERE "tokenHash" IS NULL')
    with op.batch_alter_table("user_invitations") as batch:
        batch.drop_constraint(ROLE_FK, type_="foreignkey")
        batch.drop_column("roleId")
        batch.drop_column("email")
        batch.drop_column("name")
        batch.drop_column("declinedAt")
        batch.alter_column("tokenHash", existing_type=sa.Text(), nullable=False)
    with op.batch_alter_table("user_tenants") as batch:
        batch.drop_constraint(op.f(STATUS_CHECK), type_="check")
        batch.drop_column("status")
