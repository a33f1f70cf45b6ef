"""Delivering webhook events (the worker's webhook outbox, mobility.core.outbox).

Each delivery is a POST of the event's JSON to the endpoint's URL, signed (webhooks.signing), over
httpx with a time limit, following no redirect, connecting to an address of the host that was checked
just before (webhooks.addresses; the TLS certificate is still checked against the host's name). A 2xx
answer is a success; anything else (a redirect, a 500, no answer in time, a refused address) is a
failure retried like any notification, then dead with the error. An endpoint whose deliveries have
all failed for `webhook_disable_after_days` is disabled, and the tenant's active Admins are told.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from mobility.core import audit
from mobility.core.config import Settings
from mobility.core.crypto import UnreadableSecret, secret_box
from mobility.core.models import utcnow
from mobility.core.outbox import Outcome
from mobility.notifications import service as notifications
from mobility.users import service as users_service
from mobility.webhooks import signing
from mobility.webhooks.addresses import AddressRefused, resolve_public
from mobility.webhooks.models import WebhookDelivery, WebhookEndpoint
from mobility.webhooks.service import EventType, signing_secrets

USER_AGENT = "WTI-Mobility-Webhooks/1"


class WebhookOutbox:
    name = "webhook"
    model = WebhookDelivery
    where = None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        secret_box(settings)  # no key to read the signing secrets with: the worker does not start
        self.client = httpx.AsyncClient(
            follow_redirects=False, timeout=settings.webhook_timeout_seconds, trust_env=False
        )

    async def prepare(
        self, session: AsyncSession, rows: list[WebhookDelivery]
    ) -> dict[uuid.UUID, WebhookEndpoint]:
        keys = {(row.tenant_id, row.endpoint_id) for row in rows}
        found = await session.execute(
            select(WebhookEndpoint).where(tuple_(WebhookEndpoint.tenant_id, WebhookEndpoint.id).in_(keys))
        )
        return {endpoint.id: endpoint for endpoint in found.scalars()}

    async def deliver(self, endpoints: dict[uuid.UUID, WebhookEndpoint], row: WebhookDelivery) -> Outcome:
        endpoint = endpoints.get(row.endpoint_id)
        if endpoint is None:
            return Outcome(cancelled=True, error="the endpoint was deleted")
        if not endpoint.is_active and row.event_type != EventType.ping:
            return Outcome(cancelled=True, error="the endpoint is disabled")
        parts = urlsplit(endpoint.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            address = await resolve_public(
                host, port, allow_private=self.settings.webhook_allow_private_addresses
            )
        except AddressRefused as exc:
            return Outcome(error=str(exc))
        body = json.dumps(row.payload, separators=(",", ":"), ensure_ascii=False).encode()
        now = utcnow()
        try:
            keys = signing_secrets(endpoint, settings=self.settings, now=now)
        except UnreadableSecret as exc:
            return Outcome(error=str(exc))
        headers = {
            **signing.headers(keys, str(row.event_id), int(time.time()), body),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "host": parts.netloc.rpartition("@")[2],
        }
        literal = f"[{address}]" if ":" in address else address
        target = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        try:
            response = await self.client.post(target, content=body, headers=headers, extensions=extensions)
        except httpx.TimeoutException:
            return Outcome(error=f"no answer within {self.settings.webhook_timeout_seconds:g} s")
        except httpx.HTTPError as exc:
            return Outcome(error=f"{type(exc).__name__}: {exc}")
        status = response.status_code
        if 200 <= status < 300:
            return Outcome(ok=True, response_status=status)
        if 300 <= status < 400:
            return Outcome(error=f"answered {status}, a redirect (not followed)", response_status=status)
        return Outcome(error=f"answered {status}", response_status=status)

    async def after(self, session: AsyncSession, results: list[tuple[Any, Outcome]]) -> None:
        """Track each endpoint's run of failures; disable one that has failed for days."""
        now = utcnow()
        limit = self.settings.webhook_disable_after_days
        for row, outcome in results:
            if outcome.released or outcome.cancelled:
                continue
            endpoint = (
                await session.execute(
                    select(WebhookEndpoint).where(
                        WebhookEndpoint.tenant_id == row.tenant_id, WebhookEndpoint.id == row.endpoint_id
                    )
                )
            ).scalar_one_or_none()
            if endpoint is None:
                continue
            if outcome.ok:
                if endpoint.failing_since is not None:
                    endpoint.failing_since = None
                    await audit.flush_as(
                        session, "webhook.recovered", conflict="The endpoint changed meanwhile."
                    )
                continue
            if endpoint.failing_since is None:
                endpoint.failing_since = now
                await audit.flush_as(session, "webhook.failing", conflict="The endpoint changed meanwhile.")
            elif endpoint.is_active and (now - endpoint.failing_since).total_seconds() >= limit * 86400:
                await self._disable(session, endpoint, outcome, now)

    async def _disable(self, session: AsyncSession, endpoint: WebhookEndpoint, outcome: Outcome, now) -> None:
        reason = f"every delivery failed for {self.settings.webhook_disable_after_days:g} days; last: {outcome.error}"
        endpoint.is_active, endpoint.disabled_at, endpoint.disabled_reason = False, now, reason[:500]
        await audit.flush_as(session, "webhook.disable", conflict="The endpoint changed meanwhile.")
        admins = await users_service.active_admins(session, {endpoint.tenant_id})
        for admin in sorted(admins.get(endpoint.tenant_id, ())):
            await notifications.notify(
                session,
                "administration.webhook_disabled",
                {"url": endpoint.url, "failing_since": endpoint.failing_since, "reason": reason[:500]},
                recipient_id=admin,
                tenant_id=endpoint.tenant_id,
                dedupe_key=f"webhook-disabled:{endpoint.id}:{now.isoformat()}",
            )

    async def close(self) -> None:
        await self.client.aclose()
