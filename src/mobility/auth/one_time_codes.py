"""The second factor's codes: TOTP codes (RFC 6238) and one-time recovery codes, checked and burnt.

Functions of a `User` row that change only that row (a burnt step or code); the caller's unit of work
writes it: a login, a re-authentication, two-factor set-up.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import pyotp

from mobility.users.models import User

RECOVERY_CODE_COUNT = 10


def _totp_step(user: User, code: str, now: datetime) -> int | None:
    """The time step `code` is valid for (this one or one either side), or None."""
    if not user.totp_secret or not code.isdigit():
        return None
    totp = pyotp.TOTP(user.totp_secret)
    for offset in (0, -1, 1):
        at = now + timedelta(seconds=offset * totp.interval)
        if secrets.compare_digest(totp.at(at), code):
            return totp.timecode(at)
    return None


def use_totp(user: User, code: str, now: datetime) -> bool:
    """Check a TOTP code and burn its time step: the same code cannot be replayed."""
    step = _totp_step(user, code.strip(), now)
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        return False
    user.totp_last_step = step
    return True


def _recovery_hash(code: str) -> str:
    # Recovery codes carry 80 random bits: a fast hash is enough, and verifying 10 stays cheap.
    return hashlib.sha256(code.replace("-", "").strip().upper().encode()).hexdigest()


def new_recovery_codes(user: User) -> list[str]:
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(16))
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    user.recovery_codes = [_recovery_hash(code) for code in codes]
    return codes


def use_recovery_code(user: User, code: str) -> bool:
    digest = _recovery_hash(code)
    remaining = list(user.recovery_codes or [])
    for stored in remaining:
        if secrets.compare_digest(stored, digest):
            remaining.remove(stored)
            user.recovery_codes = remaining
            return True
    return False
