"""Operator tasks on accounts, run from the CLI under the system scope: case twins, merging one account
into another, setting a password.

Case twins are accounts whose e-mails are equal as logins compare them (`email_key`: ICU
case-insensitive on PostgreSQL, lower() on SQLite). Revision 0013 makes them impossible and refuses to
run while any are left; `case_twins` lists them and `merge` folds one into the other.

`case_twins` and `merge` must work on a database still below 0013 (that is when they are needed) with
the models of a newer release: they use only columns that exist since 0012, through Core statements on
the tables, and move references by the foreign keys to `users.id` that the models declare AND the
database has. Core statements bypass the ORM's audit hook, so `merge` writes its audit rows itself.

Merge rules (`merge(keep, drop)`), all in the caller's one transaction, checks before any change:
- only case twins merge, and never an account with itself;
- memberships: DROP's membership of a tenant where KEEP is not a member moves to KEEP (primary only if
  KEEP has no primary tenant); where both are members KEEP's membership and role stay and DROP's is
  deleted: a merge never raises anyone's rights; a tenant's Admin changes the role afterwards;
- the account itself (password, two-factor, status, global role, name) is KEEP's;
- DROP's sessions end (deleted: their user goes); DROP's pending invitations are withdrawn (deleted):
  their token would otherwise set KEEP's password;
- every other reference to DROP (createdBy/updatedBy, activity_logs, notifications, candidate / agent
  / broker logins, accepted invitations, ...) points at KEEP; a unique key that would then hold two
  rows for KEEP (e.g. both accounts linked to a candidate record of one tenant) refuses the merge;
- audit_logs are append-only (on PostgreSQL by trigger, 0009) and are not rewritten: the old rows keep
  DROP's id, and new audit rows record the merge (action `user.merge`): one per tenant whose
  membership changed (in that tenant's trail), and one installation-wide (no tenant: in
  system_audit_logs from 0015, audit_logs before) with DROP's row as it was and every moved
  reference, which maps DROP to KEEP for anyone reading the old rows;
- DROP is deleted; the activity log records `account_merged` for KEEP.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Index,
    Table,
    UniqueConstraint,
    and_,
    delete,
    func,
    insert,
    inspect,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.audit.models import ActivityLog, AuditLog, SystemAuditLog
from mobility.auth.activity import record_activity
from mobility.auth.credentials import normalise_email
from mobility.auth.models import LoginThrottle, Session
from mobility.auth.sessions import revoke_all_sessions
from mobility.auth.throttling import account_key
from mobility.core import audit, security
from mobility.core.errors import InvalidInput
from mobility.core.models import new_id, utcnow
from mobility.core.scope import require_scope
from mobility.roles.models import Role
from mobility.tenants.models import Tenant
from mobility.users import service as users_service
from mobility.users.models import User, UserInvitation, UserTenant, email_key

USERS = User.__table__
MEMBERSHIPS = UserTenant.__table__
SESSIONS = Session.__table__
INVITATIONS = UserInvitation.__table__
MERGE_ACTION = "user.merge"


class AccountError(Exception):
    """A refusal with a one-line message for the operator; nothing was changed."""


@dataclass
class Account:
    id: uuid.UUID
    email: str
    status: str
    last_login_at: datetime | None
    created_at: datetime
    memberships: int
    tenant_id: uuid.UUID | None = None
    role_id: uuid.UUID | None = None


_ACCOUNT_COLUMNS = (
    USERS.c.id,
    USERS.c.email,
    USERS.c.status,
    USERS.c.lastLoginAt,
    USERS.c.createdAt,
    USERS.c.tenantId,
    USERS.c.roleId,
)


def _membership_count():
    return (
        select(func.count())
        .select_from(MEMBERSHIPS)
        .where(MEMBERSHIPS.c.userId == USERS.c.id)
        .scalar_subquery()
        .label("memberships")
    )


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        email=row.email,
        status=row.status,
        last_login_at=row.lastLoginAt,
        created_at=row.createdAt,
        memberships=row.memberships,
        tenant_id=row.tenantId,
        role_id=row.roleId,
    )


# --- case twins -------------------------------------------------------------------------------------


async def case_twins(session: AsyncSession) -> list[list[Account]]:
    """Every group of two or more accounts whose e-mails are equal as logins compare them, oldest
    account first in each group; groups in the order of their first e-mail."""
    key = email_key(USERS.c.email)
    ranked = select(
        *_ACCOUNT_COLUMNS,
        _membership_count(),
        func.count().over(partition_by=key).label("twins"),
        # The group: its oldest account's id (PostgreSQL partitions under the collation itself).
        func.first_value(USERS.c.id)
        .over(partition_by=key, order_by=(USERS.c.createdAt, USERS.c.id))
        .label("group_id"),
    ).subquery()
    rows = (
        await session.execute(
            select(ranked)
            .where(ranked.c.twins > 1)
            .order_by(ranked.c.group_id, ranked.c.createdAt, ranked.c.id)
        )
    ).all()
    groups: dict[uuid.UUID, list[Account]] = {}
    for row in rows:
        groups.setdefault(row.group_id, []).append(_account(row))
    return sorted(groups.values(), key=lambda group: (group[0].email.lower(), str(group[0].id)))


# --- finding an account -----------------------------------------------------------------------------


async def find_account(session: AsyncSession, reference: str) -> Account:
    """The account with this id, or this e-mail: spelt exactly so, else the only one that matches it
    case-insensitively (several: the caller must say which, by id or exact spelling)."""
    base = select(*_ACCOUNT_COLUMNS, _membership_count())
    try:
        user_id = uuid.UUID(reference.strip())
    except ValueError:
        user_id = None
    if user_id is not None:
        row = (await session.execute(base.where(USERS.c.id == user_id))).one_or_none()
        if row is None:
            raise AccountError(f"no account has the id {user_id}")
        return _account(row)
    email = reference.strip()
    row = (await session.execute(base.where(USERS.c.email == email))).one_or_none()
    if row is not None:
        return _account(row)
    rows = (
        await session.execute(base.where(email_key(USERS.c.email) == normalise_email(email)).limit(2))
    ).all()
    if not rows:
        raise AccountError(f"no account has the e-mail {email!r}")
    if len(rows) > 1:
        raise AccountError(
            f"several accounts match {email!r} apart from letter case; name one by its id or its "
            "exact e-mail (see `mobility users duplicates`)"
        )
    return _account(rows[0])


# --- merging ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """A column that refers to users.id: `table.column`."""

    table: Table
    column: Column

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column.name}"


# Handled by their own rule, not moved as they are.
_OWN_RULES = {(MEMBERSHIPS.name, MEMBERSHIPS.c.userId.name), (SESSIONS.name, SESSIONS.c.userId.name)}


def references_to_users() -> list[Reference]:
    """Every column whose foreign key points at users.id, as the models declare them."""
    import mobility.models as models

    found = []
    for table in models.metadata.sorted_tables:
        for column in table.columns:
            if any(fk.column is USERS.c.id for fk in column.foreign_keys):
                found.append(Reference(table, column))
    return sorted(found, key=lambda reference: reference.name)


async def _existing_columns(session: AsyncSession) -> dict[str, set[str]]:
    """The tables and columns the database has (it may be below the models' revision)."""

    def read(sync_session) -> dict[str, set[str]]:
        inspector = inspect(sync_session.connection())
        return {
            table: {column["name"] for column in inspector.get_columns(table)}
            for table in inspector.get_table_names()
        }

    return await session.run_sync(read)


def _unique_keys(table: Table, column: Column) -> list[list[Column]]:
    """The unique keys of `table` (constraints and plain-column indexes) that include `column`."""
    keys = []
    for item in (*table.constraints, *table.indexes):
        if isinstance(item, UniqueConstraint) or (isinstance(item, Index) and item.unique):
            columns = list(item.columns)
            if column in columns and all(
                isinstance(e, Column) for e in getattr(item, "expressions", columns)
            ):
                keys.append(columns)
    return keys


@dataclass
class MergePlan:
    keep: Account
    drop: Account
    memberships_moved: list[str] = field(default_factory=list)  # tenant codes
    memberships_dropped: list[str] = field(default_factory=list)  # tenant codes (KEEP's role kept)
    references: dict[str, int] = field(default_factory=dict)  # table.column -> rows pointing at DROP
    live_sessions: int = 0
    pending_invitations: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class MergeReport(MergePlan):
    moved: dict[str, list[str]] = field(default_factory=dict)  # table.column -> ids of the rows moved


async def _memberships(session: AsyncSession, user_id: uuid.UUID) -> list[Any]:
    return (
        await session.execute(
            select(
                MEMBERSHIPS.c.id,
                MEMBERSHIPS.c.tenantId,
                MEMBERSHIPS.c.roleId,
                MEMBERSHIPS.c.isPrimary,
                Tenant.__table__.c.code,
            )
            .join(Tenant.__table__)  # by the membership's foreign key
            .where(MEMBERSHIPS.c.userId == user_id)
            .order_by(Tenant.__table__.c.code)
        )
    ).all()


async def plan_merge(session: AsyncSession, keep_reference: str, drop_reference: str) -> MergePlan:
    """What merging DROP into KEEP would do; AccountError when it must not be done. Changes nothing."""
    keep = await find_account(session, keep_reference)
    drop = await find_account(session, drop_reference)
    if keep.id == drop.id:
        raise AccountError(f"KEEP and DROP are the same account ({keep.email}, {keep.id})")
    # Twins as the database compares them: both e-mails fall in one group of email_key.
    groups = (
        (
            await session.execute(
                select(func.count())
                .select_from(USERS)
                .where(USERS.c.id.in_([keep.id, drop.id]))
                .group_by(email_key(USERS.c.email))
            )
        )
        .scalars()
        .all()
    )
    if groups != [2]:
        raise AccountError(
            f"{keep.email} and {drop.email} are different e-mail addresses, not case twins; "
            "only accounts whose e-mails differ in letter case alone can be merged"
        )
    plan = MergePlan(keep, drop)
    kept_tenants = {row.tenantId for row in await _memberships(session, keep.id)}
    for row in await _memberships(session, drop.id):
        (plan.memberships_dropped if row.tenantId in kept_tenants else plan.memberships_moved).append(
            row.code
        )
    now = utcnow()
    plan.live_sessions = (
        await session.execute(
            select(func.count())
            .select_from(SESSIONS)
            .where(SESSIONS.c.userId == drop.id, SESSIONS.c.revokedAt.is_(None), SESSIONS.c.expiresAt > now)
        )
    ).scalar_one()
    plan.pending_invitations = (
        await session.execute(
            select(func.count())
            .select_from(INVITATIONS)
            .where(INVITATIONS.c.userId == drop.id, INVITATIONS.c.acceptedAt.is_(None))
        )
    ).scalar_one()
    existing = await _existing_columns(session)
    for reference in references_to_users():
        if reference.column.name not in existing.get(reference.table.name, ()):
            continue  # a later revision's: the database does not have it yet
        if (reference.table.name, reference.column.name) in _OWN_RULES:
            continue
        count = (
            await session.execute(
                select(func.count()).select_from(reference.table).where(reference.column == drop.id)
            )
        ).scalar_one()
        if count:
            plan.references[reference.name] = count
            await _refuse_unique_clash(session, reference, keep.id, drop.id, existing)
    if drop.role_id is not None and drop.role_id != keep.role_id:
        role = (
            await session.execute(select(Role.__table__.c.name).where(Role.__table__.c.id == drop.role_id))
        ).scalar()
        plan.warnings.append(
            f"{drop.email} holds the global role {role!r}, which {keep.email} does not; it is not carried over"
        )
    if keep.status != "active" and drop.status == "active":
        plan.warnings.append(
            f"the account kept ({keep.email}) is {keep.status}, the one dropped was active; "
            f"its password and status are the ones that stay"
        )
    return plan


async def _refuse_unique_clash(
    session: AsyncSession,
    reference: Reference,
    keep_id: uuid.UUID,
    drop_id: uuid.UUID,
    existing: dict[str, set[str]],
) -> None:
    """Moving DROP's rows to KEEP must not give a unique key two rows (e.g. both accounts linked to
    candidate records of one tenant)."""
    table = reference.table
    for key in _unique_keys(table, reference.column):
        if not all(column.name in existing.get(table.name, ()) for column in key):
            continue
        mine = table.alias("kept")
        others = [column for column in key if column is not reference.column]
        clash = (
            select(table.c.id, mine.c.id)
            .join(mine, and_(true(), *(mine.c[column.key] == column for column in others)))
            .where(reference.column == drop_id, mine.c[reference.column.key] == keep_id)
            .limit(1)
        )
        row = (await session.execute(clash)).first()
        if row is not None:
            raise AccountError(
                f"both accounts are linked through {reference.name} to rows that may only have one "
                f"({table.name} {row[1]} for KEEP, {row[0]} for DROP, same {', '.join(c.name for c in others)}); "
                "unlink one of them first"
            )


def _membership_key(row: Any) -> tuple[Any, ...]:
    """A membership by its primary key, (tenantId, id) since 0015 (one shard under Citus): both
    columns exist at every revision `merge` works from."""
    return (MEMBERSHIPS.c.tenantId == row.tenantId, MEMBERSHIPS.c.id == row.id)


async def _write_audit_rows(
    session: AsyncSession, rows: list[dict[str, Any]], existing: dict[str, set[str]]
) -> None:
    """The merge's audit rows (by column name): a tenant's into audit_logs; the installation-wide
    one into system_audit_logs, or, below 0015 (no such table yet), into audit_logs without a tenant."""
    system_trail = SystemAuditLog.__table__
    in_tenants = [row for row in rows if row["tenantId"] is not None or system_trail.name not in existing]
    installation = [
        {key: value for key, value in row.items() if key != "tenantId"}
        for row in rows
        if row["tenantId"] is None and system_trail.name in existing
    ]
    if in_tenants:
        await session.execute(insert(AuditLog.__table__), in_tenants)
    if installation:
        await session.execute(insert(system_trail), installation)


def _redacted_row(row: dict[str, Any]) -> dict[str, Any]:
    secret_columns = {User.__mapper__.attrs[key].columns[0].name for key in User.__audit_redact__}
    return {
        name: (audit.REDACTED if name in secret_columns and value is not None else audit._json_safe(value))
        for name, value in row.items()
    }


async def merge(session: AsyncSession, keep_reference: str, drop_reference: str) -> MergeReport:
    """Fold DROP into KEEP (see the module doc for the rules), in the caller's transaction."""
    scope = require_scope(session)
    # Both rows locked first (PostgreSQL): a login of either waits until the merge is done.
    for reference in (keep_reference, drop_reference):
        account = await find_account(session, reference)
        await session.execute(select(USERS.c.id).where(USERS.c.id == account.id).with_for_update())
    plan = await plan_merge(session, keep_reference, drop_reference)
    report = MergeReport(**vars(plan))
    keep, drop, now = plan.keep, plan.drop, utcnow()
    audit_rows: list[dict[str, Any]] = []
    existing = await _existing_columns(session)
    columns = [column for column in USERS.c if column.name in existing[USERS.name]]
    dropped_row = (await session.execute(select(*columns).where(USERS.c.id == drop.id))).mappings().one()
    dropped_before = _redacted_row(dict(dropped_row))

    def audit_row(tenant_id: uuid.UUID | None, before: dict | None, after: dict) -> None:
        audit_rows.append(
            {
                "id": new_id(),
                "tenantId": tenant_id,
                "actorId": scope.actor_id,
                "action": MERGE_ACTION,
                "entityType": USERS.name,
                "entityId": drop.id,
                "before": before,
                "after": after,
                "ipAddress": scope.ip_address,
                "requestId": scope.request_id,
                "createdAt": now,
            }
        )

    # Memberships: moved where KEEP is not a member, else DROP's deleted (KEEP's role stays).
    kept = {row.tenantId: row for row in await _memberships(session, keep.id)}
    keep_has_primary = any(row.isPrimary for row in kept.values())
    for row in await _memberships(session, drop.id):
        if row.tenantId in kept:
            await session.execute(delete(MEMBERSHIPS).where(*_membership_key(row)))
            after = {
                "mergedInto": str(keep.id),
                "membership": "deleted; the kept account's stays",
                "keptRoleId": str(kept[row.tenantId].roleId),
                "droppedRoleId": str(row.roleId),
            }
        else:
            primary = bool(row.isPrimary) and not keep_has_primary
            await session.execute(
                update(MEMBERSHIPS)
                .where(*_membership_key(row))
                .values(userId=keep.id, isPrimary=primary, updatedAt=now)
            )
            after = {
                "mergedInto": str(keep.id),
                "membership": "moved",
                "roleId": str(row.roleId),
                "isPrimary": primary,
            }
            if primary and keep.tenant_id is None:
                await session.execute(
                    update(USERS).where(USERS.c.id == keep.id).values(tenantId=row.tenantId)
                )
        audit_row(row.tenantId, {"userId": str(drop.id), "membershipId": str(row.id)}, after)

    # Sessions end with their user; pending invitations are withdrawn (their token is a credential).
    await session.execute(delete(SESSIONS).where(SESSIONS.c.userId == drop.id))
    withdrawn = (
        (
            await session.execute(
                delete(INVITATIONS)
                .where(INVITATIONS.c.userId == drop.id, INVITATIONS.c.acceptedAt.is_(None))
                .returning(INVITATIONS.c.id)
            )
        )
        .scalars()
        .all()
    )

    # Every other reference, as the models declare them and the database has them.
    for reference in references_to_users():
        if (reference.table.name, reference.column.name) in _OWN_RULES:
            continue
        if reference.column.name not in existing.get(reference.table.name, ()):
            continue
        moved = (
            (
                await session.execute(
                    update(reference.table)
                    .where(reference.column == drop.id)
                    .values({reference.column.key: keep.id})
                    .returning(reference.table.c.id)
                )
            )
            .scalars()
            .all()
        )
        if moved:
            report.moved[reference.name] = sorted(str(row_id) for row_id in moved)

    await session.execute(delete(USERS).where(USERS.c.id == drop.id))
    audit_row(
        None,
        dropped_before,
        {
            "mergedInto": str(keep.id),
            "keptEmail": keep.email,
            "membershipsMoved": plan.memberships_moved,
            "membershipsDeleted": plan.memberships_dropped,
            "invitationsWithdrawn": [str(row_id) for row_id in withdrawn],
            "sessionsEnded": plan.live_sessions,
            "references": report.moved,
        },
    )
    await _write_audit_rows(session, audit_rows, existing)
    await session.execute(
        insert(ActivityLog.__table__).values(
            id=new_id(),
            userId=keep.id,
            action="account_merged",
            details={
                "mergedFrom": str(drop.id),
                "mergedEmail": drop.email,
                "sessionsEnded": plan.live_sessions,
                "by": "mobility users merge",
            },
            ipAddress=scope.ip_address,
            createdAt=now,
        )
    )
    return report


# --- setting a password -----------------------------------------------------------------------------


@dataclass
class PasswordSet:
    email: str
    activated: bool
    status: str
    sessions_ended: int
    tenants_joined: int


async def set_password(session: AsyncSession, reference: str, password: str) -> PasswordSet:
    """For an operator who lost the password (of the only admin, say): the password policy applies; an
    `invited` account becomes active and joins the tenants whose invitations created it (their token no
    longer sets a password; other tenants' invitations wait for its owner); a suspended one stays
    suspended; every session of the account ends; the login
    throttle of the account starts afresh. Audited (hash redacted) and in the activity log."""
    scope = require_scope(session)
    account = await find_account(session, reference)
    user = (await session.execute(select(User).where(User.id == account.id).with_for_update())).scalar_one()
    try:
        security.check_password_strength(password, email=user.email)
    except InvalidInput as exc:
        raise AccountError(f"password refused: {exc.detail}") from None
    now = utcnow()
    user.password_hash = security.hash_password(password)
    user.password_changed_at = now
    activated = user.status == "invited"
    joined = 0
    if activated:
        user.status = "active"
        # As the token would have: the invitations that created the account are accepted (so the
        # account joins its tenants and can log in), and their token no longer sets a password.
        joined = await users_service.join_invitations_of_new_account(session, user)
    await audit.flush_as(session, "user.set_password", conflict="The account changed meanwhile.")
    ended = await revoke_all_sessions(session, user.id)
    await session.execute(delete(LoginThrottle).where(LoginThrottle.key == account_key(user.email)))
    record_activity(
        session,
        "password_set_by_operator",
        user_id=user.id,
        ip=scope.ip_address,
        by="mobility users set-password",
        sessions_ended=ended,
        activated=activated,
    )
    await session.flush()
    return PasswordSet(user.email, activated, user.status, ended, joined)


def describe_accounts(accounts: Sequence[Account]) -> list[str]:
    """One line per account, for the CLI."""

    def when(moment: datetime | None) -> str:
        return moment.strftime("%Y-%m-%d %H:%M") if moment else "never"

    return [
        f"{account.id}  {account.email}  {account.status}  last login {when(account.last_login_at)}  "
        f"created {when(account.created_at)}  memberships {account.memberships}"
        for account in accounts
    ]
