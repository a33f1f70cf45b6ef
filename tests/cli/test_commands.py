"""`mobility serve` and `mobility prisma export`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mobility.cli import app
from mobility.core import migrations
from tests.cli.conftest import assert_ok
from tests.support.databases import DatabaseFactory

MOBILITY = Path(sys.executable).parent / "mobility"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_answers_on_the_given_port(database_factory: DatabaseFactory, tmp_path: Path) -> None:
    url = database_factory.create("sqlite", "serve")
    migrations.upgrade(url)
    port = _free_port()
    env = {**os.environ, "MOBILITY_DATABASE_URL": url, "MOBILITY_DATA_DIR": str(tmp_path)}
    server = subprocess.Popen(
        [str(MOBILITY), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the server did not come up: {server.stderr.read().decode()[-500:]}")
                time.sleep(0.2)
        assert response.status_code == 200
        assert response.json()["revision"] == migrations.head_revision()
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_prisma_export_writes_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "schema.prisma"
    result = assert_ok(CliRunner().invoke(app, ["prisma", "export", "--output", str(target)]))
    assert f"wrote {target}" in result.stdout
    assert "model " in target.read_text()
    assert_ok(CliRunner().invoke(app, ["prisma", "export", "--output", str(target), "--check"]))
    target.write_text(target.read_text() + "\n// edited\n")
    stale = CliRunner().invoke(app, ["prisma", "export", "--output", str(target), "--check"])
    assert stale.exit_code == 1 and stale.stderr.startswith("error: ") and "out of date" in stale.stderr
