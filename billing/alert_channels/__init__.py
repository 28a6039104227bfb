"""Where budget alerts go: one module per channel kind, registered in TRANSPORTS.

A transport takes the channel's target (an address or a URL), its secret (signed webhooks only)
and the alert payload, sends it once, and says how it went. Retrying, backoff and the delivery
log are the caller's (billing.alerts); a transport never retries and never raises for a failed
delivery. Adding a channel kind is one module here and one line below, as healthchecks does with
its integrations.
"""

from __future__ import annotations

from typing import Callable

from . import email, slack, webhook
from .outcome import DeliveryOutcome

Transport = Callable[..., DeliveryOutcome]

TRANSPORTS: dict[str, Transport] = {
    "email": email.send,
    "slack": slack.send,
    "webhook": webhook.send,
}

__all__ = ["TRANSPORTS", "DeliveryOutcome", "Transport"]
