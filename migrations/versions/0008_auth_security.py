"""Step 8 (identity and security): what logging in safely needs.

- sessions: the tenant a session acts in, when it was last used (idle expiry), when it was revoked;
- users: TOTP secret and last accepted time step, hashed recovery codes, when the password changed;
- login_throttles: failed logins per account and per client address;
- user_invitations: hashed invitation tokens (invited users set their password with one);
- roles: names unique per tenant (and among global roles) instead of across the installation, so
  tenants can each have a custom role of the same name without learning of each other's.

`sessions` and `users` are legacy tables that may be large: as in 0002/0003, columns are added without
a default (catalog only), the foreign key NOT VALID, and it is validated after the commit.
The legacy unique key on roles.name may be a constraint (as our baseline has it) or a bare unique
index (as `prisma migrate` creates it): both forms are dropped, whichever exists.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from mobility.ops.migration_ops import create_tenant_table, execute, outside_the_transaction

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMPTZ = sa.DateTime(timezone=True)


def _create_tables() -> None:
    op.create_table(
        "login_throttles",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("lastFailureAt", TIMESTAMPTZ, nullable=True),
        sa.Column("lockedUntil", TIMESTAMPTZ, nullable=True),
        sa.PrimaryKeyConstraint("key", name="login_throttles_pkey"),
    )
    create_tenant_table(
        "user_invitations",
        sa.Column("userId", sa.Uuid(), nullable=False),
        sa.Column("tokenHash", sa.Text(), nullable=False),
        sa.Column("expiresAt", TIMESTAMPTZ, nullable=False),
        sa.Column("acceptedAt", TIMESTAMPTZ, nullable=True),
        sa.UniqueConstraint("tokenHash", name="user_invitations_tokenHash_key"),
        sa.ForeignKeyConstraint(
            ["userId"], ["users.id"], name="user_invitations_userId_fkey", ondelete="CASCADE"
        ),
    )
    op.create_index("user_invitations_tenantId_userId_idx", "user_invitations", ["tenantId", "userId"])


def upgrade() -> None:
    _create_tables()
    if op.get_context().dialect.name == "postgresql":
        execute(
            """
            ALTER TABLE users
                ADD COLUMN IF NOT EXISTS "totpSecret" text,
                ADD COLUMN IF NOT EXISTS "totpLastStep" bigint,
                ADD COLUMN IF NOT EXISTS "recoveryCodes" jsonb,
                ADD COLUMN IF NOT EXISTS "passwordChangedAt" timestamp with time zone
            """
        )
        execute(
            """
            ALTER TABLE sessions
                ADD COLUMN IF NOT EXISTS "tenantId" uuid,
                ADD COLUMN IF NOT EXISTS "lastSeenAt" timestamp with time zone,
                ADD COLUMN IF NOT EXISTS "revokedAt" timestamp with time zone
            """
        )
        execute(
            """
            ALTER TABLE sessions
                DROP CONSTRAINT IF EXISTS "sessions_tenantId_fkey",
                ADD CONSTRAINT "sessions_tenantId_fkey" FOREIGN KEY ("tenantId")
                    REFERENCES tenants (id) ON DELETE CASCADE NOT VALID
            """
        )
        # roles is small (a row per role): a plain unique build under a brief lock is fine.
        execute("ALTER TABLE roles DROP CONSTRAINT IF EXISTS roles_name_key")
        execute("DROP INDEX IF EXISTS roles_name_key")
        execute(
            """
            ALTER TABLE roles
                DROP CONSTRAINT IF EXISTS "roles_tenantId_name_key",
                ADD CONSTRAINT "roles_tenantId_name_key" UNIQUE NULLS NOT DISTINCT ("tenantId", name)
            """
        )
        with outside_the_transaction()[0]:
            op.execute('ALTER TABLE sessions VALIDATE CONSTRAINT "sessions_tenantId_fkey"')
        return

    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("totpSecret", sa.Text(), nullable=True))
        batch.add_column(sa.Column("totpLastStep", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("recoveryCodes", JSON, nullable=True))
        batch.add_column(sa.Column("passwordChangedAt", TIMESTAMPTZ, nullable=True))
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("tenantId", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("lastSeenAt", TIMESTAMPTZ, nullable=True))
        batch.add_column(sa.Column("revokedAt", TIMESTAMPTZ, nullable=True))
        batch.create_foreign_key(
            "sessions_tenantId_fkey", "tenants", ["tenantId"], ["id"], ondelete="CASCADE"
        )
    with op.batch_alter_table("roles") as batch:
        batch.drop_constraint("roles_name_key", type_="unique")
        batch.create_unique_constraint("roles_tenantId_name_key", ["tenantId", "name"])


def downgrade() -> None:
    # Loses sessions' tenants (all sessions then need a new login), 2FA set-ups, throttling state and
    # open invitations. Fails, changing nothing, if two tenants now have roles of the same name: rename
    # one first (see docs/migrations.md).
    if op.get_context().dialect.name == "postgresql":
        execute('ALTER TABLE roles DROP CONSTRAINT IF EXISTS "roles_tenantId_name_key"')
        execute(
            """
            ALTER TABLE roles
                DROP CONSTRAINT IF EXISTS roles_name_key,
                ADD CONSTRAINT roles_name_key UNIQUE (name)
            """
        )
        execute('ALTER TABLE sessions DROP CONSTRAINT IF EXISTS "sessions_tenantId_fkey"')
        execute(
            """
            ALTER TABLE sessions
                DROP COLUMN IF EXISTS "revokedAt",
                DROP COLUMN IF EXISTS "lastSeenAt",
                DROP COLUMN IF EXISTS "tenantId"
            """
        )
        execute(
            """
            ALTER TABLE users
                DROP COLUMN IF EXISTS "passwordChangedAt",
                DROP COLUMN IF EXISTS "recoveryCodes",
                DROP COLUMN IF EXISTS "totpLastStep",
                DROP COLUMN IF EXISTS "totpSecret"
            """
        )
    else:
        with op.batch_alter_table("roles") as batch:
            batch.drop_constraint("roles_tenantId_name_key", type_="unique")
            batch.create_unique_constraint("roles_name_key", ["name"])
        with op.batch_alter_table("sessions") as batch:
            batch.drop_constraint("sessions_tenantId_fkey", type_="foreignkey")
            batch.drop_column("revokedAt")
            batch.drop_column("lastSeenAt")
            batch.drop_column("tenantId")
        with op.batch_alter_table("users") as batch:
            batch.drop_column("passwordChangedAt")
            batch.drop_column("recoveryCodes")
            batch.drop_column("totpLastStep")
            batch.drop_column("totpSecret")
    op.drop_index("user_invitations_tenantId_userId_idx", table_name="user_invitations")
    op.drop_table("user_invitations")
    op.drop_table("login_throttles")
