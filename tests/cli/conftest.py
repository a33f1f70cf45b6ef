"""The `cli` fixture: the `mobility` command on the test's own empty database (tests/cli/support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.support import Cli


@pytest.fixture
def cli(
    backend: str, empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cli]:
    """The CLI on a brand-new empty database of the test's backend."""
    data_dir, backup_dir = tmp_path / "data", tmp_path / "backups"
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("ADMIN_PASSWORD", "ADMIN_EMAIL", "MIGRATION_LOCK_TIMEOUT"):
        monkeypatch.delenv(f"MOBILITY_{name}", raising=False)
    monkeypatch.setenv("MOBILITY_DATABASE_URL", empty_database_url)
    monkeypatch.setenv("MOBILITY_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MOBILITY_BACKUP_DIR", str(backup_dir))
    yield Cli(backend, empty_database_url, data_dir, backup_dir, monkeypatch)
