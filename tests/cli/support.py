"""Helpers of the CLI tests: `Cli` (the `mobility` command, run in-process with Typer's CliRunner
against a test database; the `cli` fixture makes one), what a command's result must look like, and
`serving` (`mobility serve` as a real process).

Each invocation reads its settings afresh from the environment, which the `cli` fixture points at the
test's own database, data directory and backup directory (and away from any `.env` file).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from sqlalchemy import create_engine, inspect, pool, text
from typer.testing import CliRunner

from mobility.cli import app
from mobility.ops import migrations
from tests.support.databases import to_sync
from tests.support.tcp_proxy import free_port


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


MOBILITY = Path(sys.executable).parent / "mobility"


@contextmanager
def serving(url: str, tmp_path: Path, **env: str) -> Iterator[str]:
    """`mobility serve` on a free port, its base URL once /health answers."""
    port = free_port()
    environment = {**os.environ, "MOBILITY_DATABASE_URL": url, "MOBILITY_DATA_DIR": str(tmp_path), **env}
    server = subprocess.Popen(
        [str(MOBILITY), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the server did not come up: {server.stderr.read().decode()[-500:]}")
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)
