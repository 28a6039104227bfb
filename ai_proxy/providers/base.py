"""The interface every provider adapter implements, and the per-event-loop HTTP clients they hand out.

An adapter is how the gateway talks to one *kind* of provider (`Provider.kind`): which wire
dialect it speaks, where each operation's endpoint is, how requests are authenticated, which HTTP
client carries them, and how its answers are read (usage, stream errors, native token counts).
The proxy never asks a provider's kind anything else: it asks `adapter_for(kind)`.

Adding a provider kind (Gemini's own API, Claude on Bedrock, ...):
  1. `ai_proxy/providers/<kind>.py` with a `ProviderAdapter` subclass (usually subclassing the
     adapter of the dialect it speaks, as `mock` does with `openai`);
  2. one line in `ADAPTERS` (ai_proxy/providers/__init__.py).
That is all: the admin and `set_provider --kind` offer every registered kind, and the catalog
learns its facts (catalog/provider_kinds.py) from the adapter at startup.
A provider that speaks a *new* dialect also needs translations for each (body format, dialect)
pair it should serve (ai_proxy/translations).

Adapters are stateless singletons shared by every request: nothing per request is stored on them.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
import orjson
from django.conf import settings
from httpx_aiohttp import AiohttpTransport

from ..sse import SSEDecoder, SSEEvent

if TYPE_CHECKING:
    from catalog.selectors import ProviderEntry, RouteEntry

OPENAI = "openai"  # the wire dialects (also the client error formats, core.errors)
ANTHROPIC = "anthropic"


class UnsupportedOperation(Exception):
    """The adapter has no endpoint for this operation (e.g. embeddings on an Anthropic provider)."""


# Per event loop, per client name: aiohttp sessions and httpx clients belong to the loop that
# made them, and a new loop must never inherit a dead one's (weak keys).
_loop_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def loop_client(name: str, factory: Callable[[], httpx.AsyncClient]) -> httpx.AsyncClient:
    """This event loop's client called `name`, made by `factory` on first use."""
    loop = asyncio.get_running_loop()
    clients = _loop_clients.get(loop)
    if clients is None:
        clients = _loop_clients[loop] = {}
    client = clients.get(name)
    if client is None:
        client = clients[name] = factory()
    return client


async def loop_clients_close() -> None:
    """Close every client this loop made (graceful shutdown): no connection is left half-open."""
    clients = _loop_clients.pop(asyncio.get_running_loop(), None) or {}
    for client in clients.values():
        await client.aclose()


class ProviderClient(httpx.AsyncClient):
    """httpx's AsyncClient for provider calls: the request goes straight to the transport.

    One client per worker carries every organization's requests, so it must keep no state
    between requests. The generic `send` keeps some: it stores each response's `Set-Cookie` in
    the client's cookie jar and sends it on later requests to that host. A cookie set for one
    tenant's request (a load balancer's affinity, a session) would ride along on every other
    tenant's. (aiohttp's session under it has a jar of its own: `_pooled_client` gives it none.)
    Provider calls need no auth flow and follow no redirects either.

    The generic client's work around the transport was also most of `upstream_send`'s CPU in a
    profile at one connection: the cookie jar (every response's headers through
    `http.cookiejar`), the auth and redirect generators, parsing the URL again and merging the
    default headers on every request. Here a URL is parsed once, and the defaults are merged as a
    plain dict. The headers sent are the generic client's (`accept`, `connection`, `user-agent`,
    then the adapter's).
    """

    _URLS_KEPT = 256  # the catalog's (base URL, path) pairs: a few dozen

    def __init__(self, *, transport: httpx.AsyncBaseTransport) -> None:
        super().__init__(transport=transport)
        self._provider_transport = transport
        self._default_headers = {name.lower(): value for name, value in self.headers.items()}
        self._urls: dict[str, httpx.URL] = {}

    def build_request(self, method: str, url: httpx.URL | str, *, content: bytes | None = None,  # type: ignore[override]
                      headers: Mapping[str, str] | None = None, timeout: Any = httpx.USE_CLIENT_DEFAULT,
                      **others: Any) -> httpx.Request:
        if others or not isinstance(url, str) or timeout is httpx.USE_CLIENT_DEFAULT:
            return super().build_request(method, url, content=content, headers=headers, timeout=timeout, **others)
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= self._URLS_KEPT:
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        merged = dict(self._default_headers)
        for name, value in (headers or {}).items():
            merged[name.lower()] = value
        timeouts = (timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)).as_dict()
        return httpx.Request(method, parsed, content=content, headers=merged, extensions={"timeout": timeouts})

    async def send(self, request: httpx.Request, *, stream: bool = False, **_: Any) -> httpx.Response:  # type: ignore[override]
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        response = await self._provider_transport.handle_async_request(request)
        response.request = request
        if not stream:
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
        return response


def _pooled_client() -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=settings.GATEWAY_UPSTREAM_MAX_CONNECTIONS,
        max_keepalive_connections=settings.GATEWAY_UPSTREAM_MAX_CONNECTIONS,
        keepalive_expiry=30,
    )
    ssl_context = httpx.create_ssl_context(trust_env=False)  # what AiohttpTransport would make

    def session() -> aiohttp.ClientSession:
        # Made on first use, in the loop that uses it. aiohttp's session has a cookie jar of its
        # own, which keeps a provider's Set-Cookie (from a host name: it ignores IP addresses)
        # and sends it with later requests: the same cross-tenant leak as httpx's, so no jar.
        connector = aiohttp.TCPConnector(
            keepalive_timeout=limits.keepalive_expiry, ssl=ssl_context, limit=limits.max_connections
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    # httpx with the aiohttp transport: the httpx API at aiohttp's speed (DESIGN.md).
    return ProviderClient(transport=AiohttpTransport(limits=limits, trust_env=False, client=session))


def pooled_client() -> httpx.AsyncClient:
    """This event loop's shared, pooled client: what every networked provider sends with."""
    return loop_client("pooled", _pooled_client)


class ProviderAdapter:
    """One provider kind. Subclasses set the class attributes and override what differs.

    Class attributes:
      kind     -- the `Provider.kind` value it serves (the ADAPTERS key).
      dialect  -- the wire format of its bodies: "openai" or "anthropic". Translations are looked
                  up by (operation body format, dialect); see ai_proxy.translations.
      paths    -- upstream path key -> path under the provider's base URL. The keys are the
                  operations' `upstream_paths` values (ai_proxy.operations): "chat", "messages",
                  "count_tokens", "embeddings", ... A key missing here means the provider cannot
                  serve that operation (`url` raises UnsupportedOperation).
      needs_base_url -- False for offline providers (mock), so admin and commands do not ask for one.
      offline  -- True: no secret is ever needed (mock).
    """

    kind: str = ""
    label: str = ""  # what the admin's kind select shows
    dialect: str = OPENAI
    paths: Mapping[str, str] = {}
    needs_base_url: bool = True
    offline: bool = False

    # -- where and how a request goes ---------------------------------------------------------

    def url(self, provider: "ProviderEntry", path_key: str) -> str:
        """The full URL for the operation whose upstream path key is `path_key`."""
        try:
            return provider.base_url + self.paths[path_key]
        except KeyError:
            raise UnsupportedOperation(
                f"provider kind `{self.kind}` has no `{path_key}` endpoint"
            ) from None

    def supports(self, path_key: str) -> bool:
        return path_key in self.paths

    def headers(self, provider: "ProviderEntry", body: bytes, client_headers: Any = None) -> dict[str, str]:
        """Request headers, auth included. `body` is the exact serialized body about to be sent, so
        a signing provider (AWS SigV4 on Bedrock) can sign it. `client_headers` are the client's
        request headers when the operation forwards them (Anthropic-format clients only), else None."""
        headers = {"content-type": "application/json", "accept-encoding": "identity"}
        secret = provider.secret()
        if secret:
            headers["authorization"] = f"Bearer {secret}"
        return headers

    def client(self) -> httpx.AsyncClient:
        """The HTTP client to send with: by default this loop's pooled aiohttp-backed client."""
        return pooled_client()

    # -- reading what comes back ----------------------------------------------------------------

    def stream_decoder(self) -> SSEDecoder:
        """A fresh decoder for one response stream (raw bytes in, SSEEvents out)."""
        return SSEDecoder()

    def usage(self, data: dict) -> dict | None:
        """The usage in a whole (non-streamed) response body, in the shape of ai_proxy.usage, or
        None when the provider said nothing (metering then estimates and flags the row)."""
        raise NotImplementedError

    def stream_error(self, event: SSEEvent) -> str | None:
        """The provider's message if this stream event reports an error, else None. Checked on the
        first event (an error there fails over to the next route)."""
        return stream_error_message(event)

    # -- optional native features ---------------------------------------------------------------

    async def count_tokens(self, route: "RouteEntry", body: dict, client_headers: Any) -> int | None:
        """The provider's own input-token count for an Anthropic-format `body`, or None when the
        provider has no such endpoint (the caller then estimates). May raise httpx.TransportError
        (try the next route) or GatewayError (the client's request, as the provider judged it)."""
        return None


def stream_error_message(event: SSEEvent) -> str | None:
    """The message if this event is a provider error (Anthropic `event: error`, OpenAI `{"error": …}`)."""
    if event.event != "error" and '"error"' not in event.data[:200]:
        return None
    try:
        data = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if event.event == "error" or data.get("type") == "error" or error:
        if isinstance(error, dict):
            return str(error.get("message") or error.get("type") or "provider error")
        return str(error or "provider error")
    return None
