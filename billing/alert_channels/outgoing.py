"""Outbound HTTP for alert channels: a fixed timeout, and no requests into the operator's own
network unless allowed.

A webhook URL is typed by an operator, but it still must not turn the gateway into a way to reach
internal services (SSRF): every address the host resolves to is checked at send time, not only
when the URL was saved, because DNS can change in between. ALERT_WEBHOOK_ALLOW_PRIVATE=1 lifts
the check for tests and on-premise receivers.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from .outcome import DeliveryOutcome

TIMEOUT_SECONDS = 10.0
USER_AGENT = "ai-gateway-alerts/1"


class DestinationRefused(Exception):
    pass


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def destination_check(url: str) -> None:
    """Raise DestinationRefused unless the URL is http(s) to a host whose every address is public."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DestinationRefused(f"not an http(s) URL: {url[:100]}")
    if settings.ALERT_WEBHOOK_ALLOW_PRIVATE:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DestinationRefused(f"cannot resolve {parts.hostname}: {exc}") from None
    for info in infos:
        address = info[4][0]
        if not _public(address):
            raise DestinationRefused(
                f"{parts.hostname} resolves to {address}, a loopback, private or link-local address "
                "(set ALERT_WEBHOOK_ALLOW_PRIVATE=1 to allow on-premise receivers)"
            )


def post(url: str, content: bytes, headers: dict[str, str]) -> DeliveryOutcome:
    try:
        destination_check(url)
    except DestinationRefused as exc:
        return DeliveryOutcome.failure(f"destination refused: {exc}", retryable=False)
    try:
        # No redirects: a redirect could point anywhere, past the check above.
        response = httpx.post(
            url, content=content, timeout=TIMEOUT_SECONDS, follow_redirects=False,
            headers={"content-type": "application/json", "user-agent": USER_AGENT, **headers},
        )
    except httpx.TimeoutException:
        return DeliveryOutcome.failure(f"timed out after {TIMEOUT_SECONDS:.0f} s", retryable=True)
    except httpx.HTTPError as exc:
        return DeliveryOutcome.failure(f"connection failed: {type(exc).__name__}", retryable=True)
    if 200 <= response.status_code < 300:
        return DeliveryOutcome.success(response.status_code)
    retryable = response.status_code >= 500 or response.status_code in (408, 409, 425, 429)
    return DeliveryOutcome.failure(
        f"HTTP {response.status_code}: {response.text[:200]}", retryable=retryable, status_code=response.status_code
    )
