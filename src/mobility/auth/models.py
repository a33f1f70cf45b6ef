import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from mobility.core.db import Base
from mobility.core.models import CURRENT_TIMESTAMP, IdMixin, LegacyTimestamp, utcnow


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
