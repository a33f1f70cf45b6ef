"""Every ORM model, imported once so that `Base.metadata` knows the whole schema.

Alembic, the Prisma exporter and the tests read the schema from here.
"""

from mobility.agents.models import Agent, Broker
from mobility.audit.models import ActivityLog, AuditLog, SystemAuditLog
from mobility.auth.models import LoginThrottle, PasswordReset, Session
from mobility.candidates.models import Candidate, CandidateReferenceCounter
from mobility.core.db import Base
from mobility.documents.models import CandidateDocument
from mobility.finance.models import Invoice, Payment
from mobility.notifications.models import Notification, NotificationPreference
from mobility.placements.models import Placement
from mobility.roles.models import Role
from mobility.settings.models import Setting
from mobility.tenants.models import Tenant
from mobility.training.models import (
    Assessment,
    AttendanceRecord,
    Certificate,
    CertificateCode,
    Course,
    Enrollment,
)
from mobility.users.models import InvitationToken, User, UserInvitation, UserTenant
from mobility.vetting.models import VettingRecord
from mobility.webhooks.models import WebhookDelivery, WebhookEndpoint
from mobility.worker.models import JobLease

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
    "CandidateReferenceCounter",
    "Certificate",
    "CertificateCode",
    "Course",
    "Enrollment",
    "InvitationToken",
    "Invoice",
    "JobLease",
    "LoginThrottle",
    "Notification",
    "NotificationPreference",
    "PasswordReset",
    "Payment",
    "Placement",
    "Role",
    "Session",
    "Setting",
    "SystemAuditLog",
    "Tenant",
    "User",
    "UserInvitation",
    "UserTenant",
    "VettingRecord",
    "WebhookDelivery",
    "WebhookEndpoint",
    "metadata",
]
