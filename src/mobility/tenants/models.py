from typing import Any

from sqlalchemy import Boolean, String, true
from sqlalchemy.orm import Mapped, mapped_column

from mobility.core.db import Base
from mobility.core.models import EMPTY_JSON_OBJECT, IdMixin, JSONType, TimestampMixin


class Tenant(IdMixin, TimestampMixin, Base):
    """An institute using the platform (first: Waterfront Training Institute, code WTI)."""

    __tablename__ = "tenants"
    # Its creation and changes are in its own trail, not in that of the tenant the System Admin acts in.
    __audit_tenant__ = "id"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    # {"logoUrl": str, "colorHex": str}
    branding: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default=EMPTY_JSON_OBJECT)
    contact_info: Mapped[dict[str, Any]] = mapped_column(
        "contactInfo", JSONType, default=dict, server_default=EMPTY_JSON_OBJECT
    )
    # Tenants are deactivated, never deleted: their records and audit trail must outlive them.
    is_active: Mapped[bool] = mapped_column("isActive", Boolean, default=True, server_default=true())
