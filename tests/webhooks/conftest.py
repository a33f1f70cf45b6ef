"""A real HTTP server process on loopback (tests/webhooks/http_server.py), and delivering webhooks as
the worker does."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mobility.core.config import Settings

SERVER = Path(__file__).with_name("http_server.py")


@dataclass
class Receiver:
    port: int
    directory: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests(self, path: str | None = None) -> list[dict]:
        found = [json.loads(p.read_text()) for p in sorted(self.directory.glob("*.json"))]
        return [r for r in found if path is None or r["path"] == path]


@pytest.fixture(scope="session")
def receiver(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("webhooks")
    process = subprocess.Popen(
        [sys.executable, str(SERVER), str(directory)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("port "), f"the HTTP server did not start: {line!r}"
        yield Receiver(int(line.split()[1]), directory)
    finally:
        process.terminate()
        process.wait(timeout=10)


def webhook_settings(url: str, **overrides) -> Settings:
    values = {
        "database_url": url,
        "webhook_allow_private_addresses": True,
        "webhook_timeout_seconds": 1,
        "notify_retry_base_seconds": 0,
        "notify_max_attempts": 3,
        **overrides,
    }
    return Settings(**values)


async def deliver_webhooks(settings: Settings, url: str):
    from mobility.app_session import create_sessionmaker
    from mobility.core.db import create_engine
    from mobility.webhooks.delivery import WebhookOutbox
    from mobility.worker.runner import Worker

    engine = create_engine(url)
    worker = Worker(settings, create_sessionmaker(engine), [WebhookOutbox(settings)])
    try:
        return await worker.run_once()
    finally:
        await worker.close()
        await engine.dispose()


@pytest.fixture
async def hook_url(per_backend, backend: str, database_factory) -> str:
    """A migrated database of the webhook tests alone (their worker drains only their deliveries)."""

    async def make() -> str:
        import asyncio

        from mobility.ops import migrations

        url = database_factory.create(backend, "hooks")
        await asyncio.to_thread(migrations.upgrade, url)
        return url

    return await per_backend.get("webhook-db", backend, make)
