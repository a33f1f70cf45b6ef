"""core/crypto.py: stored secrets encrypted with the installation's key; where the key comes from."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from mobility.core import crypto
from mobility.core.config import Settings
from mobility.core.crypto import (
    KEY_FILE,
    InvalidSecretKey,
    MissingSecretKey,
    UnreadableSecret,
    secret_box,
)

SECRET = "whsec_c2VjcmV0IGtleSBvZiBhIHRlc3Q="
CONFIGURED = "postgresql+asyncpg://u@db.example/mobility"


def settings(tmp_path: Path, **values) -> Settings:
    # Explicit values win over the environment (the suite sets MOBILITY_SECRET_KEY for its databases).
    return Settings(**{"data_dir": tmp_path, "secret_key": None, "database_url": "", **values})


def test_a_secret_comes_back_as_it_was_and_is_stored_unreadable(tmp_path: Path) -> None:
    box = secret_box(settings(tmp_path, secret_key=Fernet.generate_key().decode()))
    first, second = box.encrypt(SECRET), box.encrypt(SECRET)
    assert SECRET not in first and "c2VjcmV0" not in first
    assert first != second  # a fresh IV each time: equal secrets do not look equal
    assert box.decrypt(first) == box.decrypt(second) == SECRET


def test_another_key_or_a_changed_value_is_refused(tmp_path: Path) -> None:
    token = secret_box(settings(tmp_path, secret_key=Fernet.generate_key().decode())).encrypt(SECRET)
    other = secret_box(settings(tmp_path, secret_key=Fernet.generate_key().decode()))
    with pytest.raises(UnreadableSecret):
        other.decrypt(token)
    box = secret_box(settings(tmp_path, secret_key=Fernet.generate_key().decode()))
    token = box.encrypt(SECRET)
    changed = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    with pytest.raises(UnreadableSecret):
        box.decrypt(changed)
    with pytest.raises(UnreadableSecret):
        box.decrypt("not ascii é")


def test_after_a_key_rotation_old_values_are_read_and_new_ones_written_with_the_new_key(
    tmp_path: Path,
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    stored = secret_box(settings(tmp_path, secret_key=old)).encrypt(SECRET)
    rotated = secret_box(settings(tmp_path, secret_key=new, previous_secret_keys=f" {old} ,"))
    assert rotated.decrypt(stored) == SECRET
    fresh = rotated.encrypt(SECRET)
    assert secret_box(settings(tmp_path, secret_key=new)).decrypt(fresh) == SECRET
    with pytest.raises(UnreadableSecret):
        secret_box(settings(tmp_path, secret_key=old)).decrypt(fresh)


def test_the_embedded_default_generates_its_key_once_into_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = secret_box(settings(data)).encrypt(SECRET)
    key_file = data / KEY_FILE
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # the owner's alone
    key = key_file.read_text().strip()
    Fernet(key)  # a real key, not a fixed one
    # The next start (a new process: nothing cached) reads the same key back from the file.
    crypto._box.cache_clear()
    assert secret_box(settings(data)).decrypt(token) == SECRET
    assert key_file.read_text().strip() == key
    # Two installations, two keys.
    other = secret_box(settings(tmp_path / "other")).encrypt(SECRET)
    with pytest.raises(UnreadableSecret):
        secret_box(settings(data)).decrypt(other)


def test_a_configured_database_needs_the_key_set(tmp_path: Path) -> None:
    with pytest.raises(MissingSecretKey, match="MOBILITY_SECRET_KEY"):
        secret_box(settings(tmp_path, database_url=CONFIGURED))
    assert not (tmp_path / KEY_FILE).exists()
    key = Fernet.generate_key().decode()
    assert secret_box(settings(tmp_path, database_url=CONFIGURED, secret_key=key)).encrypt(SECRET)


# Not keys: too short, 44 characters that are not base64 of 32 bytes, a key cut short.
@pytest.mark.parametrize("key", ["short", "x" * 44, "q" * 42], ids=["short", "not-base64", "cut-short"])
def test_a_key_that_is_not_a_fernet_key_is_refused_without_showing_it(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidSecretKey) as refused:
        secret_box(settings(tmp_path, secret_key=key))
    assert key not in str(refused.value)
    with pytest.raises(InvalidSecretKey):
        secret_box(settings(tmp_path, secret_key=Fernet.generate_key().decode(), previous_secret_keys=key))


def test_the_key_is_not_shown_with_the_settings(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    assert key not in repr(settings(tmp_path, secret_key=key, previous_secret_keys=key))
