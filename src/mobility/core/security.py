"""Password hashing: argon2id (OWASP's first choice), via argon2-cffi.

Parameters are OWASP's recommended argon2id configuration (m = 19 MiB, t = 2, p = 1), with RFC 9106's
recommended sizes: a 16-byte random salt and a 32-byte hash (tests/auth/test_passwords.py reads each one
back from stored hashes). Hashes carry their own parameters, so raising them later only needs
`needs_rehash` on the next successful login.

Accounts carried over from the legacy app may hold bcrypt hashes (`$2a$`/`$2b$`/`$2y$`, what Node's
bcrypt and bcryptjs write). They are still verified (with the pyca `bcrypt` package), and, like any
hash that is not argon2id at today's parameters, replaced on the next successful login: no legacy
user is locked out by the migration, and no bcrypt hash outlives its owner's next login.
"""

from __future__ import annotations

import bcrypt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
# bcrypt reads at most 72 bytes of a password: the legacy app hashed only those (Node's bcrypt cuts
# the rest silently), and pyca's bcrypt refuses longer input instead of cutting it.
_BCRYPT_MAX_BYTES = 72

ARGON2_MEMORY_COST_KIB = 19456
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1

password_hasher = PasswordHasher(
    time_cost=ARGON2_TIME_COST,
    memory_cost=ARGON2_MEMORY_COST_KIB,
    parallelism=ARGON2_PARALLELISM,
    hash_len=32,
    salt_len=16,
    type=Type.ID,
)


def hash_password(password: str) -> str:
    """An argon2id hash (PHC string: `$argon2id$v=19$m=19456,t=2,p=1$...`) with a random salt."""
    if not password:
        raise ValueError("an empty password cannot be hashed")
    return password_hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches `password_hash`; False for a missing or malformed hash."""
    if not password_hash:
        return False
    if password_hash.startswith(_BCRYPT_PREFIXES):
        return _verify_legacy_bcrypt(password_hash, password)
    try:
        return password_hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _verify_legacy_bcrypt(password_hash: str, password: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode()[:_BCRYPT_MAX_BYTES], password_hash.encode("ascii"))
    except ValueError:  # a malformed hash
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash is not argon2id at the current parameters (older, weaker ones, or legacy bcrypt)."""
    if password_hash.startswith(_BCRYPT_PREFIXES):
        return True
    return password_hasher.check_needs_rehash(password_hash)


MIN_PASSWORD_LENGTH = 10
_dummy_hash: str | None = None


def dummy_hash() -> str:
    """A real hash of nothing anyone knows: verifying against it costs what a real check costs, so the
    time a failed login takes does not tell whether the e-mail has an account."""
    global _dummy_hash
    if _dummy_hash is None:
        import secrets

        _dummy_hash = hash_password(secrets.token_urlsafe(16))
    return _dummy_hash


def check_password_strength(password: str, *, email: str | None = None) -> None:
    """NIST SP 800-63B style: long enough, not made of the account's own name, and not among the
    commonly used or breached passwords nor an easy variant of one (ASVS 5.0 6.2.4). No composition
    rules. Raises InvalidInput (field `newPassword`) saying why."""
    from mobility.core.errors import InvalidInput

    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"Use at least {MIN_PASSWORD_LENGTH} characters.", field="newPassword")
    local = (email or "").split("@")[0].lower()
    if local and len(local) >= 4 and local in password.lower():
        raise InvalidInput("The password must not contain your e-mail address.", field="newPassword")
    reason = guessable_because(password, context=_context_words(email))
    if reason is not None:
        raise InvalidInput(
            f"This password is too easy to guess: {reason} Choose another, e.g. a few unrelated words.",
            field="newPassword",
        )


# zxcvbn's estimate in guesses: below 10^8 ("score" 0-2) a password is one of the ~30,000 most common
# ones of breached-password lists (zxcvbn ships them), a common word or name, a keyboard pattern, a
# date, a repeat or sequence, or an easy variant of these (capitals, l33t, a year or digits added).
MIN_PASSWORD_SCORE = 3
# zxcvbn refuses longer input: the estimate covers the first 72 characters (a strong start is enough).
_ESTIMATED_CHARACTERS = 72
# Words a guesser of this platform's passwords tries first (ASVS: context-specific words).
_PLATFORM_WORDS = ("wti", "waterfront", "mobility", "labour", "training", "institute")


def guessable_because(password: str, *, context: tuple[str, ...] = ()) -> str | None:
    """Why `password` is easy to guess (one sentence), or None. Offline: zxcvbn's own word lists.

    Costs a few milliseconds, up to ~0.5 s for pathological 72-character input; it runs only when a
    password is being set, after the caller has proved who they are (token or current password)."""
    from zxcvbn import zxcvbn

    estimate = zxcvbn(password[:_ESTIMATED_CHARACTERS], user_inputs=list(context))
    if estimate["score"] >= MIN_PASSWORD_SCORE:
        return None
    warning = estimate["feedback"]["warning"] or "It is made of common words, names or patterns."
    if warning.startswith("This is "):
        return "it is " + warning.removeprefix("This is ")
    return warning[0].lower() + warning[1:]


def _context_words(email: str | None) -> tuple[str, ...]:
    parts = (email or "").lower().replace("@", ".").replace("_", ".").replace("-", ".").split(".")
    return _PLATFORM_WORDS + tuple(part for part in parts if len(part) >= 3)
