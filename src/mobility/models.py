"""Every ORM model, imported once so that `Base.metadata` knows the whole schema.

Alembic, the Prisma exporter and the tests read the schema from here.
"""

from mobility.agents.models import Agent, Broker
from mobility.audit.models import ActivityLog, AuditLog
from mobility.auth.models import Session
from mobility.candidates.models import Candidate, CandidateDocument
from mobility.core.db import Base
from mobility.finance.models import Invoice, Payment
from mobility.notifications.models import Notification
from mobility.placements.models import Placement
from mobility.roles.models import Role
from mobility.settings.models import Setting
from mobility.tenants.models import Tenant
from mobility.training.models import Assessment, AttendanceRecord, Certificate, Course, Enrollment
from mobility.users.models import User, UserTenant
from mobility.vetting.models import VettingRecord

metadata = Base.metadata

__all__ = [
    "ActivityLog",
    "Agent",
    "Assessment",
    "AttendanceRecord",
    "AuditLog",
    "Base",
    "Broker",
    "Candidate",
    "CandidateDocument",
    "Certificate",
    "Course",
    "Enrollment",
    "Invoice",
    "Notification",
    "Payment",
    "Placement",
    "Role",
    "Session",
    "Setting",
    "Tenant",
    "User",
    "UserTenant",
    "VettingRecord",
    "metadata",
]
