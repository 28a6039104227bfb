"""Stream framers for Responses API clients: upstream SSE in, typed `response.*` events out.

Both upstream dialects go through chat chunks: an OpenAI-dialect upstream streams them already;
an Anthropic one is re-framed by translate_to_anthropic's AnthropicStreamToChat first. The
Responses events come from translate_responses.ChatStreamToResponses. Like the other framers
(streams.py), each keeps what metering needs: the provider's usage, whether the stream completed,
and the characters generated.

The final `response.completed` carries usage, which OpenAI-dialect providers send after the
finish chunk: the final events go out at `[DONE]` (Anthropic: `message_stop`), or when the upstream
closes. When the provider never said, the event carries the same estimate metering bills
(`usage` stays None so the ledger row is flagged as estimated).
"""

from __future__ import annotations

import orjson

from core.errors import OPENAI

from .sse import SSEEvent, sse_named
from .streams import Framer
from .tokens import tokens_for_chars
from .translate_to_anthropic import AnthropicStreamToChat
from .translate_responses import ChatStreamToResponses
from .usage import usage_from_openai


def _loads(data: str) -> dict | None:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class _ResponsesFramer(Framer):
    client_format = OPENAI

    def __init__(self, *, body: dict, model: str, request_id: str, input_tokens_estimate: int) -> None:
        super().__init__()
        self._conv = ChatStreamToResponses(body=body, model=model, request_id=request_id)
        self._input_estimate = input_tokens_estimate

    @staticmethod
    def _frame(pairs: list[tuple[str, dict]]) -> bytes:
        return b"".join(sse_named(name, data) for name, data in pairs)

    def _billed_usage(self) -> dict[str, int]:
        if self.usage is not None:
            return self.usage
        return {"prompt_tokens": self._input_estimate, "completion_tokens": tokens_for_chars(self.text_chars),
                "cache_read_tokens": 0, "cache_write_tokens": 0}

    def _chunks(self, chunks: list[dict]) -> bytes:
        pairs: list[tuple[str, dict]] = []
        for chunk in chunks:
            if chunk.get("error"):
                error = chunk["error"] if isinstance(chunk["error"], dict) else {}
                self.upstream_error = str(error.get("message") or "provider error")
                pairs += self._conv.fail(f"The provider failed mid-stream: {self.upstream_error}", self.usage)
                continue
            self._collect_chunk(chunk)
            pairs += self._conv.feed(chunk)
        self.text_chars = self._conv.text_chars
        return self._frame(pairs)

    def _finish(self) -> bytes:
        if self._conv.finished:
            return b""
        if self._conv.complete:
            self.complete = True
        return self._frame(self._conv.finish(self._billed_usage()))

    def end(self) -> bytes:
        return self._finish()

    def error(self, message: str) -> bytes:
        return self._frame(self._conv.fail(message, self.usage))


class ResponsesFromChat(_ResponsesFramer):
    """Responses client, OpenAI-dialect upstream (asked for `stream_options.include_usage`)."""

    def feed(self, event: SSEEvent) -> bytes:
        if event.data.startswith("[DONE]"):
            return self._finish()
        chunk = _loads(event.data)
        if chunk is None:
            return b""
        if chunk.get("usage"):
            self.usage = usage_from_openai(chunk["usage"])
        return self._chunks([chunk])


class ResponsesFromAnthropic(_ResponsesFramer):
    """Responses client, Anthropic upstream: events -> chat chunks -> Responses events."""

    def __init__(self, *, body: dict, model: str, request_id: str, input_tokens_estimate: int,
                 json_tool: bool) -> None:
        super().__init__(body=body, model=model, request_id=request_id, input_tokens_estimate=input_tokens_estimate)
        self._anthropic = AnthropicStreamToChat(model=model, include_usage=False, json_tool=json_tool)

    def feed(self, event: SSEEvent) -> bytes:
        data = _loads(event.data)
        if data is None:
            return b""
        name = event.event or data.get("type", "")
        chunks = self._anthropic.feed(name, data)
        if self._anthropic.usage_known:
            self.usage = dict(self._anthropic.usage)
        out = self._chunks(chunks)
        if self._anthropic.complete:
            out += self._finish()
        return out
