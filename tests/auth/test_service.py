"""The auth modules, called directly (mobility/auth/: one job each), against the rules of issue 3 (log in
and sessions, two-factor) and the modules' own docstrings:

- throttling: after `login_free_failures` failures in a row a counter waits 1 s, then twice as long
  after each further failure, up to `login_max_lockout_seconds`; a counter quiet for long starts again;
- one_time_codes: a TOTP code of this time step or one either side, usable once; ten recovery codes,
  each usable once, stored only as hashes;
- credentials: tokens kept as their SHA-256, e-mails compared trimmed and lower-cased;
- sessions / authentication: a session counts while not revoked, expired or idle too long, for an
  active user who still belongs to an active tenant; a refused live session is ended for good;
- login / reauthentication / two_factor: wrong password and unknown e-mail fail alike; inactive users
  and non-members do not get in; the second factor when it is on; changing credentials asks again.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select, update

from mobility.auth import authentication, login, one_time_codes, sessions, throttling, two_factor
from mobility.auth.credentials import hash_token, normalise_email
from mobility.auth.models import LoginThrottle, Session
from mobility.auth.reauthentication import WrongReauthentication
from mobility.authz.permissions import SystemRole
from mobility.core.config import Settings
from mobility.core.errors import InvalidInput, NotFound
from mobility.core.models import utcnow
from mobility.settings.models import Setting
from mobility.tenants.models import Tenant
from mobility.users.models import User, UserTenant
from tests.support.admin_api import make_world, sign_in
from tests.support.factories import PASSWORD, Member, make_tenant
from tests.support.sessions import Db, system_session

FREE, LONGEST = 3, 60
SETTINGS = {
    "login_free_failures": FREE,
    "login_free_failures_per_address": 1000,
    "login_max_lockout_seconds": LONGEST,
}


def settings(db: Db, **changes) -> Settings:
    return Settings(database_url=db.url, **{**SETTINGS, **changes})


async def signed_in(db: Db, who: Member, tenant: Tenant, **ages: timedelta) -> str:
    """A session of `who` acting in `tenant` (its timestamps moved into the past by `ages`); its token."""
    async with system_session(db.url) as session:
        token = await sign_in(session, who, tenant)
        if ages:
            now = utcnow()
            await session.execute(
                update(Session)
                .where(Session.token == hash_token(token))
                .values(**{column: now - age for column, age in ages.items()})
            )
    return token


# --- throttling ----------------------------------------------------------------------------------------


def counter(failures: int = 0, **values) -> throttling.Throttle:
    row = LoginThrottle(key="account:someone@example.org", failures=failures, **values)
    return throttling.Throttle(rows={row.key: row}, free={row.key: FREE}, max_lockout=LONGEST)


def test_a_counter_locks_after_the_free_failures_doubling_up_to_the_longest() -> None:
    throttle, now = counter(), utcnow()
    row = throttle.rows["account:someone@example.org"]
    locks = []
    for _ in range(FREE + 8):
        throttle.count_failure(now)
        locks.append(None if row.locked_until is None else (row.locked_until - now).total_seconds())
    # Free failures first; the FREE-th locks for 1 s, then 2, 4, ... never beyond the longest lockout.
    assert locks == [None] * (FREE - 1) + [1, 2, 4, 8, 16, 32, LONGEST, LONGEST, LONGEST]
    assert throttle.wait(now) == LONGEST
    assert throttle.wait(now + timedelta(seconds=LONGEST)) is None


def test_a_counter_quiet_for_long_starts_again_and_a_recent_one_does_not() -> None:
    now = utcnow()
    recent = counter(failures=FREE + 2, last_failure_at=now - timedelta(seconds=LONGEST), locked_until=now)
    recent.count_failure(now)
    long_ago = counter(failures=FREE + 2, last_failure_at=now - timedelta(days=1), locked_until=None)
    long_ago.count_failure(now)
    assert recent.rows["account:someone@example.org"].failures == FREE + 3
    assert long_ago.rows["account:someone@example.org"].failures == 1
    assert long_ago.wait(now) is None


def test_an_account_is_counted_whatever_the_case_of_its_e_mail() -> None:
    assert throttling.account_key(" Ana.Lolo@Example.ORG ") == throttling.account_key("ana.lolo@example.org")


# --- credentials and one-time codes -------------------------------------------------------------------


def test_tokens_are_kept_as_their_sha256_and_e_mails_compared_normalised() -> None:
    token = secrets.token_urlsafe(32)
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest() != token
    assert normalise_email("  Ana.Lolo@Example.ORG\n") == "ana.lolo@example.org"


def test_a_totp_code_counts_once_in_its_step_or_one_either_side() -> None:
    user, now = User(totp_secret=pyotp.random_base32()), utcnow()
    totp = pyotp.TOTP(user.totp_secret)
    assert one_time_codes.use_totp(user, totp.at(now), now)
    assert not one_time_codes.use_totp(user, totp.at(now), now)  # replayed
    earlier = now - timedelta(seconds=totp.interval)
    assert not one_time_codes.use_totp(user, totp.at(earlier), now)  # older than one used
    later = User(totp_secret=user.totp_secret)
    assert one_time_codes.use_totp(
        later, totp.at(now - timedelta(seconds=totp.interval)), now
    )  # a slow clock
    two_off = User(totp_secret=user.totp_secret)
    assert not one_time_codes.use_totp(two_off, totp.at(now - timedelta(seconds=2 * totp.interval)), now)
    assert not one_time_codes.use_totp(User(totp_secret=None), totp.at(now), now)


def test_ten_recovery_codes_each_used_once_stored_as_hashes() -> None:
    user = User()
    codes = one_time_codes.new_recovery_codes(user)
    assert len(codes) == len(set(codes)) == 10
    assert not set(codes) & set(user.recovery_codes)
    assert one_time_codes.use_recovery_code(user, codes[3])
    assert not one_time_codes.use_recovery_code(user, codes[3])
    assert len(user.recovery_codes) == 9
    assert not one_time_codes.use_recovery_code(user, "AAAA-BBBB-CCCC-DDDD")


# --- sessions and authentication --------------------------------------------------------------------


async def test_a_live_session_gives_the_scope_of_its_tenant_and_role(db: Db) -> None:
    world = await make_world(db.url)
    token = await signed_in(db, world.trainer, world.tenant)
    async with db.unscoped() as session:
        scope = await authentication.authenticate(session, token, settings=settings(db))
        found = (scope.tenant_id, scope.actor_id, scope.role, scope.is_system_admin)
    assert found == (world.tenant.id, world.trainer.id, "Trainer", False)


@pytest.mark.parametrize(
    "ages",
    [
        {"last_seen_at": timedelta(minutes=31)},  # idle past the 30 minutes
        {"expires_at": timedelta(seconds=1)},  # past its absolute expiry
    ],
    ids=["idle", "expired"],
)
async def test_an_idle_or_expired_session_counts_for_nothing(db: Db, ages: dict) -> None:
    world = await make_world(db.url)
    token = await signed_in(db, world.trainer, world.tenant, **ages)
    async with db.unscoped() as session:
        with pytest.raises(authentication.SessionInvalid):
            await authentication.authenticate(
                session, token, settings=settings(db, session_idle_timeout_minutes=30)
            )
    async with db.unscoped() as session:
        with pytest.raises(authentication.SessionInvalid):
            await authentication.authenticate(session, secrets.token_urlsafe(32), settings=settings(db))


@pytest.mark.parametrize(
    "lost", ["account suspended", "membership suspended", "membership removed", "tenant deactivated"]
)
async def test_a_session_whose_user_lost_the_tenant_is_ended_for_good(db: Db, lost: str) -> None:
    world = await make_world(db.url)
    target = await world.new_member()
    token = await signed_in(db, target, world.tenant)
    async with system_session(db.url) as session:
        if lost == "account suspended":
            await session.execute(update(User).where(User.id == target.id).values(status="suspended"))
        elif lost == "tenant deactivated":
            await session.execute(update(Tenant).where(Tenant.id == world.tenant.id).values(is_active=False))
        else:
            membership = (
                await session.execute(select(UserTenant).where(UserTenant.user_id == target.id))
            ).scalar_one()
            if lost == "membership removed":
                await session.delete(membership)
            else:
                membership.status = "suspended"
    async with db.unscoped() as session:
        with pytest.raises(authentication.SessionEnded):
            await authentication.authenticate(session, token, settings=settings(db))
        await session.commit()  # what the API keeps of a refused request: the session's end
    async with system_session(db.url) as session:
        revoked = (
            await session.execute(select(Session.revoked_at).where(Session.token == hash_token(token)))
        ).scalar()
    assert revoked is not None


async def test_a_system_admin_acts_in_a_deactivated_tenant(db: Db) -> None:
    world = await make_world(db.url)
    token = await signed_in(db, world.system_admin, world.other)
    async with system_session(db.url) as session:
        await session.execute(update(Tenant).where(Tenant.id == world.other.id).values(is_active=False))
    async with db.unscoped() as session:
        scope = await authentication.authenticate(session, token, settings=settings(db))
        assert (scope.tenant_id, scope.is_system_admin) == (world.other.id, True)


async def test_a_tenant_requiring_two_factor_holds_back_those_without_it(db: Db) -> None:
    world = await make_world(db.url)
    async with system_session(db.url) as session:
        session.add(Setting(tenant_id=world.tenant.id, key="security.requireTwoFactor", value=True))
        await session.execute(update(User).where(User.id == world.admin.id).values(two_factor_enabled=True))
    without, with_it = (
        await signed_in(db, world.trainer, world.tenant),
        await signed_in(db, world.admin, world.tenant),
    )
    async with db.unscoped() as session:
        held = (
            await authentication.authenticate(session, without, settings=settings(db))
        ).two_factor_enrollment_required
    async with db.unscoped() as session:
        free = (
            await authentication.authenticate(session, with_it, settings=settings(db))
        ).two_factor_enrollment_required
    assert (held, free) == (True, False)


async def test_my_sessions_are_my_live_ones_newest_first(db: Db) -> None:
    world = await make_world(db.url)
    me = await world.new_member()
    older = await signed_in(db, me, world.tenant, created_at=timedelta(minutes=5))
    current = await signed_in(db, me, world.tenant)
    await signed_in(db, me, world.tenant, last_seen_at=timedelta(minutes=31))
    await signed_in(db, me, world.tenant, expires_at=timedelta(seconds=1))
    async with system_session(db.url) as session:
        revoked = await sign_in(session, me, world.tenant)
        await session.execute(
            update(Session).where(Session.token == hash_token(revoked)).values(revoked_at=utcnow())
        )
    await signed_in(db, world.admin, world.tenant)  # someone else's
    async with db.unscoped() as session:
        await authentication.authenticate(session, current, settings=settings(db), touch=False)
        listed = [row.token for row in await sessions.list_sessions(session, settings(db))]
    assert listed == [hash_token(current), hash_token(older)]


async def test_one_ends_ones_own_sessions_only(db: Db) -> None:
    world = await make_world(db.url)
    mine = await signed_in(db, world.trainer, world.tenant)
    theirs = await signed_in(db, world.admin, world.tenant)
    async with system_session(db.url) as session:
        ids = {
            token: (
                await session.execute(select(Session.id).where(Session.token == hash_token(token)))
            ).scalar_one()
            for token in (mine, theirs)
        }
    async with db.unscoped() as session:
        await authentication.authenticate(session, mine, settings=settings(db))
        with pytest.raises(NotFound):
            await sessions.revoke_own_session(session, ids[theirs])
        await sessions.revoke_own_session(session, ids[mine])
        with pytest.raises(NotFound):
            await sessions.revoke_own_session(session, ids[mine])


# --- login ------------------------------------------------------------------------------------------


async def log_in(db: Db, email: str, password: str = PASSWORD, **extra) -> login.LoginResult:
    async with db.unscoped() as session:
        result = await login.login(session, settings=settings(db), email=email, password=password, **extra)
        await session.commit()
        return result


async def test_a_wrong_password_and_an_unknown_e_mail_fail_alike_and_count(db: Db) -> None:
    world = await make_world(db.url)
    failures = []
    for email in (world.trainer.email, f"nobody-{secrets.token_hex(4)}@example.org"):
        async with db.unscoped() as session:
            with pytest.raises(login.InvalidCredentials) as refused:
                await login.login(session, settings=settings(db), email=email, password="not-the-password")
            await session.commit()  # a failed login keeps its count (keeps_writes)
        failures.append((type(refused.value), refused.value.detail))
        async with system_session(db.url) as session:
            assert (await session.get(LoginThrottle, throttling.account_key(email))).failures == 1
    assert failures[0] == failures[1]


@pytest.mark.parametrize("status", ["suspended", "invited"])
async def test_an_inactive_account_does_not_get_in(db: Db, status: str) -> None:
    world = await make_world(db.url)
    inactive = await world.new_member(status=status)
    async with db.unscoped() as session:
        with pytest.raises(login.AccountInactive):
            await login.login(session, settings=settings(db), email=inactive.email, password=PASSWORD)


async def test_a_login_opens_a_new_session_in_the_primary_tenant_or_the_one_named(db: Db) -> None:
    world = await make_world(db.url)
    shared = await world.new_member(also=SystemRole.recruiter)
    first, second = await log_in(db, shared.email), await log_in(db, shared.email.upper())
    named = await log_in(db, shared.email, tenant_code=world.other.code.lower())
    assert first.token != second.token and len(first.token) >= 43  # 256 bits, new every time
    assert first.session.token == hash_token(first.token)  # only the hash is kept
    assert (first.scope.tenant_id, first.scope.role) == (world.tenant.id, "Trainer")
    assert (named.scope.tenant_id, named.scope.role) == (world.other.id, "Recruiter")
    assert first.session.expires_at - first.session.created_at == timedelta(hours=12)


async def test_a_login_elsewhere_than_ones_tenants_is_refused(db: Db) -> None:
    world = await make_world(db.url)
    async with db.unscoped() as session:
        with pytest.raises(login.NoTenant):
            await login.login(
                session,
                settings=settings(db),
                email=world.trainer.email,
                password=PASSWORD,
                tenant_code=world.other.code,
            )
    # The System Admin acts in any active tenant.
    assert (
        await log_in(db, world.system_admin.email, tenant_code=world.other.code)
    ).scope.tenant_id == world.other.id


async def test_with_two_factor_on_the_password_alone_is_not_enough(db: Db) -> None:
    world = await make_world(db.url)
    secret = pyotp.random_base32()
    async with system_session(db.url) as session:
        await session.execute(
            update(User)
            .where(User.id == world.trainer.id)
            .values(two_factor_enabled=True, totp_secret=secret)
        )
    async with db.unscoped() as session:
        with pytest.raises(login.TwoFactorRequired):
            await login.login(session, settings=settings(db), email=world.trainer.email, password=PASSWORD)
    async with db.unscoped() as session:
        with pytest.raises(login.InvalidTwoFactorCode):
            await login.login(
                session, settings=settings(db), email=world.trainer.email, password=PASSWORD, otp="000000"
            )
    now = utcnow()
    code = pyotp.TOTP(secret).at(now)
    assert (await log_in(db, world.trainer.email, otp=code)).scope.actor_id == world.trainer.id


# --- credentials changed by their owner ----------------------------------------------------------------


async def authenticated(session, db: Db, token: str):
    return await authentication.authenticate(session, token, settings=settings(db))


async def test_a_password_change_asks_for_the_old_one_and_ends_every_other_session(db: Db) -> None:
    world = await make_world(db.url)
    me = await world.new_member(also=SystemRole.trainer)
    current = await signed_in(db, me, world.tenant)
    await signed_in(db, me, world.other)  # another session, acting in the other tenant
    new_password = secrets.token_urlsafe(16)
    async with db.unscoped() as session:
        await authenticated(session, db, current)
        with pytest.raises(WrongReauthentication) as wrong:
            await login.change_password(
                session, settings=settings(db), current_password="not-the-password", new_password=new_password
            )
        with pytest.raises(InvalidInput):
            await login.change_password(
                session, settings=settings(db), current_password=PASSWORD, new_password="password1234"
            )
        ended = await login.change_password(
            session, settings=settings(db), current_password=PASSWORD, new_password=new_password
        )
        live = (
            (
                await session.execute(
                    select(Session.token).where(Session.user_id == me.id, Session.revoked_at.is_(None))
                )
            )
            .scalars()
            .all()
        )
    assert wrong.value.extra["field"] == "currentPassword"
    assert live == [hash_token(current)]
    assert ended == 1


async def test_wrong_re_authentications_lock_the_account_like_failed_logins(db: Db) -> None:
    world = await make_world(db.url)
    token = await signed_in(db, world.trainer, world.tenant)
    for _ in range(FREE):
        async with db.unscoped() as session:
            await authenticated(session, db, token)
            with pytest.raises(WrongReauthentication):
                await two_factor.begin_totp(session, settings=settings(db), password="not-the-password")
            await session.commit()
    async with db.unscoped() as session:
        await authenticated(session, db, token)
        with pytest.raises(throttling.TooManyAttempts):
            await two_factor.begin_totp(session, settings=settings(db), password=PASSWORD)


async def test_two_factor_is_set_up_with_the_password_and_a_first_code(db: Db) -> None:
    world = await make_world(db.url)
    token = await signed_in(db, world.trainer, world.tenant)
    async with db.unscoped() as session:
        await authenticated(session, db, token)
        with pytest.raises(InvalidInput):
            await two_factor.confirm_totp(session, "123456")  # nothing begun
        secret, uri = await two_factor.begin_totp(session, settings=settings(db), password=PASSWORD)
        with pytest.raises(InvalidInput) as wrong:
            await two_factor.confirm_totp(
                session, "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
            )
        codes = await two_factor.confirm_totp(session, pyotp.TOTP(secret).now())
        with pytest.raises(InvalidInput):
            await two_factor.begin_totp(session, settings=settings(db), password=PASSWORD)  # on already
        with pytest.raises(InvalidInput) as no_code:
            await two_factor.disable_totp(session, settings=settings(db), password=PASSWORD, code=None)
        await two_factor.disable_totp(session, settings=settings(db), password=PASSWORD, code=codes[0])
        user = await session.get(User, world.trainer.id)
        state = (user.two_factor_enabled, user.totp_secret, user.recovery_codes)
    assert uri.startswith("otpauth://totp/") and secret in uri
    assert wrong.value.extra["field"] == "code" and no_code.value.extra["field"] == "code"
    assert len(codes) == 10
    assert state == (False, None, None)


async def test_switching_to_a_tenant_one_does_not_belong_to_is_refused(db: Db) -> None:
    world = await make_world(db.url)
    shared = await world.new_member(also=SystemRole.recruiter)
    async with system_session(db.url) as session:
        third = await make_tenant(session)
    token = await signed_in(db, shared, world.tenant)
    async with db.unscoped() as session:  # one request each, as the API has them
        await authenticated(session, db, token)
        with pytest.raises(login.NoTenant):
            await login.switch_tenant(session, settings=settings(db), tenant_code=third.code)
    async with db.unscoped() as session:
        await authenticated(session, db, token)
        switched = await login.switch_tenant(session, settings=settings(db), tenant_code=world.other.code)
        assert (switched.tenant_id, switched.role) == (world.other.id, "Recruiter")
