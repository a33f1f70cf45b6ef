from typing import Any

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mobility.core.db import Base
from mobility.core.models import JSONType, TenantScopedMixin, tenant_table_args


class Setting(TenantScopedMixin, Base):
    """A tenant's configuration value; known keys are validated by the settings service."""

    __tablename__ = "settings"
    __table_args__ = tenant_table_args(UniqueConstraint("tenantId", "key"))

    key: Mapped[str] = mapped_column(String(100))
    value: Mapped[Any] = mapped_column(JSONType)
