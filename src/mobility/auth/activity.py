"""The activity log (activity_logs): one row per login, logout, failure or change to an account.

Kept beside the audit trail (audit_logs, row changes): it records what people did to get in and to
their own credentials, including what failed, which changes no row.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from mobility.audit.models import ActivityLog


def record_activity(
    session: AsyncSession,
    action: str,
    /,
    *,
    user_id: uuid.UUID | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    **details: object,
) -> None:
    session.add(
        ActivityLog(
            user_id=user_id, action=action, details=details or None, ip_address=ip, user_agent=user_agent
        )
    )
