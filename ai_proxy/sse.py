"""Incremental Server-Sent Events parsing and framing (the subset the LLM APIs use)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson


@dataclass(frozen=True)
class SSEEvent:
    event: str | None
    data: str


class SSEDecoder:
    """Feed raw bytes as they arrive; get back whole events. Comments (`:` lines) are skipped."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buffer += chunk
        if b"\r" in self._buffer:
            self._buffer = self._buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events = []
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                break
            block, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            event = self._parse(block)
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[SSEEvent]:
        """Whatever the stream ended with, even without the final blank line."""
        block, self._buffer = self._buffer.strip(b"\n"), b""
        event = self._parse(block) if block else None
        return [event] if event is not None else []

    @staticmethod
    def _parse(block: bytes) -> SSEEvent | None:
        name = None
        data_lines = []
        for line in block.decode("utf-8", errors="replace").split("\n"):
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "data":
                data_lines.append(value)
            elif field == "event":
                name = value
        if not data_lines and name is None:
            return None
        return SSEEvent(event=name, data="\n".join(data_lines))


def sse_data(payload: dict) -> bytes:
    """An OpenAI-style frame: `data: <json>`."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def sse_named(event: str, payload: dict) -> bytes:
    """An Anthropic-style frame: the Python SDK dispatches on the `event:` line, the AI SDK on `type`."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"
