"""A finished proxy request, for operators: its Prometheus samples and its one log line
(logger `gateway.requests`), both built from the ledger event, once per request.

The line never carries the key (only its prefix) or any prompt or completion text.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings

from billing.metering import UsageEvent
from core.metrics import request_observe

if TYPE_CHECKING:
    from .proxy import ProxyCall

request_logger = logging.getLogger("gateway.requests")


def call_observe(call: "ProxyCall", event: UsageEvent | None, cost: Decimal | None) -> None:
    key = call.key
    organization = key.organization_slug if key else ""
    model = call.model.public_id if call.model else "unknown"  # bounded: never the client's text
    provider = call.route.provider.name if call.route else ""
    endpoint = event.endpoint if event else (call.endpoint or call.client_format)
    latency_ms = event.latency_ms if event else call.elapsed_ms()
    usage = call.usage or {}
    request_observe(
        endpoint=endpoint, model=model, provider=provider, status=call.status, error_type=call.error_type,
        latency_ms=latency_ms, ttft_ms=call.ttft_ms, organization=organization,
        tokens=usage if event else None, cost=cost,
    )
    if not settings.GATEWAY_REQUEST_LOG or not request_logger.isEnabledFor(logging.INFO):
        return
    request_logger.info("request", extra={"fields": {
        "request_id": call.request_id,
        "organization": organization,
        "key_prefix": key.prefix if key else "",
        "endpoint": endpoint,
        "model": model,
        "provider": provider,
        "route": call.route.id if call.route else None,
        "status": call.status,
        "error_type": call.error_type,
        "streamed": call.streamed,
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "completion_tokens": usage.get("completion_tokens", 0),
        "cache_read_tokens": usage.get("cache_read_tokens", 0),
        "cache_write_tokens": usage.get("cache_write_tokens", 0),
        "tokens_estimated": call.tokens_estimated,
        "cost_usd": None if cost is None else format(cost, "f"),
        "latency_ms": latency_ms,
        "ttft_ms": call.ttft_ms,
        "client_ip": call.client_ip,
        "client_disconnected": call.client_disconnected,
    }})
