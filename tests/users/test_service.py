"""The users service, called directly: the rules written at the top of mobility/users/service.py and in
issue 8 ("invitations by consent", "a tenant controls access to itself"), each tried on its own.

- Membership by consent: an invitation gives no access by itself; only one that creates the account
  carries a token; an address with an account gets a pending invitation and the account is untouched.
- A tenant locks its own door (membership), the account is its owner's and the System Admin's.
- Nobody hands out, or acts on a holder of, rights they do not hold; only a System Admin grants
  "System Admin".
- A tenant keeps an active Admin; nobody suspends, resets or removes themselves.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from mobility.audit.models import AuditLog
from mobility.auth.models import Session
from mobility.authz.permissions import SystemRole
from mobility.core.errors import Forbidden, InvalidInput, NotFound
from mobility.core.models import utcnow
from mobility.core.pagination import PageParams
from mobility.core.scope import Scope, across_tenants, apply_to_database
from mobility.settings.models import Setting
from mobility.users import accounts, service
from mobility.users.models import User, UserInvitation, UserTenant
from tests.support.admin_api import make_world, sign_in
from tests.support.factories import add_membership, make_invitation, make_user, system_role
from tests.support.sessions import Db, system_session

VALIDITY = "users.invitationValidityDays"


def new_email() -> str:
    return f"invitee-{secrets.token_hex(4)}@example.org"


async def role_id(db: Db, role: SystemRole) -> uuid.UUID:
    async with system_session(db.url) as session:
        return (await system_role(session, role)).id


async def live_sessions(session, user_id: uuid.UUID) -> set[uuid.UUID]:
    """The tenants in which `user_id` has a session that is not revoked (a look across tenants)."""
    async with across_tenants(session):
        rows = await session.execute(
            select(Session.tenant_id).where(Session.user_id == user_id, Session.revoked_at.is_(None))
        )
        return set(rows.scalars())


# --- membership by consent -------------------------------------------------------------------------


async def test_inviting_a_new_address_makes_an_invited_account_and_a_token_but_no_membership(db: Db) -> None:
    world = await make_world(db.url)
    trainer, email = await role_id(db, SystemRole.trainer), new_email()
    async with db.acting(world.admin.scope()) as session:
        session.add(Setting(key=VALIDITY, value=3))  # the tenant's own invitation validity
        await session.flush()
        invited = await service.invite(session, email=email.upper(), name="New Member", role_id=trainer)
        async with across_tenants(session):  # not a member: not among the tenant's users
            account = (await session.execute(select(User).where(User.email == email))).scalar_one()
            memberships = (
                await session.execute(select(UserTenant).where(UserTenant.user_id == account.id))
            ).all()
        found = (
            invited.view.email,
            invited.view.status,
            invited.view.role_id,
            account.status,
            account.password_hash,
            account.tenant_id,
            memberships,
        )
        expires_in = invited.view.expires_at - utcnow()
    assert found == (email, "pending", trainer, "invited", None, world.tenant.id, [])
    assert invited.token  # for the address's owner only: it sets the first password
    # The tenant's own validity setting: 3 days.
    assert timedelta(days=3) - timedelta(minutes=5) < expires_in <= timedelta(days=3)


async def test_inviting_an_existing_account_touches_it_not_and_carries_no_token(db: Db) -> None:
    world = await make_world(db.url)
    elsewhere = world.other_admin  # an active account of another tenant
    trainer = await role_id(db, SystemRole.trainer)
    async with system_session(db.url) as session:
        before = await session.get(User, elsewhere.id)
        account_before = (before.status, before.password_hash, before.name, before.tenant_id, before.role_id)
    async with db.acting(world.admin.scope()) as session:
        invited = await service.invite(session, email=elsewhere.email, name="Typed By Admin", role_id=trainer)
        async with across_tenants(session):
            after = (await session.execute(select(User).where(User.id == elsewhere.id))).scalar_one()
            here = (
                await session.execute(
                    select(UserTenant).where(
                        UserTenant.user_id == elsewhere.id, UserTenant.tenant_id == world.tenant.id
                    )
                )
            ).first()
        view = (invited.token, invited.view.name, invited.view.status)
        account = (after.status, after.password_hash, after.name, after.tenant_id, after.role_id)
    assert view == (None, "Typed By Admin", "pending")
    assert account == account_before
    assert here is None  # not a member until they accept


async def test_a_pending_invitation_or_a_membership_is_not_invited_again(db: Db) -> None:
    world = await make_world(db.url)
    trainer, email = await role_id(db, SystemRole.trainer), new_email()
    async with db.acting(world.admin.scope()) as session:
        await service.invite(session, email=email, name="Once", role_id=trainer)
        with pytest.raises(service.AlreadyInvited):
            await service.invite(session, email=email, name="Twice", role_id=trainer)
        with pytest.raises(service.AlreadyMember):
            await service.invite(session, email=world.trainer.email, name="Member", role_id=trainer)


async def test_a_declined_or_expired_invitation_is_renewed_not_doubled(db: Db) -> None:
    world = await make_world(db.url)
    recruiter = await role_id(db, SystemRole.recruiter)
    invitee = await world.new_member(tenant=world.other)
    async with system_session(db.url) as session:
        expired = await make_invitation(session, world.tenant, invitee, expires_in=-timedelta(days=1))
    async with db.acting(world.admin.scope()) as session:
        renewed = await service.invite(session, email=invitee.email, name="Again", role_id=recruiter)
        found = (renewed.view.id, renewed.view.status, renewed.view.role_id, renewed.token)
    assert found == (expired.id, "pending", recruiter, None)


async def test_the_invitees_token_sets_the_password_once(db: Db) -> None:
    world = await make_world(db.url)
    trainer, email, password = await role_id(db, SystemRole.trainer), new_email(), secrets.token_urlsafe(12)
    async with db.acting(world.admin.scope()) as session:
        invited = await service.invite(session, email=email, name="New", role_id=trainer)
        user = await service.accept_invitation(session, token=invited.token, password=password)
        joined = (
            await session.execute(
                select(UserTenant.tenant_id, UserTenant.role_id).where(UserTenant.user_id == user.id)
            )
        ).all()
        state = (user.status, user.tenant_id)
        with pytest.raises(service.InvitationUnusable):
            await service.accept_invitation(session, token=invited.token, password=secrets.token_urlsafe(12))
        with pytest.raises(service.InvitationNotFound):
            await service.accept_invitation(session, token=secrets.token_urlsafe(32), password=password)
    assert state == ("active", world.tenant.id)
    assert joined == [(world.tenant.id, trainer)]


async def test_a_weak_password_or_an_expired_token_is_refused(db: Db) -> None:
    world = await make_world(db.url)
    trainer = await role_id(db, SystemRole.trainer)
    async with db.acting(world.admin.scope()) as session:
        invited = await service.invite(session, email=new_email(), name="New", role_id=trainer)
        with pytest.raises(InvalidInput) as weak:
            await service.accept_invitation(session, token=invited.token, password="password1234")
        invited.view.invitation.expires_at = utcnow() - timedelta(seconds=1)
        await session.flush()
        with pytest.raises(service.InvitationUnusable):
            await service.accept_invitation(session, token=invited.token, password=secrets.token_urlsafe(12))
    assert weak.value.extra["field"] == "password"


async def test_the_invitee_accepts_or_declines_logged_in(db: Db) -> None:
    world = await make_world(db.url)
    trainer = await role_id(db, SystemRole.trainer)
    invitee = await world.new_member(tenant=world.other)
    async with system_session(db.url) as session:
        offer = (await make_invitation(session, world.tenant, invitee, SystemRole.trainer)).id
    async with db.acting(invitee.scope()) as session:
        mine = [invitation.id for invitation in await service.my_invitations(session)]
        await service.accept_my_invitation(session, offer)
        async with across_tenants(session):
            joined = (
                await session.execute(
                    select(UserTenant.role_id, UserTenant.is_primary).where(
                        UserTenant.user_id == invitee.id, UserTenant.tenant_id == world.tenant.id
                    )
                )
            ).one()
    # Someone else cannot answer it for them.
    async with db.acting(world.other_admin.scope()) as session:
        with pytest.raises(service.InvitationNotFound):
            await service.decline_my_invitation(session, offer)
    async with db.acting(invitee.scope()) as session:
        await service.decline_my_invitation(session, offer)
        assert await service.my_invitations(session) == []
    assert mine == [offer]
    assert tuple(joined) == (trainer, False)  # their first tenant stays their primary one


# --- only a System Admin grants System Admin; nobody acts beyond their rights ---------------------------


async def test_only_a_system_admin_grants_system_admin(db: Db) -> None:
    world = await make_world(db.url)
    system_admin, admin = await role_id(db, SystemRole.system_admin), await role_id(db, SystemRole.admin)
    async with db.acting(world.admin.scope()) as session:
        with pytest.raises(Forbidden):
            await service.invite(session, email=new_email(), name="Ambitious", role_id=system_admin)
        with pytest.raises(Forbidden):
            await service.set_membership(session, world.trainer.id, role_id=system_admin)
    async with db.acting(world.system_admin.scope()) as session:
        changed = await service.set_membership(session, world.trainer.id, role_id=system_admin)
        granted = (changed.is_system_admin, changed.user.role_id)
        taken_back = await service.set_membership(session, world.trainer.id, role_id=admin)
        ungranted = (taken_back.is_system_admin, taken_back.user.role_id)
    # "System Admin" is global: held here, the account holds it; taken away here, it is gone.
    assert granted == (True, system_admin)
    assert ungranted == (False, None)


async def test_an_admin_does_not_act_on_a_system_admin(db: Db) -> None:
    world = await make_world(db.url)
    async with system_session(db.url) as session:
        higher = await make_user(session, world.other, SystemRole.system_admin)
        await add_membership(session, higher, world.tenant, SystemRole.trainer)
    trainer = await role_id(db, SystemRole.trainer)
    async with db.acting(world.admin.scope()) as session:
        for act in (service.suspend, service.remove_membership, service.reset_two_factor):
            with pytest.raises(Forbidden):
                await act(session, higher.id)
        with pytest.raises(Forbidden):
            await service.set_membership(session, higher.id, role_id=trainer)


async def test_nobody_suspends_resets_or_removes_themselves(db: Db) -> None:
    world = await make_world(db.url)
    await world.new_member(SystemRole.admin)  # not the last Admin: only the self rule applies
    async with db.acting(world.admin.scope()) as session:
        for act in (service.suspend, service.remove_membership, service.reset_two_factor):
            with pytest.raises(service.OwnAccount):
                await act(session, world.admin.id)


async def test_the_tenant_keeps_an_active_admin(db: Db) -> None:
    world = await make_world(db.url)
    second = await world.new_member(SystemRole.admin)
    await world.new_member(SystemRole.admin, status="suspended")
    trainer = await role_id(db, SystemRole.trainer)
    # The System Admin acts here too, and may: the only rule that stops them is the last Admin.
    async with db.acting(world.system_admin.scope()) as session:
        await service.suspend(session, second.id)  # the world's Admin remains
        # A suspended account is no active Admin: suspending, demoting or removing the last one is refused.
        for act in (service.suspend, service.remove_membership, service.suspend_account):
            with pytest.raises(service.LastAdmin):
                await act(session, world.admin.id)
        with pytest.raises(service.LastAdmin):
            await service.set_membership(session, world.admin.id, role_id=trainer)


# --- a tenant controls access to itself; the account is its owner's ----------------------------------


async def test_a_suspended_member_loses_this_tenant_only(db: Db) -> None:
    world = await make_world(db.url)
    shared = await world.new_member(also=SystemRole.trainer)
    async with system_session(db.url) as session:
        await sign_in(session, shared, world.tenant)
        await sign_in(session, shared, world.other)
    async with db.acting(world.admin.scope()) as session:
        suspended = await service.suspend(session, shared.id)
        state = (suspended.status, suspended.membership.status, suspended.user.status)
        left = await live_sessions(session, shared.id)
        again = (await service.suspend(session, shared.id)).status
        back = (await service.reactivate(session, shared.id)).status
    assert state == ("suspended", "suspended", "active")
    assert left == {world.other.id}
    assert (again, back) == ("suspended", "active")


async def test_suspending_twice_records_once(db: Db) -> None:
    world = await make_world(db.url)
    target = await world.new_member()
    async with db.acting(world.admin.scope()) as session:
        await service.suspend(session, target.id)
        await service.suspend(session, target.id)
        recorded = (
            await session.execute(
                select(AuditLog.action).where(
                    AuditLog.actor_id == world.admin.id, AuditLog.action == "membership.suspend"
                )
            )
        ).all()
    assert len(recorded) == 1


async def test_the_account_is_its_owners_and_the_system_admins(db: Db) -> None:
    world = await make_world(db.url)
    async with db.acting(world.admin.scope()) as session:
        with pytest.raises(service.AccountNotYours):
            await service.update_user(session, world.trainer.id, name="Renamed by the tenant")
        with pytest.raises(service.AccountNotYours):
            await service.suspend_account(session, world.trainer.id)
    async with db.acting(world.trainer.scope()) as session:
        own = await service.update_user(session, world.trainer.id, name="Renamed by myself")
        assert own.name == "Renamed by myself"
    async with db.acting(world.system_admin.scope()) as session:
        suspended = await service.suspend_account(session, world.trainer.id)
        assert (suspended.user.status, await live_sessions(session, world.trainer.id)) == ("suspended", set())


async def test_reactivating_an_account_never_set_up_makes_it_invited_again(db: Db) -> None:
    world = await make_world(db.url)
    async with system_session(db.url) as session:
        never = await make_user(session, world.tenant, SystemRole.trainer, status="suspended")
        (await session.get(User, never.id)).password_hash = None
    async with db.acting(world.system_admin.scope()) as session:
        assert (await service.reactivate_account(session, never.id)).user.status == "invited"


async def test_a_two_factor_reset_of_a_shared_account_is_the_system_admins(db: Db) -> None:
    world = await make_world(db.url)
    shared = await world.new_member(also=SystemRole.trainer)
    async with system_session(db.url) as session:
        user = await session.get(User, shared.id)
        user.two_factor_enabled, user.totp_secret, user.recovery_codes = True, "JBSWY3DPEHPK3PXP", ["x"]
        await sign_in(session, shared, world.tenant)
    async with db.acting(world.admin.scope()) as session:
        with pytest.raises(service.AccountShared):
            await service.reset_two_factor(session, shared.id)
    async with db.acting(world.system_admin.scope()) as session:
        reset = (await service.reset_two_factor(session, shared.id)).user
        cleared = (reset.two_factor_enabled, reset.totp_secret, reset.recovery_codes)
        left = await live_sessions(session, shared.id)
    assert cleared == (False, None, None)
    assert left == set()


async def test_a_membership_stops_being_primary_only_when_another_becomes_primary(db: Db) -> None:
    world = await make_world(db.url)
    trainer = await role_id(db, SystemRole.trainer)
    async with db.acting(world.admin.scope()) as session:
        with pytest.raises(InvalidInput) as refused:
            await service.set_membership(session, world.trainer.id, role_id=trainer, is_primary=False)
    assert refused.value.extra["field"] == "isPrimary"


async def test_removing_a_member_keeps_the_account_and_drops_their_invitations_here(db: Db) -> None:
    world = await make_world(db.url)
    target = await world.new_member()
    async with system_session(db.url) as session:
        await make_invitation(session, world.tenant, target, SystemRole.recruiter)
    async with db.acting(world.admin.scope()) as session:
        await service.remove_membership(session, target.id)
        async with across_tenants(session):
            account = (await session.execute(select(User).where(User.id == target.id))).scalar_one()
            left = (
                await session.execute(select(UserInvitation.id).where(UserInvitation.user_id == target.id)),
                await session.execute(select(UserTenant.id).where(UserTenant.user_id == target.id)),
            )
            found = (account.status, account.tenant_id, left[0].all(), left[1].all())
        listed, _ = await service.list_users(session, params=PageParams(limit=100), q=target.email)
    assert found == ("active", None, [], [])
    assert listed == []


async def test_another_tenants_member_does_not_exist_here(db: Db) -> None:
    world = await make_world(db.url)
    async with db.acting(world.admin.scope()) as session:
        for act in (service.get_member, service.suspend, service.remove_membership):
            with pytest.raises(NotFound):
                await act(session, world.other_admin.id)


# --- operator tasks (users/accounts.py, run by the CLI under the system scope) ------------------------


async def test_an_operators_invitation_link_lasts_as_long_as_the_inviting_tenant_says(db: Db) -> None:
    """`mobility users invitation-link` gives the invitation "a full validity again": the inviting
    tenant's (users.invitationValidityDays), whatever other tenants chose."""
    world = await make_world(db.url)
    trainer, email = await role_id(db, SystemRole.trainer), new_email()
    async with db.acting(world.admin.scope()) as session:
        session.add(Setting(key=VALIDITY, value=3))
        await session.flush()
        await service.invite(session, email=email, name="New", role_id=trainer)
        await apply_to_database(session, Scope.for_system())  # the operator, in the same unit of work
        session.add(Setting(tenant_id=world.other.id, key=VALIDITY, value=30))
        await session.flush()
        await service.issue_invitation_link(session, email=email, tenant_code=world.tenant.code)
        expires = (
            await session.execute(select(UserInvitation.expires_at).where(UserInvitation.email == email))
        ).scalar_one()
    assert timedelta(days=3) - timedelta(minutes=5) < expires - utcnow() <= timedelta(days=3)


async def test_an_account_is_found_by_id_or_by_e_mail_in_any_case(db: Db) -> None:
    world = await make_world(db.url)
    async with db.acting(Scope.for_system()) as session:
        found = [
            (await accounts.find_account(session, reference)).id
            for reference in (str(world.trainer.id), world.trainer.email, f" {world.trainer.email.upper()} ")
        ]
        for unknown in (str(uuid.uuid4()), new_email()):
            with pytest.raises(accounts.AccountError):
                await accounts.find_account(session, unknown)
    assert found == [world.trainer.id] * 3


async def test_only_case_twins_merge_and_never_an_account_with_itself(db: Db) -> None:
    world = await make_world(db.url)
    async with db.acting(Scope.for_system()) as session:
        with pytest.raises(accounts.AccountError, match="same account"):
            await accounts.plan_merge(session, world.trainer.email, str(world.trainer.id))
        with pytest.raises(accounts.AccountError, match="not case twins"):
            await accounts.plan_merge(session, world.trainer.email, world.admin.email)


async def test_an_operator_sets_a_password_ending_every_session_and_activating_a_new_account(db: Db) -> None:
    world = await make_world(db.url)
    trainer, email = await role_id(db, SystemRole.trainer), new_email()
    async with db.acting(world.admin.scope()) as session:
        await service.invite(session, email=email, name="New", role_id=trainer)
        await apply_to_database(session, Scope.for_system())  # the operator, in the same unit of work
        with pytest.raises(accounts.AccountError, match="password refused"):
            await accounts.set_password(session, email, "password1234")
        done = await accounts.set_password(session, email, secrets.token_urlsafe(16))
        joined = (
            (await session.execute(select(UserTenant.tenant_id).join(User).where(User.email == email)))
            .scalars()
            .all()
        )
        ended = await accounts.set_password(session, world.trainer.email, secrets.token_urlsafe(16))
        live = await live_sessions(session, world.trainer.id)
    assert (done.activated, done.status, done.tenants_joined) == (True, "active", 1)
    assert joined == [world.tenant.id]
    assert (ended.activated, ended.status, ended.sessions_ended, live) == (False, "active", 1, set())
