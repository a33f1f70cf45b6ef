"""Fixtures of the delivery tests: a real SMTP server process (tests/notifications/smtp_server.py), a
database of their own (every test drains what it queued, so none leaves work for the next), and the
worker run in process or as a `mobility worker` process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from mobility.app_session import create_sessionmaker
from mobility.core.config import Settings
from mobility.worker.app import build_worker
from tests.support.sessions import Db

SERVER = Path(__file__).with_name("smtp_server.py")


@dataclass
class Sink:
    port: int
    directory: Path

    def messages(self, to: str | None = None) -> list[EmailMessage]:
        found = []
        for path in sorted(self.directory.glob("*.eml")):
            message = message_from_bytes(path.read_bytes(), policy=default)
            if to is None or str(message["To"]) == to:
                found.append(message)
        return found


@pytest.fixture(scope="session")
def smtp_sink(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("smtp")
    process = subprocess.Popen(
        [sys.executable, str(SERVER), str(directory)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("port "), f"the SMTP server did not start: {line!r}"
        yield Sink(int(line.split()[1]), directory)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
async def outbox_db(per_backend, backend: str, database_factory) -> Db:
    """A migrated database of the delivery tests alone, kept for the run."""

    async def make() -> Db:
        from mobility.ops import migrations

        url = database_factory.create(backend, "outbox")
        await asyncio.to_thread(migrations.upgrade, url)
        return Db(url)

    database = await per_backend.get("outbox-db", backend, make)
    return database


def worker_settings(db: Db, sink: Sink, **overrides) -> Settings:
    values = {
        "database_url": db.url,
        "smtp_host": "127.0.0.1",
        "smtp_port": sink.port,
        "smtp_timeout_seconds": 2,
        "mail_from": "no-reply@mobility.test",
        "notify_retry_base_seconds": 0,
        "notify_max_attempts": 3,
        "worker_lease_seconds": 60,
        **overrides,
    }
    return Settings(**values)


async def run_worker(settings: Settings, db: Db):
    """One `--once` run of the worker in this process, on the owner's connection like the CLI's."""
    worker = build_worker(settings, create_sessionmaker(db.owner_engine))
    try:
        return await worker.run_once()
    finally:
        await worker.close()


def worker_process(settings: Settings, *args: str) -> subprocess.Popen:
    """`mobility worker` in a process of its own, with these settings in its environment."""
    env = {**os.environ}
    for name, value in settings.model_dump().items():
        if value is not None and not isinstance(value, dict | list):
            env[f"MOBILITY_{name.upper()}"] = str(value)
    return subprocess.Popen(
        [sys.executable, "-m", "mobility.cli", "worker", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def deliver_emails(settings: Settings, url: str):
    """Deliver what is queued in the database at `url` (e-mails only, no jobs), as the worker would."""
    from mobility.app_session import create_sessionmaker
    from mobility.core.db import create_engine
    from mobility.notifications.delivery import EmailOutbox
    from mobility.worker.runner import Worker

    engine = create_engine(url)
    worker = Worker(settings, create_sessionmaker(engine), [EmailOutbox(settings)])
    try:
        return await worker.run_once()
    finally:
        await worker.close()
        await engine.dispose()
