"""All provider HTTP goes through here: one pooled async client per event loop, explicit connect and
read timeouts from the provider row, secrets read from the environment at call time.

httpx with the aiohttp transport: the httpx API at aiohttp's speed (DESIGN.md measured httpx's
default transport at a quarter of the throughput). What differs per provider kind (URL, auth,
client: the `mock` kind's is an httpx MockTransport, so it travels the same path with no network)
is its adapter's (ai_proxy.providers).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions

from catalog.selectors import RouteEntry
from core.metrics import upstream_observe

from .providers import ADAPTERS
from .providers.base import loop_clients_close


async def upstream_close() -> None:
    """Close this loop's clients (graceful shutdown): no connection is left half-open."""
    await loop_clients_close()


async def upstream_send(
    route: RouteEntry, body: dict, *, stream: bool, client_headers: Any = None, path_key: str = "chat"
) -> httpx.Response:
    """POST `body` to the route's provider, at its adapter's URL for `path_key` (an operation's
    upstream path key: "chat", "messages", "count_tokens", ...).

    The adapter decides the URL, the headers (it sees the exact body bytes, for signing) and the
    client. With stream=True this returns once the status line and headers are in and the caller
    reads the body; otherwise the body is read. Raises httpx.TransportError (connect errors,
    timeouts) for the caller to fail over on, and UnsupportedOperation for a path key the
    provider has no endpoint for.
    """
    provider = route.provider
    adapter = ADAPTERS[provider.kind]
    url = adapter.url(provider, path_key)
    content = orjson.dumps(body)
    client = adapter.client()
    request = client.build_request(
        "POST",
        url,
        content=content,
        headers=adapter.headers(provider, content, client_headers),
        timeout=httpx.Timeout(provider.timeout, connect=provider.connect_timeout),
    )
    started = time.perf_counter()
    response = await client.send(request, stream=stream)
    upstream_observe(provider.name, time.perf_counter() - started)
    return response


async def response_body(response: httpx.Response) -> bytes:
    """The whole body of a response `upstream_send` opened, in one read.

    httpx's `aread()` walks its generic layers for every chunk (`aiter_bytes`, the content
    decoder, `aiter_raw`, the transport's stream): about a tenth of a non-streaming request's CPU
    in a profile. The gateway asks for `accept-encoding: identity`, so there is usually nothing to
    decode, and then aiohttp's own `read()` gives the same bytes, raising the same httpx errors
    (timeouts included). An encoded body, and other transports (the `mock` kind's, a custom
    adapter's), keep `aread()`.
    """
    stream = response.stream
    if type(stream) is AiohttpResponseStream and "content-encoding" not in response.headers:
        with map_aiohttp_exceptions():
            return await stream._aiohttp_response.read()  # pinned httpx-aiohttp: requirements.txt
    return await response.aread()


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
