"""Password hashing: argon2id at OWASP's parameters or stronger, and old hashes upgraded on login."""

import base64
import secrets

import bcrypt
from argon2 import PasswordHasher, Type

from mobility.authz.permissions import SystemRole
from mobility.core import security
from mobility.users.models import User
from tests.auth.support import attempt, log_in, set_user
from tests.support.app import api_client, bearer, problem
from tests.support.factories import PASSWORD, make_tenant, make_user
from tests.support.sessions import get_row, system_session

OWASP = "$argon2id$v=19$m=19456,t=2,p=1$"

# What the project promises for every stored hash (core/security.py, README), written out here rather
# than read from the code: argon2id, version 1.3 (19), OWASP's configuration m = 19 MiB, t = 2, p = 1,
# and RFC 9106's recommended sizes, a 128-bit salt and a 256-bit tag.
PROMISED = {
    "variant": "argon2id",
    "version": 19,
    "memory_kib": 19 * 1024,
    "time_cost": 2,
    "parallelism": 1,
    "salt_bytes": 16,
    "hash_bytes": 32,
}


def _b64(text: str) -> bytes:
    """PHC strings use standard base64 without padding."""
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def argon2_parameters(encoded: str) -> dict:
    """Every parameter of an encoded hash, from the string itself: `$argon2id$v=19$m=..,t=..,p=..$salt$hash`."""
    empty, variant, version, params, salt, digest = encoded.split("$")
    assert empty == "", encoded
    settings = dict(pair.split("=") for pair in params.split(","))
    assert set(settings) == {"m", "t", "p"}, encoded
    return {
        "variant": variant,
        "version": int(version.removeprefix("v=")),
        "memory_kib": int(settings["m"]),
        "time_cost": int(settings["t"]),
        "parallelism": int(settings["p"]),
        "salt_bytes": len(_b64(salt)),
        "hash_bytes": len(_b64(digest)),
    }


def test_the_parser_reads_a_known_hash() -> None:
    # Another configuration, hashed by argon2-cffi directly: the parser reads what is there.
    other = PasswordHasher(time_cost=3, memory_cost=8192, parallelism=4, salt_len=8, hash_len=24).hash("x")
    assert argon2_parameters(other) == {
        "variant": "argon2id",
        "version": 19,
        "memory_kib": 8192,
        "time_cost": 3,
        "parallelism": 4,
        "salt_bytes": 8,
        "hash_bytes": 24,
    }


def test_a_new_hash_has_every_promised_parameter() -> None:
    assert argon2_parameters(security.hash_password(PASSWORD)) == PROMISED


async def test_a_stored_hash_has_every_promised_parameter(migrated_database_url: str) -> None:
    """The hash the API writes (a password change), read back from the users table."""
    async with system_session(migrated_database_url) as session:
        member = await make_user(session, await make_tenant(session), SystemRole.trainer)
    new_password = f"stored hash check {secrets.token_urlsafe(12)}"
    async with api_client(migrated_database_url) as client:
        token = await log_in(client, member.email)
        changed = await client.post(
            "/api/v1/me/password",
            json={"currentPassword": PASSWORD, "newPassword": new_password},
            headers=bearer(token),
        )
        assert changed.status_code == 200, changed.text
    stored = (await get_row(migrated_database_url, User, member.id)).password_hash
    assert argon2_parameters(stored) == PROMISED
    assert security.verify_password(stored, new_password)


def test_hashes_are_argon2id_at_owasp_parameters_with_a_random_salt() -> None:
    hasher = security.password_hasher
    assert hasher.type is Type.ID
    assert hasher.memory_cost >= 19456 and hasher.time_cost >= 2 and hasher.parallelism >= 1
    first, second = security.hash_password(PASSWORD), security.hash_password(PASSWORD)
    assert first.startswith(OWASP) and second.startswith(OWASP)
    assert first != second  # salted
    assert security.verify_password(first, PASSWORD)
    assert not security.verify_password(first, PASSWORD + "x")
    assert not security.verify_password(None, PASSWORD)
    assert not security.verify_password("not a hash", PASSWORD)
    assert not security.needs_rehash(first)


async def test_a_weaker_hash_is_upgraded_on_the_next_successful_login(migrated_database_url: str) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=Type.ID).hash(PASSWORD)
    older_variant = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.I).hash(PASSWORD)
    async with system_session(migrated_database_url) as session:
        tenant = await make_tenant(session)
        members = [await make_user(session, tenant, SystemRole.trainer) for _ in range(2)]
    for member, old_hash in zip(members, (weak, older_variant), strict=True):
        await set_user(migrated_database_url, member.id, password_hash=old_hash)
    async with api_client(migrated_database_url) as client:
        # A failed login leaves the hash alone.
        problem(await attempt(client, members[0].email, "nope-nope-nope"), 401)
        assert (await get_row(migrated_database_url, User, members[0].id)).password_hash == weak
        upgraded = []
        for member, old_hash in zip(members, (weak, older_variant), strict=True):
            await log_in(client, member.email)
            upgraded.append((await get_row(migrated_database_url, User, member.id)).password_hash)
            assert upgraded[-1] != old_hash and argon2_parameters(upgraded[-1]) == PROMISED
            assert security.verify_password(upgraded[-1], PASSWORD)
        # The upgraded hash keeps working, and is not rehashed again.
        await log_in(client, members[0].email)
        assert (await get_row(migrated_database_url, User, members[0].id)).password_hash == upgraded[0]


def _legacy_bcrypt(password: str, prefix: bytes = b"2b") -> str:
    """A hash as the legacy (Node) app wrote it: bcrypt, cut at 72 bytes; cost 4 to keep the test fast."""
    return bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(rounds=4, prefix=prefix)).decode()


def test_legacy_bcrypt_hashes_are_verified_and_marked_for_replacement() -> None:
    for prefix in (b"2a", b"2b"):
        legacy = _legacy_bcrypt(PASSWORD, prefix)
        assert legacy.startswith(f"${prefix.decode()}$")
        assert security.verify_password(legacy, PASSWORD)
        assert not security.verify_password(legacy, PASSWORD + "x")
        assert security.needs_rehash(legacy)
    # PHP's spelling of the same algorithm.
    assert security.verify_password("$2y$" + _legacy_bcrypt(PASSWORD)[4:], PASSWORD)
    assert not security.verify_password("$2b$04$not-a-real-bcrypt-hash", PASSWORD)
    # bcrypt read only the first 72 bytes: the legacy app let longer passwords in by those alone.
    long_password = "é" * 40  # 80 bytes
    assert security.verify_password(_legacy_bcrypt(long_password), long_password)


async def test_a_legacy_bcrypt_account_logs_in_and_gets_an_argon2id_hash(migrated_database_url: str) -> None:
    legacy = _legacy_bcrypt(PASSWORD)
    async with system_session(migrated_database_url) as session:
        tenant = await make_tenant(session)
        member = await make_user(session, tenant, SystemRole.trainer)
    await set_user(migrated_database_url, member.id, password_hash=legacy)
    async with api_client(migrated_database_url) as client:
        problem(await attempt(client, member.email, PASSWORD + "x"), 401)
        assert (await get_row(migrated_database_url, User, member.id)).password_hash == legacy
        await log_in(client, member.email)
        upgraded = (await get_row(migrated_database_url, User, member.id)).password_hash
        assert argon2_parameters(upgraded) == PROMISED and security.verify_password(upgraded, PASSWORD)
        await log_in(client, member.email)
