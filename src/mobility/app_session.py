"""The application's database session class, and the one way to open sessions of it.

The API, the CLI, the seed, the tests and the coming worker all open `AppSession`s, so the tenant
guard, the row rules and the audit trail apply to every one of them, installed here explicitly rather
than by whatever happened to be imported:
- `mobility.models` first: every model is mapped, so the rules know every table (a statement that
  names a table instead of its model is refused whichever was imported first);
- `row_rules`: who sees which rows (mobility.authz.rules), the one table of them;
- the audit trail (core.audit) into `audit_logs` (`system_audit_logs` for changes made without a tenant);
- the global keys (core.global_keys): values unique across tenants, registered with their rows;
- stored files that follow the transaction (core.files): removed after a rollback, or after the commit
  that dropped the last row naming them;
- on SQLite, `SELECT ... FOR UPDATE` as the database's write lock (core.db), where PostgreSQL locks rows.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import mobility.models  # noqa: F401  (every model mapped before the rules read the registry)
from mobility.audit.models import AuditLog, SystemAuditLog
from mobility.authz.rules import ROW_RULES
from mobility.core import audit, db, files
from mobility.core.global_keys import install_global_keys
from mobility.core.tenancy import ScopedSession


class AppSession(ScopedSession):
    row_rules = ROW_RULES


audit.install_trail(AppSession, AuditLog, SystemAuditLog)
install_global_keys(AppSession)
files.install_file_lifecycle(AppSession)
db.install_sqlite_row_locks(AppSession)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions of AppSession on `engine`: tenant-scoped, row-filtered and audited."""
    return db.create_sessionmaker(engine, AppSession)
