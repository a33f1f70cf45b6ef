"""The `mobility` command, run in-process with Typer's CliRunner against a test database.

Each invocation reads its settings afresh from the environment, which the `cli` fixture points at the
test's own database, data directory and backup directory (and away from any `.env` file).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import create_engine, inspect, pool, text
from typer.testing import CliRunner

from mobility.cli import app
from mobility.ops import migrations
from tests.support.databases import to_sync


@dataclass
class Cli:
    backend: str
    url: str
    data_dir: Path
    backup_dir: Path
    monkeypatch: pytest.MonkeyPatch

    def __call__(self, *args: str, input: str | None = None, **env: str | None) -> Result:
        """Runs `mobility *args`; keyword arguments set (or with None, unset) MOBILITY_<NAME>."""
        with self.monkeypatch.context() as patch:
            for name, value in env.items():
                if value is None:
                    patch.delenv(f"MOBILITY_{name.upper()}", raising=False)
                else:
                    patch.setenv(f"MOBILITY_{name.upper()}", value)
            return CliRunner().invoke(app, list(args), input=input)

    # --- looking at the database without the CLI: raw SQL on purpose, what the CLI left as it is ---

    def query(self, sql: str, **params: Any) -> list[Any]:
        engine = create_engine(to_sync(self.url), poolclass=pool.NullPool)
        try:
            with engine.connect() as connection:
                return list(connection.execute(text(sql), params))
        finally:
            engine.dispose()

    def execute(self, *statements: str) -> None:
        engine = create_engine(to_sync(self.url), poolclass=pool.NullPool)
        try:
            with engine.begin() as connection:
                for statement in statements:
                    connection.execute(text(statement))
        finally:
            engine.dispose()

    def tables(self) -> set[str]:
        engine = create_engine(to_sync(self.url), poolclass=pool.NullPool)
        try:
            with engine.connect() as connection:
                return set(inspect(connection).get_table_names())
        finally:
            engine.dispose()

    def revision(self) -> str | None:
        return migrations.current_revision(self.url)

    def backups(self) -> list[Path]:
        return sorted(self.backup_dir.glob("*")) if self.backup_dir.exists() else []


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


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """The command failed with exactly one `error:` line on stderr, no traceback; that line."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def assert_ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result
