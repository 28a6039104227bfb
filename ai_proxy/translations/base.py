"""What a translation is: for one (operation body format, upstream dialect) pair, the request
body sent upstream, the response body the client gets, and the stream framer.

The proxy looks one `Translation` up per attempted route (ai_proxy.translations.translation_for)
and calls it; it never branches on formats itself. Functions receive the ProxyCall
(ai_proxy.call): `call.body` is the client's validated body, `call.requested_model` the model
name the client used (answers carry it), `call.model` the catalog entry, `call.request_id`.

Framers: upstream SSE events in, client SSE bytes out. Each tracks what metering needs: the
provider's usage, whether the stream completed, and how many characters were generated (for an
estimate if the client leaves early).
"""

from __future__ import annotations

import orjson

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import ANTHROPIC, OPENAI, ErrorCode

from ..sse import SSEEvent, sse_data, sse_named

if TYPE_CHECKING:
    from catalog.selectors import RouteEntry

    from ..call import ProxyCall


@dataclass(frozen=True)
class Translation:
    """One (body format, dialect) pair. Stateless: module-level instances in the TRANSLATIONS table.

    request(call, route) -> dict
        The body to POST upstream for `route` (with `route.upstream_model`). May raise
        GatewayError (400 `unsupported_parameter` ...) for what the dialect cannot express.
    response(call, data) -> dict
        The client's body from the provider's whole JSON answer `data`. Usage is read separately
        by the provider adapter (ProviderAdapter.usage), so this only reshapes.
    framer(call) -> Framer | None
        A fresh framer for one streamed response; None for pairs whose operation never streams.
    text(body) -> str   (optional)
        The generated text of a client body `response` made, kept for organizations that store
        content. Left None where that body is a chat completion or a Message: the proxy reads those.
    """

    request: Callable[["ProxyCall", "RouteEntry"], dict]
    response: Callable[["ProxyCall", dict], dict]
    framer: Callable[["ProxyCall"], "Framer"] | None = None
    text: Callable[[dict], str] | None = None


class Framer:
    """Re-frames one upstream stream for the client. Subclasses implement `feed` and `end`.

    feed(event) -> bytes   client bytes for one upstream SSEEvent (b"" to send nothing)
    end() -> bytes         the tail once the upstream stream ended (an error event if incomplete)
    error(message) -> bytes  an error event in the client's format (mid-stream failures)
    After the stream: `complete`, `usage` (ai_proxy.usage shape or None), `text_chars`,
    `upstream_error`, and `collected` text when `collect` was set (organizations storing content).
    `client_format` ("openai" | "anthropic") picks the shape of error events.
    """

    client_format: str = OPENAI

    def __init__(self) -> None:
        self.complete = False
        self.usage: dict | None = None
        self.text_chars = 0
        self.upstream_error: str | None = None
        # Generated text, kept only for organizations that store content (off by default).
        self.collect = False
        self.collected: list[str] = []

    def _collect_chunk(self, chunk: dict) -> None:
        if self.collect:
            for choice in chunk.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    self.collected.append(content)

    def _collect_event(self, name: str, data: dict) -> None:
        if self.collect and name == "content_block_delta":
            delta = data.get("delta") or {}
            text = delta.get("text") or delta.get("partial_json")
            if text:
                self.collected.append(text)

    def feed(self, event: SSEEvent) -> bytes:
        raise NotImplementedError

    def end(self) -> bytes:
        raise NotImplementedError

    def error(self, message: str) -> bytes:
        if self.client_format == ANTHROPIC:
            return sse_named("error", {"type": "error", "error": {"type": "api_error", "message": message}})
        return sse_data(
            {"error": {"message": message, "type": "server_error", "param": None, "code": ErrorCode.UPSTREAM_ERROR}}
        )

    def _incomplete(self) -> bytes:
        return self.error("The provider's stream ended before the response was complete.")


def loads_object(data: str) -> dict | None:
    """An event's JSON data if it is an object, else None (skipped, never fatal)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
