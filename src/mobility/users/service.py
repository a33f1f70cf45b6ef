"""Users of a tenant (Admin): invite, suspend and reactivate their access, reset 2FA, assign the role
held in the tenant, remove from the tenant; the invitee's side of invitations (accept or decline,
logged in; or set a new account's first password with its token); account-wide changes (System Admin).

Rules on top of the permission matrix (each a named check below):
- Membership by consent. An invitation never gives access by itself: the membership is made when the
  invitee accepts. Only an invitation that creates the account carries a token (it sets the first
  password, and reaches only the address's owner); an e-mail that has an account, in any status, gets
  a pending invitation its owner accepts or declines logged in, and the account is not touched. The
  inviting tenant learns nothing about an account it does not hold: the answer is the same pending
  invitation either way, showing what the Admin typed (`invite`).
- A tenant controls access to itself: its Admin suspends, reactivates or removes a member's access to
  that tenant (the membership), whatever other tenants the account belongs to. The account (name,
  status) is its owner's and the System Admin's (`_ensure_may_change_account`); a 2FA reset, which is
  account-wide too, stays open to an Admin for accounts that belong to no other tenant
  (`_ensure_account_here_only`).
- Nobody hands out, or acts on a holder of, rights they do not hold themselves: only a System Admin
  grants "System Admin", and an Admin cannot suspend, reset or remove a System Admin
  (`_ensure_may_manage`, `_grantable_role`).
- A tenant keeps at least one active Admin, and nobody suspends, resets or removes themselves here
  (`_ensure_not_last_admin`, `_ensure_not_self`).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, case, false, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from mobility.auth.activity import record_activity
from mobility.auth.credentials import hash_token, normalise_email
from mobility.auth.sessions import revoke_all_sessions
from mobility.auth.two_factor import clear_two_factor, notify_two_factor_off
from mobility.authz.permissions import MATRIX, SystemRole
from mobility.core import audit, global_keys, security
from mobility.core.config import get_settings
from mobility.core.db import lock_for_transaction
from mobility.core.errors import AppError, Conflict, Forbidden, InvalidInput, NotFound
from mobility.core.models import new_id, utcnow
from mobility.core.pagination import PageParams, contains, paginate, text_key, time_key
from mobility.core.reads import Read
from mobility.core.scope import (
    Scope,
    across_tenants,
    apply_to_database,
    in_tenant,
    require_scope,
    tenant_view,
)
from mobility.notifications import service as notifications
from mobility.roles import service as roles_service
from mobility.roles.models import Role
from mobility.settings import service as settings_service
from mobility.tenants.models import Tenant
from mobility.users.models import User, UserInvitation, UserTenant, user_by_email

INVITATION_TOKEN_BYTES = 32  # 256 bits

# A member's status in the tenant: the account's when it is not active (suspended or never set up
# everywhere), otherwise the membership's (the tenant's own lock).
member_status = case((User.status != "active", User.status), else_=UserTenant.status)

USER_SORT_KEYS = {"email": text_key(User.email), "createdAt": time_key(User.created_at)}
INVITATION_SORT_KEYS = {
    "email": text_key(UserInvitation.email),
    "createdAt": time_key(UserInvitation.created_at),
}


class LastAdmin(Conflict):
    code, title = "last_admin", "The tenant's last active Admin"


class OwnAccount(Conflict):
    code, title = "own_account", "Not on your own account"


class AlreadyMember(Conflict):
    code, title = "already_member", "Already a member of this tenant"


class AlreadyInvited(Conflict):
    code, title = "already_invited", "Invited already"


class AccountShared(Forbidden):
    code, title = "account_in_other_tenants", "The account also belongs to other tenants"


class AccountNotYours(Forbidden):
    code, title = "account_wide", "Only the account's owner or a System Admin changes the account"


class InvitationNotFound(NotFound):
    title = "No such invitation"


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
    two_factor_enabled = property(lambda self: self.user.two_factor_enabled)
    last_login_at = property(lambda self: self.user.last_login_at)
    created_at = property(lambda self: self.user.created_at)
    updated_at = property(lambda self: self.user.updated_at)
    role_id = property(lambda self: self.role.id)
    role_name = property(lambda self: self.role.name)
    is_primary = property(lambda self: self.membership.is_primary)

    @property
    def status(self) -> str:
        """As member_status: the account's unless active, then the membership's."""
        return self.user.status if self.user.status != "active" else self.membership.status


@dataclass
class InvitationView:
    """An invitation as the inviting tenant sees it: what its Admin typed, the role offered, and where
    it stands. Nothing of the account it may have reached."""

    invitation: UserInvitation
    role: Role | None

    id = property(lambda self: self.invitation.id)
    email = property(lambda self: self.invitation.email)
    name = property(lambda self: self.invitation.name)
    expires_at = property(lambda self: self.invitation.expires_at)
    created_at = property(lambda self: self.invitation.created_at)
    accepted_at = property(lambda self: self.invitation.accepted_at)
    declined_at = property(lambda self: self.invitation.declined_at)
    role_id = property(lambda self: self.role.id if self.role else None)
    role_name = property(lambda self: self.role.name if self.role else None)

    @property
    def status(self) -> str:
        return invitation_status(self.invitation, utcnow())


@dataclass
class Invited:
    """The result of `invite`. `token` is set only when the invitation created the account: it is for
    the address's owner (the CLI's `users invitation-link`, later the e-mail), never for the API."""

    view: InvitationView
    token: str | None = None


@dataclass
class MyInvitation:
    """A pending invitation as its invitee sees it: which tenant, which role."""

    invitation: UserInvitation
    tenant: Tenant
    role: Role | None

    id = property(lambda self: self.invitation.id)
    tenant_id = property(lambda self: self.tenant.id)
    tenant_code = property(lambda self: self.tenant.code)
    tenant_name = property(lambda self: self.tenant.name)
    role_id = property(lambda self: self.role.id if self.role else None)
    role_name = property(lambda self: self.role.name if self.role else None)
    expires_at = property(lambda self: self.invitation.expires_at)
    created_at = property(lambda self: self.invitation.created_at)


def invitation_status(invitation: UserInvitation, now: datetime) -> str:
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.declined_at is not None:
        return "declined"
    return "expired" if invitation.expires_at <= now else "pending"


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


def _grants_system_admin(role: Role | None) -> bool:
    return role is not None and role.system_role and role.name == SystemRole.system_admin


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
        statement = statement.where(member_status == status)
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
            member_status.label("status"),
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
    if _grants_system_admin(role) and not (scope.is_system_admin or scope.system):
        # Implied by the line above (an Admin holds less than the System Admin); said once more, as
        # this is the one grant that reaches every tenant.
        raise Forbidden("Only a System Admin grants the System Admin role.")
    return role


def _ensure_not_self(scope: Scope, member: Member, what: str) -> None:
    if member.id == scope.actor_id:
        raise OwnAccount(f"You cannot {what} your own account here.")


def _ensure_may_change_account(scope: Scope, member: Member) -> None:
    """Name and account status belong to every tenant the account is in: its owner's and the System
    Admin's to change, never one tenant's Admin's (a tenant locks its own door: `suspend`)."""
    if not (scope.is_system_admin or scope.system or member.id == scope.actor_id):
        raise AccountNotYours(
            "The account is its owner's; only they or a System Admin change it. "
            "You can suspend or remove its access to this tenant."
        )


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
            "You can change the role it holds here, suspend its access here, or remove it from this tenant."
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
                    UserTenant.status == "active",
                    User.status == "active",
                )
            )
        ).scalar_one()
    if not others:
        raise LastAdmin("The tenant must keep an active Admin; make someone else Admin first.")


def _touch(scope: Scope, user: User) -> None:
    if user.updated_by != scope.actor_id:
        user.updated_by = scope.actor_id


# --- inviting -------------------------------------------------------------------------------------


async def _invitation_expiry(session: AsyncSession, tenant_id: uuid.UUID) -> datetime:
    """A full validity from now: the inviting tenant's setting (also for an operator, who sees every
    tenant's settings)."""
    with in_tenant(session, tenant_id):
        days = await settings_service.get_value(session, settings_service.INVITATION_VALIDITY_DAYS)
    return utcnow() + timedelta(days=days)


def new_invitation_token(invitation: UserInvitation) -> str:
    """A fresh token for `invitation` (its hash stored; an earlier token stops working)."""
    token = secrets.token_urlsafe(INVITATION_TOKEN_BYTES)
    invitation.token_hash = hash_token(token)
    return token


async def invite(
    session: AsyncSession, *, email: str, name: str, role_id: uuid.UUID, public_url: str | None = None
) -> Invited:
    """Invite `email` to the current tenant with a role: a pending invitation, whatever the address.

    No account yet: the account is made (invited, no password, this its primary tenant) and the
    invitation carries the token that sets its first password. An account exists, in any status: the
    invitation waits for its owner (/me/invitations), and the account is not touched. Either way the
    answer is the same pending invitation. An expired or declined invitation of this tenant to the same
    account is renewed (with a fresh token if it carries one); a pending one is a 409, as is a
    membership here already.

    The invitation is e-mailed to the typed address (queued with it, mobility.notifications): with
    the link that sets the first password when it carries a token, else a link to log in and answer
    it. Either way one e-mail to the address the Admin typed: the tenant's outbox says no more."""
    scope = require_scope(session)
    email = normalise_email(email)
    role = await _grantable_role(session, scope, role_id)
    expires_at = await _invitation_expiry(session, scope.tenant_id)
    # Accounts are installation-wide: whether the e-mail has one is a look across tenants.
    async with across_tenants(session):
        user = (await session.execute(user_by_email(email))).scalars().first()
    previous = None
    if user is not None:
        # Two invitations of one account at once: the second sees the first (no key holds it).
        await lock_for_transaction(session, f"invite:{scope.tenant_id}:{user.id}")
        # Its membership and invitations here: the tenant's own rows.
        with tenant_view(session):
            member_here = (
                await session.execute(select(UserTenant.id).where(UserTenant.user_id == user.id))
            ).first()
            if member_here is not None:
                raise AlreadyMember(f"{email} is a member of this tenant already.", field="email")
            previous = (
                await session.execute(
                    select(UserInvitation)
                    .where(UserInvitation.user_id == user.id, UserInvitation.accepted_at.is_(None))
                    .order_by(UserInvitation.created_at.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
    if previous is not None and invitation_status(previous, utcnow()) == "pending":
        raise AlreadyInvited(f"{email} has a pending invitation to this tenant already.", field="email")

    token = None
    if user is None:
        user = User(
            id=new_id(),
            email=email,
            name=name,
            status="invited",
            password_hash=None,
            # The primary tenant: the one that invited them.
            tenant_id=scope.tenant_id,
            created_by=scope.actor_id,
            updated_by=scope.actor_id,
        )
        session.add(user)
    if previous is not None:
        # Renewed: the same invitation, offered again (its token, if it has one, stays the owner's).
        invitation = previous
        invitation.role_id, invitation.email, invitation.name = role.id, email, name
        invitation.expires_at, invitation.declined_at = expires_at, None
        if invitation.token_hash is not None:
            token = new_invitation_token(invitation)  # the earlier e-mail's link stops working
    else:
        invitation = UserInvitation(
            user_id=user.id, role_id=role.id, email=email, name=name, expires_at=expires_at
        )
        if user in session.new:
            token = new_invitation_token(invitation)
        session.add(invitation)
    await audit.flush_as(session, "user.invite", conflict=f"{email} was invited meanwhile.")
    await _email_invitation(session, invitation, role, token, public_url)
    return Invited(InvitationView(invitation, role), token)


async def _email_invitation(
    session: AsyncSession, invitation: UserInvitation, role: Role, token: str | None, public_url: str | None
) -> None:
    base = (public_url or get_settings().public_url).rstrip("/")
    # The token in the fragment: browsers never send it to a server (nor to access logs).
    link = f"{base}/accept-invitation#token={token}" if token else f"{base}/invitations"
    tenant_name = (
        await session.execute(select(Tenant.name).where(Tenant.id.in_([invitation.tenant_id])))
    ).scalar_one()
    await notifications.notify(
        session,
        "account.invitation",
        {
            "tenant_name": tenant_name,
            "role_name": role.name,
            "link": link,
            "expires_at": invitation.expires_at,
        },
        recipient_email=invitation.email,
        channels=(notifications.EMAIL,),
        tenant_id=invitation.tenant_id,
    )


async def list_invitations(
    session: AsyncSession, *, params: PageParams, status: str | None = None
) -> tuple[list[InvitationView], str | None]:
    """The current tenant's invitations that were not accepted (pending, expired, declined)."""
    now = utcnow()
    statement = select(UserInvitation).where(UserInvitation.accepted_at.is_(None))
    if status == "pending":
        statement = statement.where(UserInvitation.declined_at.is_(None), UserInvitation.expires_at > now)
    elif status == "expired":
        statement = statement.where(UserInvitation.declined_at.is_(None), UserInvitation.expires_at <= now)
    elif status == "declined":
        statement = statement.where(UserInvitation.declined_at.is_not(None))
    with tenant_view(session):
        invitations, next_cursor = await paginate(
            session,
            statement,
            params=params,
            sort_keys=INVITATION_SORT_KEYS,
            default_sort="-createdAt",
            id_column=UserInvitation.id,
        )
    return await _views(session, invitations), next_cursor


async def _views(session: AsyncSession, invitations: list[UserInvitation]) -> list[InvitationView]:
    role_ids = {invitation.role_id for invitation in invitations if invitation.role_id}
    roles = {}
    if role_ids:
        roles = {
            role.id: role
            for role in (await session.execute(select(Role).where(Role.id.in_(role_ids)))).scalars()
        }
    return [InvitationView(invitation, roles.get(invitation.role_id)) for invitation in invitations]


async def revoke_invitation(session: AsyncSession, invitation_id: uuid.UUID) -> None:
    """Withdraw an invitation of the current tenant that was not accepted (its token, if any, with it)."""
    with tenant_view(session):
        invitation = (
            await session.execute(
                select(UserInvitation).where(
                    UserInvitation.id == invitation_id, UserInvitation.accepted_at.is_(None)
                )
            )
        ).scalar_one_or_none()
    if invitation is None:
        raise InvitationNotFound("No such invitation.")
    await session.delete(invitation)
    await audit.flush_as(session, "invitation.revoke", conflict="The invitation changed meanwhile.")


# --- the invitee's side ---------------------------------------------------------------------------


def _pending_for(user_id: uuid.UUID, now: datetime):
    return select(UserInvitation).where(
        UserInvitation.user_id == user_id,
        UserInvitation.accepted_at.is_(None),
        UserInvitation.declined_at.is_(None),
        UserInvitation.expires_at > now,
        UserInvitation.role_id.is_not(None),
    )


async def my_invitations(session: AsyncSession) -> list[MyInvitation]:
    """The caller's pending invitations, from every active tenant (newest first)."""
    scope = require_scope(session)
    async with across_tenants(session):
        rows = (
            await session.execute(
                _pending_for(scope.actor_id, utcnow())
                .add_columns(Role)
                .join(Role, Role.id == UserInvitation.role_id)
                .order_by(UserInvitation.created_at.desc(), UserInvitation.id)
            )
        ).all()
        tenant_ids = {invitation.tenant_id for invitation, _ in rows}
        tenants = {
            tenant.id: tenant
            for tenant in (
                await session.execute(select(Tenant).where(Tenant.id.in_(tenant_ids), Tenant.is_active))
            ).scalars()
        }
    return [
        MyInvitation(invitation, tenants[invitation.tenant_id], role)
        for invitation, role in rows
        if invitation.tenant_id in tenants
    ]


async def _my_pending(session: AsyncSession, scope: Scope, invitation_id: uuid.UUID) -> UserInvitation:
    """Inside `across_tenants`: the caller's own pending invitation to an active tenant, or 404 (anyone
    else's included)."""
    # Locked: of two requests for one invitation, the second waits and then finds it answered.
    invitation = (
        await session.execute(
            _pending_for(scope.actor_id, utcnow())
            .where(
                UserInvitation.id == invitation_id,
                UserInvitation.tenant_id.in_(select(Tenant.id).where(Tenant.is_active)),
            )
            .with_for_update(of=UserInvitation)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if invitation is None:
        raise InvitationNotFound("No such pending invitation.")
    return invitation


async def _join(
    session: AsyncSession, user: User, invitation: UserInvitation, now: datetime
) -> UserTenant | None:
    """The membership an accepted invitation makes (under the system scope: it is another tenant's).
    The first membership of an account becomes its primary tenant."""
    existing = (
        await session.execute(
            select(UserTenant.tenant_id, UserTenant.is_primary).where(UserTenant.user_id == user.id)
        )
    ).all()
    if invitation.tenant_id in {member_of for member_of, _ in existing}:
        # Invitations from before 0014 came with their membership (and the seed's sample trainer has
        # one): accepting sets the password and grants nothing new.
        invitation.accepted_at = now
        return None
    if invitation.role_id is None:
        raise InvitationUnusable(
            "This invitation is from before memberships needed consent; ask for a new one."
        )
    role = (await session.execute(select(Role).where(Role.id == invitation.role_id))).scalar_one()
    membership = UserTenant(
        user_id=user.id,
        tenant_id=invitation.tenant_id,
        role_id=role.id,
        is_primary=not any(primary for _, primary in existing),
    )
    session.add(membership)
    tenant_name = (
        await session.execute(select(Tenant.name).where(Tenant.id.in_([invitation.tenant_id])))
    ).scalar_one()
    await notifications.notify(
        session,
        "security.membership_added",
        {"tenant_name": tenant_name, "role_name": role.name},
        recipient_id=user.id,
        tenant_id=invitation.tenant_id,
    )
    invitation.accepted_at = now
    if membership.is_primary:
        user.tenant_id = invitation.tenant_id
    if _grants_system_admin(role):
        # Only a System Admin can have offered it (`_grantable_role`); the invitee took it.
        user.role_id = role.id
    return membership


async def accept_my_invitation(session: AsyncSession, invitation_id: uuid.UUID) -> None:
    """The caller joins the inviting tenant with the invitation's role."""
    scope = require_scope(session)
    now = utcnow()
    async with across_tenants(session):
        invitation = await _my_pending(session, scope, invitation_id)
        user = (await session.execute(select(User).where(User.id == scope.actor_id))).scalar_one()
        await _join(session, user, invitation, now)
        if session.is_modified(user):
            user.updated_by = user.id
        record_activity(
            session,
            "invitation_accepted",
            user_id=user.id,
            ip=scope.ip_address,
            tenant=str(invitation.tenant_id),
        )
        await audit.flush_as(session, "invitation.accept", conflict="The invitation was used meanwhile.")


async def decline_my_invitation(session: AsyncSession, invitation_id: uuid.UUID) -> None:
    scope = require_scope(session)
    async with across_tenants(session):
        invitation = await _my_pending(session, scope, invitation_id)
        invitation.declined_at = utcnow()
        record_activity(
            session,
            "invitation_declined",
            user_id=scope.actor_id,
            ip=scope.ip_address,
            tenant=str(invitation.tenant_id),
        )
        await audit.flush_as(session, "invitation.decline", conflict="The invitation was used meanwhile.")


# --- changing members ------------------------------------------------------------------------------


async def update_user(session: AsyncSession, user_id: uuid.UUID, *, name: str | None = None) -> Member:
    """The account's name (account-wide: the owner's or a System Admin's)."""
    scope = require_scope(session)
    member = await get_member(session, user_id)
    if name is None or name == member.user.name:
        return member
    _ensure_may_change_account(scope, member)
    member.user.name = name
    _touch(scope, member.user)
    await audit.flush_as(
        session, "user.update", conflict="The account changed meanwhile.", reread=(member.user,)
    )
    return member


async def rename_me(session: AsyncSession, *, name: str) -> None:
    scope = require_scope(session)
    user = (await session.execute(select(User).where(User.id == scope.actor_id))).scalar_one()
    if user.name == name:
        return
    user.name = name
    _touch(scope, user)
    await audit.flush_as(session, "user.update", conflict="The account changed meanwhile.")


async def suspend(session: AsyncSession, user_id: uuid.UUID) -> Member:
    """The member's access to this tenant is suspended (the membership), and their sessions here end
    now; the account and its other tenants are untouched. Again: nothing changes."""
    scope = require_scope(session)
    member = await get_member(session, user_id)
    _ensure_not_self(scope, member, "suspend")
    _ensure_may_manage(scope, member)
    if member.membership.status == "suspended":
        return member
    await _ensure_not_last_admin(session, member)
    member.membership.status = "suspended"
    await audit.flush_as(session, "membership.suspend", conflict="The membership changed meanwhile.")
    await _end_sessions(session, scope, member, "membership_suspended", tenant_only=True)
    return member


async def reactivate(session: AsyncSession, user_id: uuid.UUID) -> Member:
    """The member's access to this tenant again. Not suspended here: nothing changes."""
    scope = require_scope(session)
    member = await get_member(session, user_id)
    _ensure_may_manage(scope, member)
    if member.membership.status == "active":
        return member
    member.membership.status = "active"
    await audit.flush_as(session, "membership.reactivate", conflict="The membership changed meanwhile.")
    return member


async def suspend_account(session: AsyncSession, user_id: uuid.UUID) -> Member:
    """The account (System Admin): no login anywhere, and every session ends now."""
    scope = require_scope(session)
    member = await get_member(session, user_id)
    _ensure_not_self(scope, member, "suspend")
    _ensure_may_change_account(scope, member)
    _ensure_may_manage(scope, member)
    if member.user.status == "suspended":
        return member
    await _ensure_not_last_admin(session, member)
    member.user.status = "suspended"
    _touch(scope, member.user)
    await audit.flush_as(
        session, "user.suspend", conflict="The account changed meanwhile.", reread=(member.user,)
    )
    await _end_sessions(session, scope, member, "suspended")
    return member


async def reactivate_account(session: AsyncSession, user_id: uuid.UUID) -> Member:
    """Back to active (or to invited, if they never set a password). Not suspended: nothing changes."""
    scope = require_scope(session)
    member = await get_member(session, user_id)
    _ensure_may_change_account(scope, member)
    _ensure_may_manage(scope, member)
    if member.user.status != "suspended":
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
    was_on = user.two_factor_enabled
    clear_two_factor(user)
    if session.is_modified(user):
        _touch(scope, user)
        await audit.flush_as(
            session, "user.reset_2fa", conflict="The account changed meanwhile.", reread=(user,)
        )
    if was_on:
        await notify_two_factor_off(session, user, scope.ip_address)
    await _end_sessions(session, scope, member, "two_factor_reset")
    return member


async def _end_sessions(
    session: AsyncSession, scope: Scope, member: Member, reason: str, *, tenant_only: bool = False
) -> None:
    ended = await revoke_all_sessions(session, member.id, tenant_id=scope.tenant_id if tenant_only else None)
    record_activity(
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


# --- setting up a new account with its invitation's token (no login: the token is the credential) ------


async def accept_invitation(
    session: AsyncSession, *, token: str, password: str, ip: str | None = None, request_id: str | None = None
) -> User:
    """Set a new account's first password with the token of the invitation that created it: the account
    becomes active and joins the inviting tenant. Once per token, and only for an account that was
    never set up: an account with a password accepts invitations logged in (/me/invitations)."""
    await apply_to_database(session, Scope.for_system(ip_address=ip, request_id=request_id))
    now = utcnow()
    # A global key (core/global_keys.py): the token's tenant, then the invitation in it. Locked: of two
    # requests with one token, the second waits and then finds it used.
    invitation = await global_keys.find(
        session, UserInvitation, "token_hash", hash_token(token), for_update=True
    )
    if invitation is None:
        raise InvitationNotFound("This invitation does not exist; check the link.")
    if invitation.accepted_at is not None:
        raise InvitationUnusable("This invitation was used already; log in instead.")
    if invitation.declined_at is not None:
        raise InvitationUnusable("This invitation was declined.")
    if invitation.expires_at <= now:
        raise InvitationUnusable("This invitation has expired; ask for a new one.")
    user = (await session.execute(select(User).where(User.id == invitation.user_id))).scalar_one()
    if user.status != "invited" or user.password_hash is not None:
        raise InvitationUnusable(
            "This account is set up already; log in to accept the invitation."
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
    await _join(session, user, invitation, now)
    record_activity(session, "invitation_accepted", user_id=user.id, ip=ip)
    await audit.flush_as(session, "invitation.accept", conflict="The invitation was used meanwhile.")
    return user


async def join_invitations_of_new_account(session: AsyncSession, user: User) -> int:
    """Under the system scope, for the operator's `users set-password` on an account never set up: the
    invitations that created it (those with a token) are accepted as the token would have accepted
    them, so the account joins its tenants; other tenants' invitations stay pending for its owner."""
    now = utcnow()
    creating = (
        await session.execute(
            select(UserInvitation)
            .where(
                UserInvitation.user_id == user.id,
                UserInvitation.token_hash.is_not(None),
                UserInvitation.accepted_at.is_(None),
                UserInvitation.declined_at.is_(None),
            )
            .with_for_update()
        )
    ).scalars()
    joined = 0
    for invitation in creating:
        await _join(session, user, invitation, now)
        joined += 1
    return joined


async def issue_invitation_link(session: AsyncSession, *, email: str, tenant_code: str) -> str:
    """For the operator (CLI, under the system scope) until invitations are e-mailed: a fresh token for
    the pending invitation that created `email`'s account, which was never set up; the earlier token
    stops working, and the invitation gets a full validity again."""
    email = normalise_email(email)
    invitation = (
        await session.execute(
            select(UserInvitation)
            .join(User, User.id == UserInvitation.user_id)
            .where(
                User.id == user_by_email(email).with_only_columns(User.id).scalar_subquery(),
                UserInvitation.tenant_id.in_(
                    select(Tenant.id).where(func.upper(Tenant.code) == tenant_code.strip().upper())
                ),
                User.status == "invited",
                User.password_hash.is_(None),
                UserInvitation.token_hash.is_not(None),
                UserInvitation.accepted_at.is_(None),
                UserInvitation.declined_at.is_(None),
            )
        )
    ).scalar_one_or_none()
    if invitation is None:
        raise InvitationNotFound(
            f"No invitation to {tenant_code} created an account for {email} that is still to be set up."
        )
    token = new_invitation_token(invitation)
    invitation.expires_at = await _invitation_expiry(session, invitation.tenant_id)
    await audit.flush_as(session, "invitation.renew_token", conflict="The invitation changed meanwhile.")
    return token


async def active_admins(session: AsyncSession, tenant_ids: set[uuid.UUID]) -> dict[uuid.UUID, set[uuid.UUID]]:
    """Under the system scope: each tenant's active Admins (whom reminders and notices about the tenant go to)."""
    if not tenant_ids:
        return {}
    rows = await session.execute(
        select(UserTenant.tenant_id, UserTenant.user_id)
        .join(Role, Role.id == UserTenant.role_id)
        .join(User, User.id == UserTenant.user_id)
        .where(
            UserTenant.tenant_id.in_(tenant_ids),
            Role.name == SystemRole.admin.value,
            Role.system_role,
            UserTenant.status == "active",
            User.status == "active",
        )
    )
    admins: dict[uuid.UUID, set[uuid.UUID]] = {}
    for tenant_id, user_id in rows.all():
        admins.setdefault(tenant_id, set()).add(user_id)
    return admins
