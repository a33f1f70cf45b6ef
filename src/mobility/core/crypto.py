"""Secrets the application must read back (webhook signing secrets), encrypted at rest.

Fernet (the `cryptography` package: AES-128-CBC with an HMAC-SHA256 tag, a random IV per value): a
stolen database or backup gives no usable secret without the key, and a changed ciphertext is refused,
not decrypted into garbage. The key is `MOBILITY_SECRET_KEY` (32 random bytes, url-safe base64, what
`Fernet.generate_key()` prints). Without it:

- the embedded default (no `MOBILITY_DATABASE_URL`) keeps a key of its own in `data_dir/secret.key`,
  generated on first use (owner-readable only), beside the database file it protects: `make run` needs
  no setting. Back the two up together;
- a configured database needs the key set, the same on every API and worker host: a key generated on
  one host could not be read on the others, so `MissingSecretKey` says so instead.

Rotating the key: set the new one as `MOBILITY_SECRET_KEY` and the old one(s) in
`MOBILITY_PREVIOUS_SECRET_KEYS` (comma-separated): values are read with any of them and written with
the new one (`MultiFernet`).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from mobility.core.config import Settings

KEY_FILE = "secret.key"


class MissingSecretKey(RuntimeError):
    """No key to encrypt stored secrets with, and none may be generated here."""


class InvalidSecretKey(RuntimeError):
    """A configured key is not a Fernet key."""


class UnreadableSecret(ValueError):
    """A stored value that none of the keys decrypts (another key, or changed)."""


class SecretBox:
    def __init__(self, keys: list[bytes]) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeEncodeError):
            raise UnreadableSecret(
                "a stored secret cannot be decrypted with MOBILITY_SECRET_KEY (or a previous key)"
            ) from None


def _checked(key: str, name: str) -> bytes:
    try:
        Fernet(key.strip().encode())
    except (ValueError, UnicodeEncodeError):
        raise InvalidSecretKey(
            f"{name} is not a Fernet key (32 random bytes, url-safe base64: "
            'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())")'
        ) from None
    return key.strip().encode()


def _key_file(data_dir: Path, *, generate: bool) -> bytes:
    path = data_dir / KEY_FILE
    if not path.exists():
        if not generate:
            raise MissingSecretKey(
                "MOBILITY_SECRET_KEY is not set: with a configured database (MOBILITY_DATABASE_URL) stored "
                "secrets are encrypted with a key you set, the same on every host; generate one with "
                'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
            )
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it meanwhile: use theirs
            pass
        else:
            with os.fdopen(descriptor, "wb") as file:
                file.write(Fernet.generate_key() + b"\n")
    return _checked(path.read_text(encoding="ascii"), str(path))


@lru_cache(maxsize=16)
def _box(key: str | None, previous: str | None, data_dir: Path, embedded: bool) -> SecretBox:
    primary = _checked(key, "MOBILITY_SECRET_KEY") if key else _key_file(data_dir, generate=embedded)
    older = [
        _checked(value, "MOBILITY_PREVIOUS_SECRET_KEYS")
        for value in (previous or "").split(",")
        if value.strip()
    ]
    return SecretBox([primary, *older])


def secret_box(settings: Settings) -> SecretBox:
    """The box of `settings`' key (see the module's docstring); raises MissingSecretKey or
    InvalidSecretKey when there is none to use."""
    return _box(
        settings.secret_key,
        settings.previous_secret_keys,
        settings.data_dir.resolve(),
        not settings.database_url,
    )
