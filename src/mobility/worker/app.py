"""The worker as `mobility worker` runs it: its outboxes and its jobs, on the owner's connection (it
acts across tenants, under the system scope, like the CLI)."""

from __future__ import annotations

import logging

from mobility.app_session import create_sessionmaker
from mobility.core.config import Settings
from mobility.core.db import create_engine
from mobility.notifications.delivery import EmailOutbox
from mobility.webhooks.delivery import WebhookOutbox
from mobility.worker.jobs import Jobs
from mobility.worker.runner import Tally, Worker


def build_worker(settings: Settings, sessionmaker) -> Worker:
    return Worker(settings, sessionmaker, [EmailOutbox(settings), WebhookOutbox(settings)], jobs=Jobs())


async def run(settings: Settings, *, once: bool) -> Tally:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = create_engine(settings.effective_database_url, settings=settings)
    try:
        worker = build_worker(settings, create_sessionmaker(engine))
        if not once:
            return await worker.run_forever()
        try:
            return await worker.run_once()
        finally:
            await worker.close()
    finally:
        await engine.dispose()
