"""`mobility users duplicates | merge | set-password`: case twins listed and folded into one account (every
reference moved, sessions ended, the trail kept and extended), and a lost password set again."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from mobility.audit.models import ActivityLog, AuditLog
from mobility.authz.permissions import SystemRole
from mobility.core.security import verify_password
from mobility.ops import migrations
from mobility.ops.legacy_schema import legacy_metadata
from mobility.tenants.models import Tenant
from mobility.users.models import UserInvitation, UserTenant
from tests.cli.conftest import Cli, assert_ok, assert_one_line_error
from tests.factories import (
    add_membership,
    make_candidate,
    make_tenant,
    make_user,
    system_role,
    system_session,
)
from tests.factories.rows import RowBuilder, attribute_of, model_for
from tests.migrations.support import sync_engine
from tests.support.admin_api import sign_in

LEGACY_USERS = legacy_metadata.tables["users"]
# Rows the merge treats by a rule of their own (asserted one by one below); every other column that
# refers to users.id must simply point at KEEP afterwards.
OWN_RULES = {("user_tenants", "userId"), ("sessions", "userId"), ("user_invitations", "userId")}


def references_to_users() -> list[tuple[str, str]]:
    """Every (table, column) with a foreign key to users.id, read from the models here, independently of
    the code under test."""
    import mobility.models as models

    return sorted(
        (table.name, column.name)
        for table in models.metadata.sorted_tables
        for column in table.columns
        for fk in column.foreign_keys
        if fk.column.table.name == "users" and fk.column.name == "id"
    )


def _query(cli: Cli, sql: str, **params) -> list:
    """`cli.query` with uuid parameters as the backend stores them (SQLite: 32 hex digits)."""
    if cli.backend == "sqlite":
        params = {key: value.hex if isinstance(value, uuid.UUID) else value for key, value in params.items()}
    return cli.query(sql, **params)


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def _uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _pointing_at(cli: Cli, table: str, column: str, user_id: uuid.UUID) -> list[uuid.UUID]:
    with sync_engine(cli.url) as engine, engine.connect() as connection:
        model_table = model_for(table).__table__
        rows = connection.execute(sa.select(model_table.c.id).where(model_table.c[column] == user_id))
        return sorted(_uuid(row.id) for row in rows)


def _twins_at_head(cli: Cli) -> None:
    """A database at head that holds case twins, as a legacy one may before 0013: the unique index is
    dropped to let them in."""
    assert_ok(cli("db", "upgrade"))
    cli.execute("DROP INDEX users_email_ci_key")


# --- duplicates, and the way past 0013 --------------------------------------------------------------


def test_twins_block_the_upgrade_until_merged(cli: Cli) -> None:
    assert_ok(cli("db", "upgrade", "--to", "0012"))
    ids = {}
    with sync_engine(cli.url) as engine, engine.begin() as connection:
        for email in (
            "Ana.Lolo@Example.org",
            "ana.lolo@example.org",
            "ANA.LOLO@EXAMPLE.ORG",
            "solo@example.org",
        ):
            ids[email] = uuid.uuid4()
            connection.execute(
                LEGACY_USERS.insert().values(id=ids[email], email=email, updatedAt=datetime.now(UTC))
            )

    refused = cli("db", "upgrade")
    line = assert_one_line_error(refused, "mobility users duplicates", "mobility users merge KEEP DROP")
    assert "1 e-mail address(es)" in line and "solo@" not in line
    assert cli.revision() == "0012"

    listed = assert_ok(cli("users", "duplicates"))
    assert "1 e-mail address(es) with more than one account" in listed.stdout
    twins = [line for line in listed.stdout.splitlines() if "ana.lolo@" in line.lower()]
    assert len(twins) == 3
    for email in ("Ana.Lolo@Example.org", "ana.lolo@example.org", "ANA.LOLO@EXAMPLE.ORG"):
        [shown] = [line for line in twins if f"  {email}  " in line]
        assert str(ids[email]) in shown and "active" in shown and "memberships 0" in shown
        assert "last login never" in shown and "created " in shown
    assert "solo@" not in listed.stdout

    assert_ok(cli("users", "merge", "ana.lolo@example.org", "Ana.Lolo@Example.org", "--yes"))
    assert_ok(cli("users", "merge", str(ids["ana.lolo@example.org"]), "ANA.LOLO@EXAMPLE.ORG", "--yes"))
    assert "no case twins" in assert_ok(cli("users", "duplicates")).stdout
    assert_ok(cli("db", "upgrade"))
    assert cli.revision() == migrations.head_revision()
    assert {row[0] for row in _query(cli, "SELECT email FROM users")} == {
        "ana.lolo@example.org",
        "solo@example.org",
    }


def test_the_users_commands_need_revision_0012(cli: Cli) -> None:
    assert_ok(cli("db", "upgrade", "--to", "0011"))
    assert_one_line_error(cli("users", "duplicates"), "needs revision 0012", "mobility db upgrade")
    assert_one_line_error(cli("users", "merge", "a@x.org", "A@x.org", "--yes"), "needs revision 0012")
    assert_one_line_error(cli("users", "set-password", "a@x.org"), "not at head")


# --- merge ------------------------------------------------------------------------------------------


async def _arrange_merge(url: str) -> dict:
    """KEEP (Trainer of A, primary) and DROP (Admin of A, Recruiter of B) are case twins; DROP is referred
    to from every column that refers to users.id, and has sessions, invitations, activity and audit."""
    tag = secrets.token_hex(3)
    async with system_session(url) as session:
        tenant, other = await make_tenant(session), await make_tenant(session)
        keep = await make_user(session, tenant, SystemRole.trainer, email=f"sione.vea.{tag}@example.org")
        drop = await make_user(session, tenant, SystemRole.admin, email=f"Sione.Vea.{tag}@Example.org")
        await add_membership(session, drop, other, SystemRole.recruiter)
        keep_session = await sign_in(session, keep, tenant)
        await sign_in(session, drop, tenant)
        await sign_in(session, drop, other)
        now = datetime.now(UTC)
        pending = UserInvitation(
            tenant_id=other.id,
            user_id=drop.id,
            token_hash=secrets.token_hex(32),
            expires_at=now + timedelta(days=3),
        )
        accepted = UserInvitation(
            tenant_id=tenant.id,
            user_id=drop.id,
            token_hash=secrets.token_hex(32),
            expires_at=now + timedelta(days=3),
            accepted_at=now,
        )
        old_audit = AuditLog(
            tenant_id=tenant.id,
            actor_id=drop.id,
            action="user.update",
            entity_type="users",
            entity_id=drop.id,
        )
        session.add_all([pending, accepted, old_audit])
        session.add(ActivityLog(user_id=drop.id, action="login", details={"ok": True}))
        await session.flush()
        built = {}
        builder = RowBuilder(session, tenant)
        for table, column in references_to_users():
            if (table, column) in OWN_RULES:
                continue
            model = model_for(table)
            if table == "activity_logs":
                continue  # the login row above
            row = await builder.build(model, **{attribute_of(model, model.__table__.c[column]): drop.id})
            built[(table, column)] = row.id
        roles = {
            role: (await system_role(session, role)).id
            for role in (SystemRole.trainer, SystemRole.admin, SystemRole.recruiter)
        }
        memberships = {
            (row.user_id, row.tenant_id): row
            for row in (
                await session.execute(sa.select(UserTenant).where(UserTenant.user_id.in_([keep.id, drop.id])))
            ).scalars()
        }
    return {
        "tenant": tenant.id,
        "other": other.id,
        "keep": keep,
        "drop": drop,
        "keep_session": keep_session,
        "pending": pending.id,
        "accepted": accepted.id,
        "old_audit": old_audit.id,
        "built": built,
        "roles": roles,
        "moved_membership": memberships[(drop.id, other.id)].id,
        "kept_membership": memberships[(keep.id, tenant.id)].id,
        "dropped_membership": memberships[(drop.id, tenant.id)].id,
    }


def test_merge_moves_every_reference_ends_sessions_and_extends_the_trail(cli: Cli) -> None:
    _twins_at_head(cli)
    world = asyncio.run(_arrange_merge(cli.url))
    keep, drop = world["keep"], world["drop"]

    listed = assert_ok(cli("users", "duplicates")).stdout
    assert f"{keep.id}  {keep.email}  active" in listed and "memberships 1" in listed
    assert f"{drop.id}  {drop.email}  active" in listed and "memberships 2" in listed

    merged = assert_ok(cli("users", "merge", keep.email, drop.email, "--yes"))
    assert "merged" in merged.stdout and "2 session(s) ended" in merged.stdout
    assert [path for path in cli.backups() if "before-merge" in path.name]

    assert _query(cli, "SELECT id FROM users WHERE id = :id", id=drop.id) == []
    # Memberships: B moved to KEEP (not primary: KEEP's primary is A); in A, KEEP's role stays.
    rows = _query(
        cli, 'SELECT id, "tenantId", "roleId", "isPrimary" FROM user_tenants WHERE "userId" = :id', id=keep.id
    )
    memberships = {
        _uuid(tenant): (_uuid(row_id), _uuid(role), bool(primary)) for row_id, tenant, role, primary in rows
    }
    assert memberships == {
        world["tenant"]: (world["kept_membership"], world["roles"][SystemRole.trainer], True),
        world["other"]: (world["moved_membership"], world["roles"][SystemRole.recruiter], False),
    }
    assert _query(cli, "SELECT id FROM user_tenants WHERE id = :id", id=world["dropped_membership"]) == []
    # Sessions: DROP's gone, KEEP's untouched.
    assert _pointing_at(cli, "sessions", "userId", drop.id) == []
    assert _query(cli, 'SELECT "revokedAt" FROM sessions WHERE "userId" = :id', id=keep.id) == [(None,)]
    # Invitations: the pending one (a credential) withdrawn, the accepted one KEEP's.
    assert _pointing_at(cli, "user_invitations", "userId", keep.id) == [world["accepted"]]
    assert _query(cli, "SELECT id FROM user_invitations WHERE id = :id", id=world["pending"]) == []
    # Every other column that refers to users.id: the row built for it now points at KEEP.
    assert world["built"] and references_to_users(), "nothing refers to users: is the discovery broken?"
    for (table, column), row_id in world["built"].items():
        assert row_id in _pointing_at(cli, table, column, keep.id), f"{table}.{column}"
    for table, column in references_to_users():
        assert _pointing_at(cli, table, column, drop.id) == [], f"{table}.{column} still refers to DROP"
    assert any(table not in {t for t, _ in OWN_RULES} for table, _ in world["built"])

    # Activity: DROP's moved to KEEP, and the merge recorded for KEEP.
    actions = [
        row[0] for row in _query(cli, 'SELECT action FROM activity_logs WHERE "userId" = :id', id=keep.id)
    ]
    assert "login" in actions and "account_merged" in actions
    [(details,)] = _query(
        cli,
        "SELECT details FROM activity_logs WHERE action = 'account_merged' AND \"userId\" = :id",
        id=keep.id,
    )
    assert _json(details)["mergedFrom"] == str(drop.id) and _json(details)["mergedEmail"] == drop.email

    # The trail: the old row unchanged (append-only), new user.merge rows map DROP to KEEP.
    [(actor,)] = _query(cli, 'SELECT "actorId" FROM audit_logs WHERE id = :id', id=world["old_audit"])
    assert _uuid(actor) == drop.id
    merges = _query(
        cli,
        'SELECT "tenantId", before, after FROM audit_logs WHERE action = \'user.merge\' AND "entityId" = :id',
        id=drop.id,
    )
    by_tenant = {
        (_uuid(tenant) if tenant else None): (_json(before), _json(after)) for tenant, before, after in merges
    }
    assert set(by_tenant) == {world["tenant"], world["other"]}
    # The installation-wide row has no tenant: the installation's trail (0015).
    [(before, after)] = [
        (_json(before), _json(after))
        for before, after in _query(
            cli,
            "SELECT before, after FROM system_audit_logs WHERE action = 'user.merge' AND \"entityId\" = :id",
            id=drop.id,
        )
    ]
    assert before["email"] == drop.email and before["passwordHash"] == "[redacted]"
    assert after["mergedInto"] == str(keep.id)
    assert after["invitationsWithdrawn"] == [str(world["pending"])]
    assert str(world["built"][("candidates", "userId")]) in after["references"]["candidates.userId"]
    assert by_tenant[world["other"]][1]["membership"] == "moved"
    assert by_tenant[world["tenant"]][1]["keptRoleId"] == str(world["roles"][SystemRole.trainer])


def _user_ids(cli: Cli) -> set:
    return {_uuid(row[0]) for row in _query(cli, "SELECT id FROM users")}


def test_merge_refusals_change_nothing(cli: Cli) -> None:
    _twins_at_head(cli)
    world = asyncio.run(_arrange_merge(cli.url))
    keep, drop = world["keep"], world["drop"]
    stranger = f"stranger-{secrets.token_hex(3)}@example.org"

    async def add_stranger() -> None:
        async with system_session(cli.url) as session:
            await make_user(session, None, SystemRole.trainer, email=stranger)

    asyncio.run(add_stranger())
    users = _user_ids(cli)

    assert_one_line_error(cli("users", "merge", keep.email, keep.email, "--yes"), "the same account")
    assert_one_line_error(cli("users", "merge", keep.email, str(keep.id), "--yes"), "the same account")
    assert_one_line_error(cli("users", "merge", keep.email, stranger, "--yes"), "not case twins")
    assert_one_line_error(cli("users", "merge", keep.email, "nobody@example.org", "--yes"), "no account")
    assert_one_line_error(
        cli("users", "merge", keep.email, str(uuid.uuid4()), "--yes"), "no account has the id"
    )
    assert_one_line_error(cli("users", "merge", keep.email, drop.email), "confirmation needed")

    # Both linked to candidate records of one tenant: (tenantId, userId) would hold two rows.
    async def clash() -> None:
        async with system_session(cli.url) as session:
            await make_candidate(session, await session.get(Tenant, world["tenant"]), user_id=keep.id)

    asyncio.run(clash())
    assert_one_line_error(
        cli("users", "merge", keep.email, drop.email, "--yes"), "candidates.userId", "unlink"
    )
    assert _user_ids(cli) == users
    assert not cli.backups()
    assert _query(cli, "SELECT count(*) FROM audit_logs WHERE action = 'user.merge'") == [(0,)]


# --- set-password -----------------------------------------------------------------------------------


async def _arrange_password(url: str, status: str = "active") -> dict:
    async with system_session(url) as session:
        tenant = await make_tenant(session)
        admin = await make_user(session, tenant, SystemRole.admin, status=status)
        other = await make_user(session, tenant, SystemRole.trainer)
        tokens = [await sign_in(session, admin, tenant), await sign_in(session, admin, tenant)]
        other_token = await sign_in(session, other, tenant)
        invitation = UserInvitation(
            tenant_id=tenant.id,
            user_id=admin.id,
            token_hash=secrets.token_hex(32),
            expires_at=datetime.now(UTC) + timedelta(days=3),
        )
        session.add(invitation)
        await session.flush()
    return {
        "admin": admin,
        "other": other,
        "tokens": tokens,
        "other_token": other_token,
        "invitation": invitation.id,
    }


def _password_hash(cli: Cli, user_id: uuid.UUID) -> str | None:
    return _query(cli, 'SELECT "passwordHash" FROM users WHERE id = :id', id=user_id)[0][0]


def test_set_password_from_the_environment_ends_every_session_of_the_account(cli: Cli) -> None:
    assert_ok(cli("db", "upgrade"))
    world = asyncio.run(_arrange_password(cli.url))
    admin, other = world["admin"], world["other"]
    password = f"correct horse {secrets.token_hex(4)} battery"

    done = assert_ok(cli("users", "set-password", admin.email.upper(), new_password=password))
    assert "2 session(s) ended" in done.stdout
    assert verify_password(_password_hash(cli, admin.id), password)
    revoked = _query(cli, 'SELECT "revokedAt" FROM sessions WHERE "userId" = :id', id=admin.id)
    assert len(revoked) == 2 and all(row[0] is not None for row in revoked)
    assert _query(cli, 'SELECT "revokedAt" FROM sessions WHERE "userId" = :id', id=other.id) == [(None,)]
    [(details,)] = _query(
        cli,
        "SELECT details FROM activity_logs WHERE action = 'password_set_by_operator' AND \"userId\" = :id",
        id=admin.id,
    )
    assert _json(details)["sessions_ended"] == 2
    [(after,)] = _query(
        cli,
        "SELECT after FROM audit_logs WHERE action = 'user.set_password' AND \"entityId\" = :id",
        id=admin.id,
    )
    assert _json(after)["passwordHash"] == "[redacted]" and password not in json.dumps(_json(after))
    # An active account's pending invitation stays (it is not a password any more: accepting refuses).
    assert _query(cli, "SELECT id FROM user_invitations WHERE id = :id", id=world["invitation"])


def test_set_password_asks_twice_and_activates_an_invited_account(cli: Cli) -> None:
    assert_ok(cli("db", "upgrade"))
    world = asyncio.run(_arrange_password(cli.url, status="invited"))
    admin = world["admin"]
    password = f"a new passphrase {secrets.token_hex(4)}"
    done = assert_ok(
        cli("users", "set-password", admin.email, input=f"{password}\n{password}\n", new_password=None)
    )
    assert "now active" in done.stdout and password not in done.output
    assert verify_password(_password_hash(cli, admin.id), password)
    assert _query(cli, "SELECT status FROM users WHERE id = :id", id=admin.id) == [("active",)]
    # The invitation that created the account is accepted, as its token would have: its token is spent.
    accepted = _query(cli, 'SELECT "acceptedAt" FROM user_invitations WHERE id = :id', id=world["invitation"])
    assert len(accepted) == 1 and accepted[0][0] is not None


def test_set_password_refusals_change_nothing(cli: Cli) -> None:
    assert_ok(cli("db", "upgrade"))
    world = asyncio.run(_arrange_password(cli.url))
    admin = world["admin"]
    before = _password_hash(cli, admin.id)
    password = f"a new passphrase {secrets.token_hex(4)}"

    assert_one_line_error(
        cli("users", "set-password", admin.email, input=f"{password}\n{password}x\n", new_password=None),
        "the two passwords differ",
    )
    assert_one_line_error(
        cli("users", "set-password", admin.email, input="", new_password=None), "no password given"
    )
    assert_one_line_error(cli("users", "set-password", admin.email, new_password="short"), "password refused")
    local = admin.email.split("@")[0]
    assert_one_line_error(
        cli("users", "set-password", admin.email, new_password=f"{local} and more words"), "password refused"
    )
    assert_one_line_error(
        cli("users", "set-password", "nobody@example.org", new_password=password), "no account"
    )
    assert _password_hash(cli, admin.id) == before
    # Both of the admin's sessions still there, neither ended.
    assert _query(cli, 'SELECT "revokedAt" FROM sessions WHERE "userId" = :id', id=admin.id) == [
        (None,),
        (None,),
    ]
    assert _query(cli, "SELECT count(*) FROM activity_logs WHERE action = 'password_set_by_operator'") == [
        (0,)
    ]


# --- invitation-link --------------------------------------------------------------------------------


def test_invitation_link_issues_a_fresh_token_for_a_new_account_only(cli: Cli) -> None:
    from mobility.auth.credentials import hash_token

    assert_ok(cli("db", "upgrade"))
    world = asyncio.run(_arrange_password(cli.url, status="invited"))
    admin = world["admin"]
    asyncio.run(_no_password(cli.url, admin.id))
    code = _query(
        cli, 'SELECT t.code FROM tenants t JOIN users u ON u."tenantId" = t.id WHERE u.id = :id', id=admin.id
    )
    issued = assert_ok(cli("users", "invitation-link", admin.email, "--tenant", code[0][0]))
    token = issued.stdout.strip().splitlines()[-1]
    stored = _query(cli, 'SELECT "tokenHash" FROM user_invitations WHERE id = :id', id=world["invitation"])
    assert stored == [(hash_token(token),)]
    # An account that is set up, or another tenant: no token.
    assert_one_line_error(
        cli("users", "invitation-link", world["other"].email, "--tenant", code[0][0]), "no invitation"
    )
    assert_one_line_error(
        cli("users", "invitation-link", admin.email, "--tenant", "NOPE"), "created an account"
    )


async def _no_password(url: str, user_id) -> None:
    from mobility.users.models import User

    async with system_session(url) as session:
        (await session.get(User, user_id)).password_hash = None
