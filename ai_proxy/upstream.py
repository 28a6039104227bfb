"""All provider HTTP goes through here: one pooled async client per event loop, explicit connect and
read timeouts from the provider row, secrets read from the environment at call time.

httpx with the aiohttp transport: the httpx API at aiohttp's speed (DESIGN.md measured httpx's
default transport at a quarter of the throughput). The `mock` provider is an httpx MockTransport,
so it travels exactly the same code path as a real provider, with no network.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

import httpx
import orjson
from django.conf import settings
from httpx_aiohttp import AiohttpTransport

from catalog.selectors import RouteEntry
from core.metrics import upstream_observe

from .mock_provider import mock_handler

ANTHROPIC_VERSION = "2023-06-01"

# One client per event loop, keyed weakly by the loop: a new loop never inherits a dead one's.
_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_mock_client: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _client_for(route: RouteEntry) -> httpx.AsyncClient:
    # aiohttp sessions and httpx clients belong to the loop that made them: one per loop.
    loop = asyncio.get_running_loop()
    if route.provider.kind == "mock":
        client = _mock_client.get(loop)
        if client is None:
            client = _mock_client[loop] = httpx.AsyncClient(transport=httpx.MockTransport(mock_handler))
        return client
    client = _clients.get(loop)
    if client is None:
        limits = httpx.Limits(
            max_connections=settings.GATEWAY_UPSTREAM_MAX_CONNECTIONS,
            max_keepalive_connections=settings.GATEWAY_UPSTREAM_MAX_CONNECTIONS,
            keepalive_expiry=30,
        )
        client = _clients[loop] = httpx.AsyncClient(transport=AiohttpTransport(limits=limits, trust_env=False))
    return client


async def upstream_close() -> None:
    """Close this loop's pooled clients (graceful shutdown): no connection is left half-open."""
    loop = asyncio.get_running_loop()
    for pool in (_clients, _mock_client):
        client = pool.pop(loop, None)
        if client is not None:
            await client.aclose()


COUNT_TOKENS_PATH = "/v1/messages/count_tokens"


def upstream_url(route: RouteEntry, path: str | None = None) -> str:
    if path is not None:
        return f"{route.provider.base_url}{path}"
    if route.provider.kind == "anthropic":
        return f"{route.provider.base_url}/v1/messages"
    if route.provider.kind == "mock":
        return "http://mock.invalid/chat/completions"
    return f"{route.provider.base_url}/chat/completions"


def upstream_headers(route: RouteEntry, client_headers: Any = None) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept-encoding": "identity"}
    secret = route.provider.secret()
    if route.provider.kind == "anthropic":
        if secret:
            headers["x-api-key"] = secret
        version = client_headers.get("anthropic-version") if client_headers is not None else None
        headers["anthropic-version"] = version or ANTHROPIC_VERSION
        beta = client_headers.get("anthropic-beta") if client_headers is not None else None
        if beta:
            headers["anthropic-beta"] = beta
    elif secret:
        headers["authorization"] = f"Bearer {secret}"
    return headers


async def upstream_send(
    route: RouteEntry, body: dict, *, stream: bool, client_headers: Any = None, path: str | None = None
) -> httpx.Response:
    """POST `body` to the route's provider (its chat endpoint, or `path` under its base URL).

    With stream=True this returns once the status line and headers are in and the caller reads
    the body; otherwise the body is read. Raises httpx.TransportError (connect errors, timeouts)
    for the caller to fail over on.
    """
    client = _client_for(route)
    timeout = httpx.Timeout(route.provider.timeout, connect=route.provider.connect_timeout)
    request = client.build_request(
        "POST",
        upstream_url(route, path),
        content=orjson.dumps(body),
        headers=upstream_headers(route, client_headers if route.provider.kind == "anthropic" else None),
        timeout=timeout,
    )
    started = time.perf_counter()
    response = await client.send(request, stream=stream)
    upstream_observe(route.provider.name, time.perf_counter() - started)
    return response


def provider_error_message(status: int, raw: bytes) -> str:
    """The provider's own message from an error body in either format, never its headers or secrets."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", errors="replace").strip()
        return text[:500] or f"HTTP {status}"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:2000]
        if isinstance(error, str):
            return error[:2000]
        if data.get("message"):
            return str(data["message"])[:2000]
        if data.get("detail"):
            return str(data["detail"])[:2000]
    return f"HTTP {status}"
