"""A generic JSON webhook signed the Standard Webhooks way (standardwebhooks.com):
`webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256>` over
`id.timestamp.body`, with the `whsec_` secret shown once in the admin. Receivers verify it with
any Standard Webhooks library.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

import orjson
from standardwebhooks.webhooks import Webhook

from .outcome import DeliveryOutcome
from .outgoing import post


def secret_new() -> str:
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signed_headers(*, secret: str, message_id: str, body: bytes, now: datetime | None = None) -> dict[str, str]:
    now = now or datetime.now(timezone.utc)
    signature = Webhook(secret).sign(msg_id=message_id, timestamp=now, data=body.decode())
    return {"webhook-id": message_id, "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}


def send(*, target: str, secret: str, payload: dict) -> DeliveryOutcome:
    body = orjson.dumps(payload)
    # The id is the alert's, the same on every attempt, so a receiver can drop redeliveries.
    headers = signed_headers(secret=secret, message_id=payload["id"], body=body)
    return post(target, body, headers)
