import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from mobility.core.db import Base
from mobility.core.models import CURRENT_TIMESTAMP, IdMixin, LegacyTimestamp, UTCDateTime, utcnow


class Session(IdMixin, Base):
    """Legacy table (Prisma app): a login session; `token` holds only a hash of the bearer token."""

    __tablename__ = "sessions"
    # Logins and logouts are recorded in activity_logs; the token column holds a hash only.
    __audited__ = False
    __table_args__ = (Index(None, "userId"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        "userId", Uuid, ForeignKey("users.id", ondelete="CASCADE", onupdate="CASCADE")
    )
    token: Mapped[str] = mapped_column(Text, unique=True)
    expires_at: Mapped[datetime] = mapped_column("expiresAt", LegacyTimestamp)
    ip_address: Mapped[str | None] = mapped_column("ipAddress", Text)
    user_agent: Mapped[str | None] = mapped_column("userAgent", Text)
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", LegacyTimestamp, default=utcnow, server_default=CURRENT_TIMESTAMP
    )
    # Added by 0008. The tenant the session acts in (switchable); legacy sessions have none and are
    # therefore not accepted: their users log in again.
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        "tenantId", Uuid, ForeignKey("tenants.id", ondelete="CASCADE")
    )
    last_seen_at: Mapped[datetime | None] = mapped_column("lastSeenAt", UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column("revokedAt", UTCDateTime())


class LoginThrottle(Base):
    """Failed logins per account and per client address, for throttling (0008)."""

    __tablename__ = "login_throttles"
    __audited__ = False

    # "account:<e-mail>" or "address:<ip>"
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_failure_at: Mapped[datetime | None] = mapped_column("lastFailureAt", UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column("lockedUntil", UTCDateTime())


class PasswordReset(IdMixin, Base):
    """A forgotten-password link (0016): single use, short-lived; only the token's hash is stored.
    Requests and completions are recorded in activity_logs."""

    __tablename__ = "password_resets"
    __audited__ = False
    __table_args__ = (Index(None, "userId"),)

    user_id: Mapped[uuid.UUID] = mapped_column("userId", Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column("tokenHash", Text, unique=True)
    expires_at: Mapped[datetime] = mapped_column("expiresAt", UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column("usedAt", UTCDateTime())
    ip_address: Mapped[str | None] = mapped_column("ipAddress", Text)
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", UTCDateTime(), default=utcnow, server_default=CURRENT_TIMESTAMP
    )
