"""Webhook signatures, the Standard Webhooks scheme (https://www.standardwebhooks.com).

Each delivery carries three headers: `webhook-id` (the event id: the same for every retry and replay of
one event, so a receiver deduplicates on it), `webhook-timestamp` (Unix seconds) and
`webhook-signature`: `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, keyed with the endpoint's
secret (`whsec_<base64 key>`); during the day after a rotation a second signature with the previous
secret follows, space-separated. A receiver verifies it like this (or with any Standard Webhooks
library):

    import base64, hashlib, hmac, time

    def verify(secret: str, headers: dict, body: bytes, tolerance: int = 300) -> bool:
        msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
        if abs(time.time() - int(timestamp)) > tolerance:
            return False  # too old (or from the future): a replayed request
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signed = f"{msg_id}.{timestamp}.".encode() + body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        return any(
            hmac.compare_digest(expected, sig.split(",", 1)[1])
            for sig in headers["webhook-signature"].split()
            if sig.startswith("v1,")
        )
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
KEY_BYTES = 32


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(secrets_in_use: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            signature(secret, msg_id, timestamp, body) for secret in secrets_in_use
        ),
    }
