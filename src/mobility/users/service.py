"""Users of a tenant (Admin): invite, rename, suspend and reactivate, reset 2FA, assign the role held in
the tenant, remove from the tenant; and accepting an invitation (public, with its token).

Rules on top of the permission matrix (each a named check below):
- Nobody hands out, or acts on a holder of, rights they do not hold themselves: only a System Admin
  grants "System Admin", and an Admin cannot suspend, reset or remove a System Admin
  (`_ensure_may_manage`, `_grantable_role`).
- The account (name, status, two-factor, primary tenant) is shared by every tenant the user belongs
  to: an Admin changes it only for users who belong to no other tenant; a System Admin always
  (`_ensure_account_here_only`). Otherwise one institute could lock a person out of another.
- A tenant keeps at least one active Admin, and nobody suspends, resets or removes themselves here
  (`_ensure_not_last_admin`, `_ensure_not_self`).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, bindparam, false, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from mobility.auth import service as auth_service
from mobility.core import audit, security
from mobility.core.db import lock_for_transaction
from mobility.core.errors import AppError, Conflict, Forbidden, InvalidInput, NotFound
from mobility.core.models import new_id, utcnow
from mobility.core.pagination import PageParams, contains, paginate, text_key, time_key
from mobility.core.permissions import MATRIX, SystemRole
from mobility.core.reads import Read
from mobility.core.tenancy import Scope, across_tenants, apply_to_database, require_scope, tenant_view
from mobility.roles import service as roles_service
from mobility.roles.models import Role
from mobility.settings import service as settings_service
from mobility.users.models import User, UserInvitation, UserTenant, user_by_email

INVITATION_TOKEN_BYTES = 32  # 256 bits

USER_SORT_KEYS = {"email": text_key(User.email), "createdAt": time_key(User.created_at)}


class LastAdmin(Conflict):
    code, title = "last_admin", "The tenant's last active Admin"


class OwnAccount(Conflict):
    code, title = "own_account", "Not on your own account"


class AlreadyMember(Conflict):
    code, title = "already_member", "Already a member of this tenant"


class AccountShared(Forbidden):
    code, title = "account_in_other_tenants", "The account also belongs to other tenants"


class InvitationNotFound(NotFound):
    code, title = "invitation_not_found", "No such invitation"


class InvitationUnusable(AppError):
    status, code, title = 410, "invitation_unusable", "The invitation can no longer be used"


@dataclass
class Member:
    """A user as a member of the current tenant: the account, the membership and its role."""

    user: User
    membership: UserTenant
    role: Role
    is_system_admin: bool = False

    id = property(lambda self: self.user.id)
    email = property(lambda self: self.user.email)
    name = property(lambda self: self.user.name)
    status = property(lambda self: self.user.status)
    two_factor_enabled = property(lambda self: self.user.two_factor_enabled)
    last_login_at = property(lambda self: self.user.last_login_at)
    created_at = property(lambda self: self.user.created_at)
    updated_at = property(lambda self: self.user.updated_at)
    role_id = property(lambda self: self.role.id)
    role_name = property(lambda self: self.role.name)
    is_primary = property(lambda self: self.membership.is_primary)


@dataclass
class Invited:
    user: Member
    invitation: UserInvitation | None = None
    token: str | None = None


# --- reading --------------------------------------------------------------------------------------


async def _system_role(session: AsyncSession, role: SystemRole) -> Role | None:
    return (
        await session.execute(
            select(Role).where(Role.name == role.value, Role.tenant_id.is_(None), Role.system_role)
        )
    ).scalar_one_or_none()


# The global role of an account (System Admin), next to the role it holds in this tenant.
_GlobalRole = aliased(Role, name="global_role")


def _is_system_admin(global_role_name: str | None) -> bool:
    return global_role_name == SystemRole.system_admin


async def _members(session: AsyncSession, users: list[User]) -> list[Member]:
    """`users` with their membership in the current tenant and its role (in the same order)."""
    if not users:
        return []
    with tenant_view(session):
        rows = (
            await session.execute(
                select(UserTenant, Role, _GlobalRole.name)
                .join(Role, Role.id == UserTenant.role_id)
                .join(User, User.id == UserTenant.user_id)
                .outerjoin(_GlobalRole, and_(_GlobalRole.id == User.role_id, _GlobalRole.system_role))
                .where(UserTenant.user_id.in_([user.id for user in users]))
            )
        ).all()
    by_user = {membership.user_id: (membership, role, global_name) for membership, role, global_name in rows}
    return [
        Member(
            user,
            by_user[user.id][0],
            by_user[user.id][1],
            is_system_admin=_is_system_admin(by_user[user.id][2]),
        )
        for user in users
        if user.id in by_user
    ]


async def list_users(
    session: AsyncSession,
    *,
    params: PageParams,
    status: str | None = None,
    role_id: uuid.UUID | None = None,
    q: str | None = None,
) -> tuple[list[Member], str | None]:
    """The members of the current tenant."""
    statement = select(User).join(UserTenant, UserTenant.user_id == User.id)
    if status:
        statement = statement.where(User.status == status)
    if role_id:
        statement = statement.where(UserTenant.role_id == role_id)
    if q:
        statement = statement.where(contains(User.email, User.name, text=q))
    with tenant_view(session):
        users, next_cursor = await paginate(
            session,
            statement,
            params=params,
            sort_keys=USER_SORT_KEYS,
            default_sort="email",
            id_column=User.id,
        )
    return await _members(session, users), next_cursor


# GET /users/{id}, the hot path of bench/auth.py: the member as UserRead shows it, in one compiled
# statement (core.reads). `get_member` below reads the same rows as ORM objects, for changing them.
_MEMBER_READ = Read(
    lambda: (
        select(
            User.id,
            User.email,
            User.name,
            User.status,
            User.two_factor_enabled,
            Role.id.label("roleId"),
            Role.name.label("roleName"),
            UserTenant.is_primary,
            func.coalesce(_GlobalRole.name == SystemRole.system_admin.value, false()).label("isSystemAdmin"),
            User.last_login_at,
            User.created_at,
            User.updated_at,
        )
        .join(UserTenant, UserTenant.user_id == User.id)
        .join(Role, Role.id == UserTenant.role_id)
        .outerjoin(_GlobalRole, and_(_GlobalRole.id == User.role_id, _GlobalRole.system_role))
        .where(User.id == bindparam("user_id"))
    )
)


async def read_member(session: AsyncSession, user_id: uuid.UUID) -> dict:
    """A member of the current tenant, as UserRead shows it; 404 for anyone else."""
    with tenant_view(session):
        member = await _MEMBER_READ.one(session, user_id=user_id)
    if member is None:
        raise NotFound("No such user.")
    return member


async def get_member(session: AsyncSession, user_id: uuid.UUID) -> Member:
    """A member of the current tenant, to change; 404 for anyone else (including users of other tenants).

    The membership row stays locked until the transaction ends: changes of one member take turns, and
    each sees the one before it (two removals at once: the second finds no member, 404)."""
    with tenant_view(session):
        row = (
            await session.execute(
                select(User, UserTenant, Role, _GlobalRole.name)
                .join(UserTenant, UserTenant.user_id == User.id)
                .join(Role, Role.id == UserTenant.role_id)
                .outerjoin(_GlobalRole, and_(_GlobalRole.id == User.role_id, _GlobalRole.system_role))
                .where(User.id == user_id)
                .with_for_update(of=UserTenant)
                .execution_options(populate_existing=True)
            )
        ).one_or_none()
    if row is None:
        raise NotFound("No such user.")
    user, membership, role, global_name = row
    return Member(user, membership, role, is_system_admin=_is_system_admin(global_name))


# --- the rules --------------------------------------------------------------------------------------


def _rights_of(member: Member) -> frozenset[str]:
    rights = roles_service.granted_by(member.role)
    return rights | MATRIX[SystemRole.system_admin] if member.is_system_admin else rights


def _ensure_may_manage(scope: Scope, member: Member) -> None:
    roles_service.ensure_caller_holds(scope, _rights_of(member), "This user's role")


async def _grantable_role(session: AsyncSession, scope: Scope, role_id: uuid.UUID) -> Role:
    role = await roles_service.get_role(session, role_id, field_name="roleId")
    roles_service.ensure_caller_holds(scope, roles_service.granted_by(role), f"The role {role.name!r}")
    return role


def _ensure_not_self(scope: Scope, member: Member, what: str) -> None:
    if member.id == scope.actor_id:
        raise OwnAccount(f"You cannot {what} your own account here.")


async def _all_tenants(session: AsyncSession, user_id: uuid.UUID) -> set[uuid.UUID]:
    """Every tenant the user belongs to (a look across tenants)."""
    async with across_tenants(session):
        return set(
            (
                await session.execute(select(UserTenant.tenant_id).where(UserTenant.user_id == user_id))
            ).scalars()
        )


async def _ensure_account_here_only(session: AsyncSession, scope: Scope, member: Member) -> None:
    if scope.is_system_admin or scope.system:
        return
    if await _all_tenants(session, member.id) - {scope.tenant_id}:
        raise AccountShared(
            "This account also belongs to other tenants; only a System Admin can change it. "
            "You can change the role it holds here, or remove it from this tenant."
        )


async def _ensure_not_last_admin(session: AsyncSession, member: Member) -> None:
    """`member` is about to stop being an active Admin of the tenant: another one must remain."""
    if not (member.role.system_role and member.role.name == SystemRole.admin) or member.status != "active":
        return
    # Two Admins removed at once must not each count the other as the one that remains.
    await lock_for_transaction(session, f"tenant-admins:{require_scope(session).tenant_id}")
    with tenant_view(session):
        others = (
            await session.execute(
                select(func.count())
                .select_from(UserTenant)
                .join(User, User.id == UserTenant.user_id)
                .where(
                    UserTenant.role_id == member.role.id,
                    UserTenant.user_id != member.id,
                    User.status == "active",
                )
            )
        ).scalar_one()
    if not others:
        raise LastAdmin("The tenant must keep an active Admin; make someone else Admin first.")


def _touch(scope: Scope, user: User) -> None:
    if user.updated_by != scope.actor_id:
        user.updated_by = scope.actor_id


# --- writing --------------------------------------------------------------------------------------


async def _new_invitation(session: AsyncSession, user_id: uuid.UUID) -> tuple[UserInvitation, str]:
    days = await settings_service.get_value(session, settings_service.INVITATION_VALIDITY_DAYS)
    token = secrets.token_urlsafe(INVITATION_TOKEN_BYTES)
    invitation = UserInvitation(
        user_id=user_id, token_hash=auth_service.hash_token(token), expires_at=utcnow() + timedelta(days=days)
    )
    session.add(invitation)
    return invitation, token


async def invite(session: AsyncSession, *, email: str, name: str, role_id: uuid.UUID) -> Invited:
    """A new account (invited, no password) with a membership and an invitation token; or, for an
    e-mail that has an account already, a membership (and a fresh invitation if it was never set up)."""
    scope = require_scope(session)
    email = auth_service.normalise_email(email)
    role = await _grantable_role(session, scope, role_id)
    grants_system_admin = role.system_role and role.name == SystemRole.system_admin
    # Accounts are installation-wide: whether the e-mail has one, and where, is a look across tenants.
    async with across_tenants(session):
        user = (await session.execute(user_by_email(email))).scalars().first()
        if user is not None:
            tenants = set(
                (
                    await session.execute(select(UserTenant.tenant_id).where(UserTenant.user_id == user.id))
                ).scalars()
            )
    if user is None:
        return await _invite_new(
            session, scope, email=email, name=name, role=role, system_admin=grants_system_admin
        )
    if scope.tenant_id in tenants:
        raise AlreadyMember(f"{email} is a member of this tenant already.")
    membership = UserTenant(
        user_id=user.id, tenant_id=scope.tenant_id, role_id=role.id, is_primary=not tenants
    )
    session.add(membership)
    invitation = token = None
    if user.status == "invited":
        invitation, token = await _new_invitation(session, user.id)
    await audit.flush_as(session, "user.invite", conflict=f"{email} is a member of this tenant already.")
    # Only now a member (and so visible here): the account's own changes, if any, come second.
    if grants_system_admin:
        user.role_id = role.id
    if membership.is_primary:
        user.tenant_id = scope.tenant_id
    if session.is_modified(user):
        _touch(scope, user)
        await audit.flush_as(
            session, "user.invite", conflict="The account changed meanwhile.", reread=(user,)
        )
    return Invited((await _members(session, [user]))[0], invitation, token)


async def _invite_new(
    session: AsyncSession, scope: Scope, *, email: str, name: str, role: Role, system_admin: bool
) -> Invited:
    user = User(
        id=new_id(),
        email=email,
        name=name,
        status="invited",
        password_hash=None,
        # The primary tenant: the one that invited them.
        tenant_id=scope.tenant_id,
        role_id=role.id if system_admin else None,
        created_by=scope.actor_id,
        updated_by=scope.actor_id,
    )
    membership = UserTenant(user_id=user.id, tenant_id=scope.tenant_id, role_id=role.id, is_primary=True)
    session.add_all([user, membership])
    invitation, token = await _new_invitation(session, user.id)
    await audit.flush_as(session, "user.invite", conflict=f"{email} has an account already.", reread=(user,))
    return Invited(Member(user, membership, role, is_system_admin=system_admin), invitation, token)


async def update_user(session: AsyncSession, user_id: uuid.UUID, *, name: str | None = None) -> Member:
    scope = require_scope(session)
    member = await get_member(session, user_id)
    if name is None or name == member.user.name:
        return member
    if member.id != scope.actor_id:
        _ensure_may_manage(scope, member)
        await _ensure_account_here_only(session, scope, member)
    member.user.name = name
    _touch(scope, member.user)
    await audit.flush_as(
        session, "user.update", conflict="The account changed meanwhile.", reread=(member.user,)
    )
    return member


async def suspend(session: AsyncSession, user_id: uuid.UUID) -> Member:
    """Suspended: cannot log in, and every session of theirs ends now. Again: nothing changes."""
    scope = require_scope(session)
    member = await get_member(session, user_id)
    _ensure_not_self(scope, member, "suspend")
    _ensure_may_manage(scope, member)
    await _ensure_account_here_only(session, scope, member)
    if member.status == "suspended":
        return member
    await _ensure_not_last_admin(session, member)
    member.user.status = "suspended"
    _touch(scope, member.user)
    await audit.flush_as(
        session, "user.suspend", conflict="The account changed meanwhile.", reread=(member.user,)
    )
    await _end_sessions(session, scope, member, "suspended")
    return member


async def reactivate(session: AsyncSession, user_id: uuid.UUID) -> Member:
    """Back to active (or to invited, if they never set a password). Not suspended: nothing changes."""
    scope = require_scope(session)
    member = await get_member(session, user_id)
    _ensure_may_manage(scope, member)
    await _ensure_account_here_only(session, scope, member)
    if member.status != "suspended":
        return member
    member.user.status = "active" if member.user.password_hash else "invited"
    _touch(scope, member.user)
    await audit.flush_as(
        session, "user.reactivate", conflict="The account changed meanwhile.", reread=(member.user,)
    )
    return member


async def reset_two_factor(session: AsyncSession, user_id: uuid.UUID) -> Member:
    """Two-factor off (secret and recovery codes gone) and every session ended: the user logs in with
    the password alone and sets two-factor up again. One's own: /me/2fa/disable (with re-authentication)."""
    scope = require_scope(session)
    member = await get_member(session, user_id)
    _ensure_not_self(scope, member, "reset two-factor authentication of")
    _ensure_may_manage(scope, member)
    await _ensure_account_here_only(session, scope, member)
    user = member.user
    auth_service.clear_two_factor(user)
    if session.is_modified(user):
        _touch(scope, user)
        await audit.flush_as(
            session, "user.reset_2fa", conflict="The account changed meanwhile.", reread=(user,)
        )
    await _end_sessions(session, scope, member, "two_factor_reset")
    return member


async def _end_sessions(session: AsyncSession, scope: Scope, member: Member, reason: str) -> None:
    ended = await auth_service.revoke_all_sessions(session, member.id)
    auth_service.record_activity(
        session,
        f"sessions_ended_{reason}",
        user_id=member.id,
        ip=scope.ip_address,
        by=str(scope.actor_id),
        sessions_ended=ended,
    )


async def set_membership(
    session: AsyncSession, user_id: uuid.UUID, *, role_id: uuid.UUID, is_primary: bool | None = None
) -> Member:
    """The role the user holds in the current tenant, and optionally make it their primary tenant."""
    scope = require_scope(session)
    member = await get_member(session, user_id)
    role = await _grantable_role(session, scope, role_id)
    _ensure_may_manage(scope, member)
    membership, user = member.membership, member.user
    if is_primary is False and membership.is_primary:
        raise InvalidInput(
            "A membership stops being primary when another becomes primary.", field="isPrimary"
        )
    if role.id != member.role.id:
        await _ensure_not_last_admin(session, member)
        system_admin = await _system_role(session, SystemRole.system_admin)
        # "System Admin" is global: held here, the account holds it everywhere; taken away here, too.
        if system_admin is not None and role.id == system_admin.id:
            user.role_id = role.id
        elif (
            system_admin is not None and user.role_id == system_admin.id and member.role.id == system_admin.id
        ):
            user.role_id = None
        membership.role_id = role.id
    if is_primary and not membership.is_primary:
        await _ensure_account_here_only(session, scope, member)
        async with across_tenants(session):
            others = (
                await session.execute(
                    select(UserTenant).where(
                        UserTenant.user_id == user.id, UserTenant.is_primary, UserTenant.id != membership.id
                    )
                )
            ).scalars()
            for other in others:
                other.is_primary = False
            membership.is_primary = True
            user.tenant_id = scope.tenant_id
            _touch(scope, user)
            # Written under the same wider view: the other tenants' memberships are theirs.
            await audit.flush_as(
                session, "membership.update", conflict="The memberships changed meanwhile.", reread=(user,)
            )
    else:
        changed = session.is_modified(user)
        if changed:
            _touch(scope, user)
        await audit.flush_as(
            session,
            "membership.update",
            conflict="The memberships changed meanwhile.",
            reread=(user,) if changed else (),
        )
    return (await _members(session, [user]))[0]


async def remove_membership(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Out of the current tenant (their invitations to it go too); the account itself stays."""
    scope = require_scope(session)
    member = await get_member(session, user_id)
    _ensure_not_self(scope, member, "remove")
    _ensure_may_manage(scope, member)
    await _ensure_not_last_admin(session, member)
    if member.membership.is_primary and member.user.tenant_id is not None:
        # No longer their primary tenant. Changed while still a member (and so visible here).
        member.user.tenant_id = None
        _touch(scope, member.user)
        await audit.flush_as(session, "membership.remove", conflict="The account changed meanwhile.")
    pending = (
        await session.execute(
            select(UserInvitation).where(
                UserInvitation.user_id == member.id, UserInvitation.accepted_at.is_(None)
            )
        )
    ).scalars()
    for invitation in pending:
        await session.delete(invitation)
    await session.delete(member.membership)
    await audit.flush_as(session, "membership.remove", conflict="The membership changed meanwhile.")


# --- accepting an invitation (no login: the token is the credential) --------------------------------


async def accept_invitation(
    session: AsyncSession, *, token: str, password: str, ip: str | None = None, request_id: str | None = None
) -> User:
    """Set the password with the invitation's token: the account becomes active. Once per token."""
    await apply_to_database(session, Scope.for_system(ip_address=ip, request_id=request_id))
    now = utcnow()
    # Locked: of two requests with one token, the second waits and then finds it used.
    invitation = (
        await session.execute(
            select(UserInvitation)
            .where(UserInvitation.token_hash == auth_service.hash_token(token))
            .with_for_update()
        )
    ).scalar_one_or_none()
    if invitation is None:
        raise InvitationNotFound("This invitation does not exist; check the link.")
    if invitation.accepted_at is not None:
        raise InvitationUnusable("This invitation was used already; log in instead.")
    if invitation.expires_at <= now:
        raise InvitationUnusable("This invitation has expired; ask for a new one.")
    user = (await session.execute(select(User).where(User.id == invitation.user_id))).scalar_one()
    if user.status != "invited":
        raise InvitationUnusable(
            "This account is set up already; log in instead."
            if user.status == "active"
            else f"This account is {user.status}."
        )
    try:
        security.check_password_strength(password, email=user.email)
    except InvalidInput as exc:
        raise InvalidInput(exc.detail, field="password") from None
    # From here the invitee acts, in the tenant that invited them (the trail says so).
    await apply_to_database(
        session,
        Scope.for_system(
            actor_id=user.id, tenant_id=invitation.tenant_id, ip_address=ip, request_id=request_id
        ),
    )
    user.password_hash = security.hash_password(password)
    user.password_changed_at = now
    user.status = "active"
    user.updated_by = user.id
    invitation.accepted_at = now
    auth_service.record_activity(session, "invitation_accepted", user_id=user.id, ip=ip)
    await audit.flush_as(session, "invitation.accept", conflict="The invitation was used meanwhile.")
    return user
