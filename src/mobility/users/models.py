import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Text, UniqueConstraint, Uuid, false, func, text
from sqlalchemy.orm import Mapped, mapped_column

from mobility.core.db import Base
from mobility.core.models import (
    CURRENT_TIMESTAMP,
    IdMixin,
    JSONType,
    LegacyTimestamp,
    TenantScopedMixin,
    TimestampMixin,
    UTCDateTime,
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


# Logins look e-mails up case-insensitively: without this, each login read the whole users table.
Index("users_email_lower_idx", func.lower(User.email))


class UserTenant(IdMixin, TimestampMixin, Base):
    """Membership of a user in a tenant, with the role the user holds there."""

    __tablename__ = "user_tenants"
    __table_args__ = (UniqueConstraint("userId", "tenantId"), Index(None, "tenantId", "roleId"))

    user_id: Mapped[uuid.UUID] = mapped_column("userId", Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        "tenantId", Uuid, ForeignKey("tenants.id", ondelete="RESTRICT")
    )
    role_id: Mapped[uuid.UUID] = mapped_column("roleId", Uuid, ForeignKey("roles.id", ondelete="RESTRICT"))
    is_primary: Mapped[bool] = mapped_column("isPrimary", Boolean, default=False, server_default=false())


class UserInvitation(TenantScopedMixin, Base):
    """An invitation to join a tenant (0008): the invited user sets a password with the token."""

    __tablename__ = "user_invitations"
    __table_args__ = tenant_table_args(UniqueConstraint("tokenHash"), Index(None, "tenantId", "userId"))
    __audit_redact__ = frozenset({"token_hash"})

    user_id: Mapped[uuid.UUID] = mapped_column("userId", Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    # SHA-256 of the token sent to the invitee; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column("tokenHash", Text)
    expires_at: Mapped[datetime] = mapped_column("expiresAt", UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column("acceptedAt", UTCDateTime())
