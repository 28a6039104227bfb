"""Stream framers: upstream SSE events in, client SSE bytes out, one framer per (client format,
upstream dialect). Each tracks what metering needs: the provider's usage, whether the stream
completed, and how many characters were generated (for an estimate if the client leaves early).
"""

from __future__ import annotations

import orjson

from core.errors import ANTHROPIC, OPENAI, ErrorCode

from .sse import SSE_DONE, SSEEvent, sse_data, sse_named
from .translate_to_anthropic import AnthropicStreamToChat
from .translate_to_openai import ChatStreamToAnthropic
from .usage import usage_from_anthropic, usage_from_openai


class Framer:
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


def _loads(data: str) -> dict | None:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


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
        chunk = _loads(event.data)
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


class ChatFromAnthropic(Framer):
    """OpenAI client, Anthropic upstream: events re-framed into chat.completion.chunks."""

    def __init__(self, *, model: str, include_usage: bool, json_tool: bool) -> None:
        super().__init__()
        self._conv = AnthropicStreamToChat(model=model, include_usage=include_usage, json_tool=json_tool)

    def _sync(self) -> None:
        # usage_known: the provider said something; otherwise metering estimates and flags it.
        self.usage = dict(self._conv.usage) if self._conv.usage_known else None
        self.text_chars = self._conv.text_chars

    def feed(self, event: SSEEvent) -> bytes:
        data = _loads(event.data)
        if data is None:
            return b""
        name = event.event or data.get("type", "")
        chunks = self._conv.feed(name, data)
        self._sync()
        if name == "error":
            self.upstream_error = str((data.get("error") or {}).get("message", "provider error"))
        for c in chunks:
            self._collect_chunk(c)
        return b"".join(sse_data(c) for c in chunks)

    def end(self) -> bytes:
        out = b"".join(sse_data(c) for c in self._conv.finish())
        self._sync()
        if self.upstream_error:
            return out
        if self._conv.complete:
            self.complete = True
            return out + SSE_DONE
        return out + self._incomplete()


class MessagesPassThrough(Framer):
    """Anthropic client, Anthropic upstream: events pass with the public model name."""

    client_format = ANTHROPIC

    def __init__(self, *, model: str) -> None:
        super().__init__()
        self.model = model
        self._raw_usage: dict = {}

    def feed(self, event: SSEEvent) -> bytes:
        data = _loads(event.data)
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


class MessagesFromChat(Framer):
    """Anthropic client, OpenAI-compatible upstream: chunks re-framed into Messages events."""

    client_format = ANTHROPIC

    def __init__(self, *, model: str, input_tokens_estimate: int) -> None:
        super().__init__()
        self._conv = ChatStreamToAnthropic(model=model, input_tokens_estimate=input_tokens_estimate)
        self._finished = False

    def _frame(self, pairs) -> bytes:
        self.usage = dict(self._conv.usage) if self._conv.usage else None
        self.text_chars = self._conv.text_chars
        for name, data in pairs:
            self._collect_event(name, data)
        return b"".join(sse_named(name, data) for name, data in pairs)

    def feed(self, event: SSEEvent) -> bytes:
        if event.data.startswith("[DONE]"):
            self._finished = True
            return self._frame(self._conv.finish())
        chunk = _loads(event.data)
        if chunk is None:
            return b""
        if chunk.get("error"):
            self.upstream_error = str((chunk["error"] or {}).get("message", "provider error"))
        return self._frame(self._conv.feed(chunk))

    def end(self) -> bytes:
        out = b"" if self._finished or self.upstream_error else self._frame(self._conv.finish())
        if self.upstream_error:
            return out
        if self._conv.complete:
            self.complete = True
            return out
        return out + self._incomplete()
