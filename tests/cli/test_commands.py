"""`mobility serve` and `mobility prisma export`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, pool, text
from typer.testing import CliRunner

from mobility.cli import app
from mobility.ops import migrations
from tests.cli.support import assert_ok, serving
from tests.support.databases import DatabaseFactory, to_sync


def test_serve_answers_on_the_given_port(database_factory: DatabaseFactory, tmp_path: Path) -> None:
    url = database_factory.create("sqlite", "serve")
    migrations.upgrade(url)
    with serving(url, tmp_path) as base:
        response = httpx.get(f"{base}/health", timeout=5)
    assert response.status_code == 200
    assert response.json()["revision"] == migrations.head_revision()


def test_serve_believes_forwarded_addresses_from_listed_proxies_only(
    database_factory: DatabaseFactory, tmp_path: Path
) -> None:
    """The client address decides the address throttle and what the logs say: behind a listed proxy it
    is the forwarded one; from anyone else the header is ignored."""
    url = database_factory.create("sqlite", "serve_proxy")
    migrations.upgrade(url)
    attempt = {"email": "nobody@example.org", "password": "not-the-password"}
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    with serving(url, tmp_path) as base:  # default: the proxy on this host (127.0.0.1)
        assert httpx.post(f"{base}/api/v1/auth/login", json=attempt, headers=forwarded).status_code == 401
    with serving(url, tmp_path, MOBILITY_FORWARDED_ALLOW_IPS="192.0.2.1") as base:
        assert httpx.post(f"{base}/api/v1/auth/login", json=attempt, headers=forwarded).status_code == 401
    # A synchronous test of a server in another process: a plain read of the table it wrote.
    engine = create_engine(to_sync(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            keys = set(connection.execute(text("SELECT key FROM login_throttles")).scalars())
    finally:
        engine.dispose()
    assert {"address:203.0.113.7", "address:127.0.0.1"} <= keys


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
