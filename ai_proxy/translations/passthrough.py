"""Pass-through pairs: the client's format is the provider's dialect. The body goes on with the
route's upstream model name; answers come back with the name the client asked for.

- (chat, openai): OpenAI client, OpenAI-compatible upstream. Streams always ask for usage
  (metering needs it), and the usage chunk is dropped again unless the client asked for it.
- (messages, anthropic): Anthropic client, Anthropic upstream.
- (embeddings, openai): OpenAI embeddings to an OpenAI-compatible upstream: only the known fields
  go on (ai_proxy.embeddings_format); base64 vectors come back untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import ANTHROPIC

from ..embeddings_format import embeddings_dimensions_check, embeddings_upstream_body
from ..sse import SSE_DONE, SSEEvent, sse_data, sse_named
from ..usage import usage_from_anthropic, usage_from_openai
from .base import Framer, Translation, loads_object

if TYPE_CHECKING:
    from catalog.selectors import RouteEntry

    from ..call import ProxyCall


def chat_request(call: "ProxyCall", route: "RouteEntry") -> dict:
    body = call.body
    out = dict(body, model=route.upstream_model)
    if body.get("stream"):
        # Always ask for usage: metering needs it even when the client did not.
        out["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return out


def same_shape_request(call: "ProxyCall", route: "RouteEntry") -> dict:
    return dict(call.body, model=route.upstream_model)


def same_shape_response(call: "ProxyCall", data: dict) -> dict:
    return dict(data, model=call.requested_model)


def _include_usage(call: "ProxyCall") -> bool:
    return bool((call.body.get("stream_options") or {}).get("include_usage"))


class ChatPassThrough(Framer):
    """OpenAI client, OpenAI-compatible upstream: chunks pass with the public model name."""

    def __init__(self, *, model: str, include_usage: bool) -> None:
        super().__init__()
        self.model = model
        self.include_usage = include_usage
        self._done = False
        self._finished = False

    def feed(self, event: SSEEvent) -> bytes:
        if event.data.startswith("[DONE]"):
            self._done = True
            return b""
        chunk = loads_object(event.data)
        if chunk is None:
            return b""
        if chunk.get("error"):
            self.upstream_error = str((chunk["error"] or {}).get("message", "provider error"))
            return sse_data(chunk)
        usage = chunk.get("usage")
        if usage:
            self.usage = usage_from_openai(usage)
        choices = chunk.get("choices") or []
        if not choices and usage:
            if not self.include_usage:
                return b""
            chunk["model"] = self.model
            return sse_data(chunk)
        chunk["model"] = self.model
        if not self.include_usage:
            chunk.pop("usage", None)
        for choice in choices:
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                self.text_chars += len(content)
            for call in delta.get("tool_calls") or []:
                self.text_chars += len(((call or {}).get("function") or {}).get("arguments") or "")
            if choice.get("finish_reason"):
                self._finished = True
        self._collect_chunk(chunk)
        return sse_data(chunk)

    def end(self) -> bytes:
        if self.upstream_error:
            return b""
        if self._done or self._finished:
            self.complete = True
            return SSE_DONE
        return self._incomplete()


class MessagesPassThrough(Framer):
    """Anthropic client, Anthropic upstream: events pass with the public model name."""

    client_format = ANTHROPIC

    def __init__(self, *, model: str) -> None:
        super().__init__()
        self.model = model
        self._raw_usage: dict = {}

    def feed(self, event: SSEEvent) -> bytes:
        data = loads_object(event.data)
        if data is None:
            return b""
        name = event.event or data.get("type", "")
        if name == "message_start":
            message = data.get("message") or {}
            message["model"] = self.model
            self._raw_usage.update(message.get("usage") or {})
            self.usage = usage_from_anthropic(self._raw_usage)
        elif name == "message_delta":
            self._raw_usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            self.usage = usage_from_anthropic(self._raw_usage)
        elif name == "content_block_delta":
            delta = data.get("delta") or {}
            self.text_chars += len(delta.get("text") or delta.get("partial_json") or delta.get("thinking") or "")
            self._collect_event(name, data)
        elif name == "message_stop":
            self.complete = True
        elif name == "error":
            self.upstream_error = str((data.get("error") or {}).get("message", "provider error"))
        return sse_named(name, data)

    def end(self) -> bytes:
        if self.complete or self.upstream_error:
            return b""
        return self._incomplete()




CHAT_PASSTHROUGH = Translation(
    request=chat_request,
    response=same_shape_response,
    framer=lambda call: ChatPassThrough(model=call.requested_model, include_usage=_include_usage(call)),
)
MESSAGES_PASSTHROUGH = Translation(
    request=same_shape_request,
    response=same_shape_response,
    framer=lambda call: MessagesPassThrough(model=call.requested_model),
)


def embeddings_request(call: "ProxyCall", route: "RouteEntry") -> dict:
    embeddings_dimensions_check(call.body, call.model)
    return embeddings_upstream_body(call.body, upstream_model=route.upstream_model)


EMBEDDINGS_PASSTHROUGH = Translation(request=embeddings_request, response=same_shape_response)
