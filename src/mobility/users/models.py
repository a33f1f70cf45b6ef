import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    select,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.functions import FunctionElement

from mobility.core.db import Base
from mobility.core.models import (
    CURRENT_TIMESTAMP,
    IdMixin,
    JSONType,
    LegacyTimestamp,
    TenantKeyMixin,
    TenantScopedMixin,
    TimestampMixin,
    UTCDateTime,
    tenant_key,
    tenant_table_args,
    utcnow,
)


class User(IdMixin, Base):
    """Legacy table (Prisma app), extended by revision 0003 with tenant, auth and audit columns."""

    __tablename__ = "users"
    __table_args__ = (Index(None, "tenantId", "email"),)
    __audit_redact__ = frozenset({"password_hash", "totp_secret", "recovery_codes"})

    email: Mapped[str] = mapped_column(Text, unique=True)
    password_hash: Mapped[str | None] = mapped_column("passwordHash", Text)
    name: Mapped[str | None] = mapped_column(Text)
    role_id: Mapped[uuid.UUID | None] = mapped_column(
        "roleId", Uuid, ForeignKey("roles.id", ondelete="SET NULL", onupdate="CASCADE")
    )
    last_login_at: Mapped[datetime | None] = mapped_column("lastLoginAt", LegacyTimestamp)
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", LegacyTimestamp, default=utcnow, server_default=CURRENT_TIMESTAMP
    )
    updated_at: Mapped[datetime] = mapped_column(
        "updatedAt", LegacyTimestamp, default=utcnow, onupdate=utcnow
    )
    # Added by 0003. The primary tenant; memberships in further tenants live in user_tenants.
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        "tenantId", Uuid, ForeignKey("tenants.id", ondelete="RESTRICT")
    )
    auth_provider: Mapped[str] = mapped_column(
        "authProvider", Text, default="local", server_default=text("'local'")
    )
    auth_id: Mapped[str | None] = mapped_column("authId", Text)
    # active | invited | suspended (a string, as the spec says, so providers can add their own)
    status: Mapped[str] = mapped_column(Text, default="active", server_default=text("'active'"))
    two_factor_enabled: Mapped[bool] = mapped_column(
        "twoFactorEnabled", Boolean, default=False, server_default=false()
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        "createdBy", Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    updated_by: Mapped[uuid.UUID | None] = mapped_column(
        "updatedBy", Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    # Added by 0008: two-factor authentication and password history.
    totp_secret: Mapped[str | None] = mapped_column("totpSecret", Text)
    # The last TOTP time step accepted: a code is never accepted twice.
    totp_last_step: Mapped[int | None] = mapped_column("totpLastStep", BigInteger)
    # SHA-256 of the unused one-time recovery codes.
    recovery_codes: Mapped[list[str] | None] = mapped_column("recoveryCodes", JSONType)
    password_changed_at: Mapped[datetime | None] = mapped_column("passwordChangedAt", UTCDateTime())


# PostgreSQL: the case-insensitive collation of migration 0012.
EMAIL_COLLATION = "mobility_email_ci"


class email_key(FunctionElement):  # noqa: N801  (used like a SQL function)
    """An e-mail address as logins match it, case-insensitively: `email_key(User.email) == normalised`.

    SQLite: `lower(email)`. PostgreSQL: `email COLLATE mobility_email_ci` (0012), because under
    row-level security the planner may not use an index on `lower(email)` before the policies'
    conditions (lower() is not LEAKPROOF), and read all users at every login (1 s at a million users);
    an equality under a collation is, and uses its index. The unique index below (0013) is on this
    expression: one account per e-mail as logins compare them."""

    type = Text()
    inherit_cache = True
    name = "email_key"


@compiles(email_key)
def _email_key_lower(element, compiler, **kw) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(email_key, "postgresql")
def _email_key_collated(element, compiler, **kw) -> str:
    return f"({compiler.process(element.clauses, **kw)} COLLATE {EMAIL_COLLATION})"


# One account per e-mail whatever its letter case (0013), and the index logins find their user by.
EMAIL_INDEX = "users_email_ci_key"
Index(EMAIL_INDEX, email_key(User.email), unique=True)


def user_by_email(email: str):
    """The statement that finds the account of a (normalised, lower-case) e-mail address: take
    `.scalars().first()`. Since 0013 at most one account matches; the order by exact spelling, then
    age, only keeps the answer deterministic on a database not yet upgraded."""
    return (
        select(User)
        .where(email_key(User.email) == email)
        .order_by((User.email == email).desc(), User.created_at, User.id)
        .limit(1)
    )


MEMBERSHIP_STATUSES = ("active", "suspended")


class UserTenant(TenantKeyMixin, TimestampMixin, Base):
    """Membership of a user in a tenant, with the role the user holds there. Made when the user accepts
    an invitation (never by the inviting tenant alone); `status` is the tenant's own lock on it (0014):
    a suspended membership gives no access to the tenant, whatever the account's status.
    Distributed by tenant: its key is (tenantId, id)."""

    __tablename__ = "user_tenants"
    __table_args__ = (
        tenant_key(),
        UniqueConstraint("userId", "tenantId"),
        Index(None, "tenantId", "roleId"),
        CheckConstraint(f"status IN {MEMBERSHIP_STATUSES}", name="status"),
    )
    # The audit trail files a membership under its own tenant, whoever changed it from where.
    __audit_tenant__ = "tenant_id"

    user_id: Mapped[uuid.UUID] = mapped_column("userId", Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        "tenantId", Uuid, ForeignKey("tenants.id", ondelete="RESTRICT")
    )
    role_id: Mapped[uuid.UUID] = mapped_column("roleId", Uuid, ForeignKey("roles.id", ondelete="RESTRICT"))
    is_primary: Mapped[bool] = mapped_column("isPrimary", Boolean, default=False, server_default=false())
    status: Mapped[str] = mapped_column(Text, default="active", server_default=text("'active'"))


class InvitationToken(IdMixin, Base):
    """Which tenant an invitation token belongs to, across the installation (0015): a global key.

    `user_invitations` is distributed by tenant, and an invitation is accepted by its token alone: the
    token's hash is looked up here first (a reference table under Citus), then the invitation in its
    tenant. Unique here, a hash is unique across tenants, and the invitation refers to its row
    (tenantId, tokenHash), so no invitation carries a token this table does not give to its tenant.
    Rows are written by the data layer whenever an invitation gets a token (`__global_keys__`, see
    core/global_keys.py) and never deleted: an old token's hash finds no invitation any more."""

    __tablename__ = "invitation_tokens"
    __audited__ = False
    __table_args__ = (UniqueConstraint("tenantId", "tokenHash"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        "tenantId", Uuid, ForeignKey("tenants.id", ondelete="RESTRICT")
    )
    token_hash: Mapped[str] = mapped_column("tokenHash", Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", UTCDateTime(), default=utcnow, server_default=CURRENT_TIMESTAMP
    )


class UserInvitation(TenantScopedMixin, Base):
    """An invitation to join a tenant with a role (0008, 0014), accepted or declined by the invitee.

    Only the invitation that creates an account carries a token (its hash): with it the invitee sets
    the account's first password. An invitation of an existing account has none: its owner accepts it
    logged in (/me/invitations). `email` and `name` are what the inviting Admin typed: the tenant's view
    of a pending invitation shows those, never the account's own data."""

    __tablename__ = "user_invitations"
    __table_args__ = tenant_table_args(
        UniqueConstraint("tenantId", "tokenHash"),
        # Its token is one the installation gave to this tenant (unique across tenants there).
        ForeignKeyConstraint(
            ["tenantId", "tokenHash"],
            ["invitation_tokens.tenantId", "invitation_tokens.tokenHash"],
            ondelete="RESTRICT",
        ),
        Index(None, "tenantId", "userId"),
    )
    __audit_redact__ = frozenset({"token_hash"})
    __global_keys__ = {"token_hash": InvitationToken}

    user_id: Mapped[uuid.UUID] = mapped_column("userId", Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    # SHA-256 of the token sent to the invitee; the token itself is never stored.
    token_hash: Mapped[str | None] = mapped_column("tokenHash", Text)
    expires_at: Mapped[datetime] = mapped_column("expiresAt", UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column("acceptedAt", UTCDateTime())
    # Added by 0014. The role the membership gets on acceptance (null: invitations from before 0014,
    # which made the membership at once).
    role_id: Mapped[uuid.UUID | None] = mapped_column(
        "roleId", Uuid, ForeignKey("roles.id", ondelete="CASCADE")
    )
    email: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    declined_at: Mapped[datetime | None] = mapped_column("declinedAt", UTCDateTime())
