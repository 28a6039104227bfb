"""The project's own fake provider: a real aiohttp server on loopback speaking both wire formats.

It answers like OpenAI (`POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models`) and like Anthropic
(`POST /v1/messages`, `POST /v1/messages/count_tokens`, `GET /v1/models` when the request carries
`anthropic-version`), streaming or not, exactly as /work/shared/WIRE.md describes, so the gateway's
adapters are exercised over real sockets and the official SDKs parse its output unchanged.

Default replies are deterministic:
- text: ``"echo: " + <last user message text>`` (text parts of a content array joined with " ");
- prompt / input tokens: the number of whitespace-separated words in every message text (and the
  Anthropic ``system`` text), plus 3 per message: see `prompt_tokens`;
- completion / output tokens: the number of words of the reply: see `completion_tokens`;
- streams send one content delta per word (the word plus its trailing whitespace), so the
  concatenated deltas equal the non-streaming text;
- embeddings: `embedding_vector(input, dimensions)` for each input (a text or a token array),
  `dimensions` defaulting to the model's native size (`EMBEDDING_DIMENSIONS`), as JSON floats or as
  base64 of little-endian float32 (`encoding_format`); usage counts words of each text (at least 1)
  and the length of each token array: see `embedding_tokens`.

Tests script it with `FakeProvider.enqueue(path, FakeResponse(...))`; queued responses for a path are
consumed in order and the default applies when the queue is empty. `FakeProvider.requests` logs
what arrived. Standalone, for the benchmark (no request log, uvloop):

    .venv/bin/python -m tests.fake_provider --port 19100 [--stream-delay-ms 0]

Its stream delay can also be changed at run time with `POST /_fake/config {"stream_delay_ms": n}`
or per request with the `x-fake-stream-delay-ms` header.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import re
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Union

from aiohttp import web

try:
    import orjson

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value)

    def _loads(raw: bytes) -> Any:
        return orjson.loads(raw)

except ImportError:  # pragma: no cover - orjson is pinned, but the fake must not depend on it
    import json

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    def _loads(raw: bytes) -> Any:
        return json.loads(raw)


OPENAI_CHAT = "/v1/chat/completions"
OPENAI_EMBEDDINGS = "/v1/embeddings"
ANTHROPIC_MESSAGES = "/v1/messages"
ANTHROPIC_COUNT_TOKENS = "/v1/messages/count_tokens"
MODELS = "/v1/models"
CONFIG = "/_fake/config"

CREATED = 1770933883  # a fixed timestamp keeps replies byte-for-byte reproducible
HANG_LIMIT_SECONDS = 300.0  # a hung response is released by clear()/stop(), or after this

# An SSE event as a test gives it: a raw string written to the wire verbatim (it must carry its own
# framing, e.g. ": keepalive\n\n"), or an (event name or None, data) pair framed for it.
SseEvent = Union[str, tuple[Union[str, None], Any]]


@dataclass
class FakeResponse:
    """One scripted answer. Everything left at its default falls back to the normal reply.

    - ``status`` + ``json``: answer that status with that JSON body. A status >= 400 without a
      body gets the route's native error body (OpenAI or Anthropic shape).
    - ``events``: answer 200 ``text/event-stream`` with exactly these events.
    - ``text`` / ``finish_reason`` / ``usage``: keep the default reply (streaming or not, as the
      request asked) but with this text, this finish_reason (OpenAI) or stop_reason (Anthropic),
      and these usage fields merged over the computed ones.
    - ``event_delay``: seconds before each streamed event (defaults to the provider's stream_delay).
    - ``drop_after``: close the connection abruptly after that many events (mid-stream failure);
      on a non-streaming answer, ``drop_after=0`` closes the connection without any response.
    - ``delay``: seconds to wait before answering; ``hang``: never answer (until clear()/stop()).
    - ``headers``: extra response headers (``retry-after``, ``x-should-retry``, ...).
    """

    status: int = 200
    json: Any = None
    events: list[SseEvent] | None = None
    text: str | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    event_delay: float | None = None
    drop_after: int | None = None
    delay: float = 0.0
    hang: bool = False
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeRequest:
    method: str
    path: str
    headers: dict[str, str]  # lowercased names
    json: Any
    query: dict[str, str] = field(default_factory=dict)
    # Set when the client went away (or we dropped it) before the answer was complete.
    disconnected: bool = False


class _Dropped(Exception):
    """A scripted abrupt close: the connection is already gone."""


# ---------------------------------------------------------------------------------------------
# Deterministic content and usage


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return " ".join(parts)
    return ""


def prompt_tokens(body: dict[str, Any]) -> int:
    """Words in every message text (plus Anthropic's `system`), and 3 per message."""
    messages = body.get("messages") or []
    words = sum(len(_text_of(m.get("content")).split()) for m in messages if isinstance(m, dict))
    words += len(_text_of(body.get("system")).split())
    return words + 3 * len(messages)


def reply_text(body: dict[str, Any]) -> str:
    """``"echo: "`` plus the last user message's text."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return "echo: " + _text_of(message.get("content"))
    return "echo: "


def completion_tokens(text: str) -> int:
    return len(text.split())


# Native output sizes of OpenAI's embedding models (developers.openai.com/api/docs/models); any
# other model name gets DEFAULT_EMBEDDING_DIMENSIONS.
EMBEDDING_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072,
                        "text-embedding-ada-002": 1536}
DEFAULT_EMBEDDING_DIMENSIONS = 1536


def embedding_vector(item: str | list[int], dimensions: int) -> list[float]:
    """A deterministic vector for one input: SHA-256 of the text (or of the token ids) in counter
    mode, each 24-bit slice mapped to [-1, 1). Every value is exact in float32, so the base64
    (float32) and the JSON (float) answers decode to the same numbers."""
    seed = item.encode("utf-8", "surrogatepass") if isinstance(item, str) else ",".join(map(str, item)).encode()
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        block = hashlib.sha256(seed + counter.to_bytes(4, "little")).digest()
        values.extend(int.from_bytes(block[i:i + 3], "little") / 2**23 - 1.0 for i in range(0, 30, 3))
        counter += 1
    return values[:dimensions]


def embedding_base64(vector: list[float]) -> str:
    """OpenAI's `encoding_format: "base64"`: the vector as little-endian float32, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embedding_inputs(value: Any) -> list[str | list[int]]:
    """`input` as a list of inputs: a string, a token array, or an array of either."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and isinstance(value[0], int):
        return [value]
    return list(value) if isinstance(value, list) else []


def embedding_tokens(value: Any) -> int:
    """Prompt tokens of an embeddings `input`: words of each text (at least 1), length of each token array."""
    return sum(max(len(item.split()), 1) if isinstance(item, str) else len(item) for item in embedding_inputs(value))


def _pieces(text: str) -> list[str]:
    # Each word keeps its trailing whitespace, so "".join(pieces) == text exactly.
    return re.findall(r"\s*\S+\s*", text) or [text]


# ---------------------------------------------------------------------------------------------
# Builders, public so tests can script realistic streams (tool calls, cache usage) with them


def openai_usage(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
        },
    }


def anthropic_usage(input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "cache_creation": {"ephemeral_5m_input_tokens": cache_write, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def openai_completion(*, id: str, model: str, text: str | None, finish_reason: str = "stop",
                      usage: dict[str, Any], tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": id, "object": "chat.completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage, "service_tier": "default", "system_fingerprint": "fp_fake",
    }


def openai_stream_events(*, id: str, model: str, pieces: list[str], finish_reason: str = "stop",
                         usage: dict[str, Any] | None = None,
                         tool_calls: list[dict[str, Any]] | None = None) -> list[SseEvent]:
    """`data:` chunks: role chunk, one chunk per piece, tool-call deltas, finish chunk, the usage
    chunk (``choices: []``) when ``usage`` is given, then ``[DONE]``.

    ``tool_calls`` are full calls ``{"id","function":{"name","arguments"}}``; each is sent as a first
    delta with id/name and empty arguments, then one arguments delta (ids and names are sent once).
    """
    with_usage = usage is not None
    base = {"id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
            "system_fingerprint": "fp_fake"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[None, dict[str, Any]]:
        data = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if with_usage:
            data["usage"] = None
        return (None, data)

    events: list[SseEvent] = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": piece}) for piece in pieces]
    for index, call in enumerate(tool_calls or []):
        function = call["function"]
        events.append(chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                             "function": {"name": function["name"], "arguments": ""}}]}))
        events.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": function["arguments"]}}]}))
    events.append(chunk({}, finish_reason))
    if with_usage:
        events.append((None, {**base, "choices": [], "usage": usage}))
    events.append((None, "[DONE]"))
    return events


def openai_embeddings(*, model: str, inputs: list[str | list[int]], dimensions: int, encoding_format: str = "float",
                      usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `CreateEmbeddingResponse` (OAI:types/create_embedding_response.py) for these inputs."""
    data = []
    for index, item in enumerate(inputs):
        vector = embedding_vector(item, dimensions)
        data.append({"object": "embedding", "index": index,
                     "embedding": embedding_base64(vector) if encoding_format == "base64" else vector})
    return {"object": "list", "data": data, "model": model, "usage": usage}


def anthropic_message(*, id: str, model: str, content: list[dict[str, Any]], stop_reason: str = "end_turn",
                      usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": id, "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": stop_reason, "stop_sequence": None, "usage": usage,
    }


def anthropic_stream_events(*, id: str, model: str, pieces: list[str], stop_reason: str = "end_turn",
                            usage: dict[str, Any], tool_uses: list[dict[str, Any]] | None = None) -> list[SseEvent]:
    """The full named-event sequence: message_start, a text block (one delta per piece), one
    tool_use block per ``{"id","name","input"}`` in ``tool_uses``, message_delta, message_stop."""
    start_usage = {k: v for k, v in usage.items() if k != "output_tokens"} | {"output_tokens": 1}
    events: list[SseEvent] = [
        ("message_start", {"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "content": [], "model": model,
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}}),
    ]
    index = 0
    if pieces:
        events.append(("content_block_start", {"type": "content_block_start", "index": 0,
                                               "content_block": {"type": "text", "text": ""}}))
        events.append(("ping", {"type": "ping"}))
        for piece in pieces:
            events.append(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                   "delta": {"type": "text_delta", "text": piece}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
        index = 1
    else:
        events.append(("ping", {"type": "ping"}))
    for tool in tool_uses or []:
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
            "type": "tool_use", "id": tool["id"], "name": tool["name"], "input": {}}}))
        events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
            "type": "input_json_delta", "partial_json": _dumps(tool["input"]).decode()}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                     "usage": {"output_tokens": usage["output_tokens"]}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _frame(event: SseEvent) -> bytes:
    if isinstance(event, str):
        return event.encode()
    name, data = event
    payload = data if isinstance(data, str) else _dumps(data).decode()
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {payload}\n\n".encode()


_ERROR_TYPES_OPENAI = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error",
                       404: "invalid_request_error", 429: "rate_limit_exceeded"}
_ERROR_TYPES_ANTHROPIC = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                          404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                          500: "api_error", 529: "overloaded_error"}


def openai_error(status: int, message: str = "fake provider error", code: str | None = None) -> dict[str, Any]:
    kind = _ERROR_TYPES_OPENAI.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def anthropic_error(status: int, message: str = "fake provider error") -> dict[str, Any]:
    kind = _ERROR_TYPES_ANTHROPIC.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}


# ---------------------------------------------------------------------------------------------
# The server


class FakeProvider:
    """See the module docstring. Thread-safe scripting; the server runs on its own event loop."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, stream_delay: float = 0.0,
                 record: bool = True) -> None:
        self.host = host
        self.port = port
        self.default_stream_delay = stream_delay
        self.stream_delay = stream_delay  # seconds before each event of a default stream
        self.record = record
        self.requests: list[FakeRequest] = []
        self._queues: dict[str, deque[FakeResponse]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._generation = 0  # bumped by clear()/stop(): releases hung responses
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- scripting API (any thread) -------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def enqueue(self, path: str, *responses: FakeResponse) -> None:
        """The next requests to ``path`` (e.g. "/v1/chat/completions") get these answers, in order."""
        with self._lock:
            self._queues.setdefault(path, deque()).extend(responses)

    def clear(self) -> None:
        """Forget queued answers and the request log, restore the stream delay, release hangs."""
        with self._lock:
            self._queues.clear()
            self.requests.clear()
            self.stream_delay = self.default_stream_delay
            self._generation += 1

    def requests_to(self, path: str) -> list[FakeRequest]:
        return [r for r in list(self.requests) if r.path == path]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[FakeRequest]:
        """Block until at least ``count`` requests were logged (the server runs on another thread)."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"fake provider got {len(self.requests)} requests, expected {count}")
            time.sleep(0.005)
        return list(self.requests)

    def _next(self, path: str) -> FakeResponse | None:
        with self._lock:
            queue = self._queues.get(path)
            return queue.popleft() if queue else None

    # -- lifecycle ------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(OPENAI_CHAT, self._chat)
        app.router.add_post(OPENAI_EMBEDDINGS, self._embeddings)
        app.router.add_post(ANTHROPIC_MESSAGES, self._messages)
        app.router.add_post(ANTHROPIC_COUNT_TOKENS, self._count_tokens)
        app.router.add_get(MODELS, self._models)
        app.router.add_post(CONFIG, self._config)
        return app

    async def _serve(self, sock: socket.socket | None = None) -> None:
        # handler_cancellation: a client that goes away stops its handler, as with a real provider.
        self._runner = web.AppRunner(self._app(), access_log=None, handler_cancellation=True,
                                    shutdown_timeout=0.5)
        await self._runner.setup()
        if sock is not None:
            site: web.BaseSite = web.SockSite(self._runner, sock)
        else:
            site = web.TCPSite(self._runner, self.host, self.port, backlog=4096)
        await site.start()

    def start(self) -> FakeProvider:
        """Serve on a daemon thread; with port 0 the OS picks a free port. Returns self."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(1024)
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve(sock))
            except BaseException as exc:  # surfaced to start()'s caller below
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-provider", daemon=True)
        self._thread.start()
        if not ready.wait(10) or failure:
            raise RuntimeError(f"fake provider did not start: {failure[0] if failure else 'timeout'}")
        return self

    def stop(self) -> None:
        self._stopping = True
        self._generation += 1
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- handlers ---------------------------------------------------------------------------------

    async def _begin(self, request: web.Request) -> tuple[FakeRequest | None, Any, FakeResponse | None]:
        raw = await request.read()
        try:
            body = _loads(raw) if raw else None
        except ValueError:
            body = None
        record = None
        if self.record:
            record = FakeRequest(
                method=request.method, path=request.path,
                headers={k.lower(): v for k, v in request.headers.items()},
                json=body, query=dict(request.query),
            )
            self.requests.append(record)
        return record, body, self._next(request.path)

    def _stream_delay_for(self, request: web.Request, scripted: FakeResponse | None) -> float:
        if scripted is not None and scripted.event_delay is not None:
            return scripted.event_delay
        header = request.headers.get("x-fake-stream-delay-ms")
        if header:
            try:
                return max(float(header), 0.0) / 1000
            except ValueError:
                pass
        return self.stream_delay

    async def _wait_scripted(self, scripted: FakeResponse | None) -> None:
        if scripted is None:
            return
        if scripted.delay:
            await asyncio.sleep(scripted.delay)
        if scripted.hang:
            generation = self._generation
            deadline = time.monotonic() + HANG_LIMIT_SECONDS
            while generation == self._generation and not self._stopping and time.monotonic() < deadline:
                await asyncio.sleep(0.02)

    async def _finish(self, request: web.Request, record: FakeRequest | None, scripted: FakeResponse | None,
                      *, native_error, json_body: Any, events: list[SseEvent] | None, stream_delay: float,
                      headers: dict[str, str]) -> web.StreamResponse:
        """Answer with the scripted status/body, or ``events`` as SSE, or ``json_body``."""
        try:
            await self._wait_scripted(scripted)
            extra = dict(headers)
            if scripted is not None:
                extra.update(scripted.headers)
            if scripted is not None and scripted.events is not None:
                return await self._sse(request, scripted.events, stream_delay, scripted.drop_after, extra)
            if scripted is not None and (scripted.json is not None or scripted.status >= 400):
                body = scripted.json if scripted.json is not None else native_error(scripted.status)
                return await self._json(request, scripted.status, body, extra, scripted.drop_after)
            if events is not None:
                return await self._sse(request, events, stream_delay,
                                       scripted.drop_after if scripted else None, extra)
            return await self._json(request, 200, json_body, extra, scripted.drop_after if scripted else None)
        except (_Dropped, ConnectionResetError):
            # We dropped the client or it went away (a gateway cancelling its upstream stream, wrk
            # stopping mid-response): normal here, so no traceback. The transport is closed, so
            # aiohttp's attempt to send this placeholder fails quietly.
            if record is not None:
                record.disconnected = True
            return web.Response(status=599)
        except asyncio.CancelledError:
            if record is not None:
                record.disconnected = True
            raise

    async def _json(self, request: web.Request, status: int, body: Any, headers: dict[str, str],
                    drop_after: int | None) -> web.Response:
        if drop_after is not None:
            self._drop(request)
        return web.Response(status=status, body=_dumps(body), content_type="application/json", headers=headers)

    async def _sse(self, request: web.Request, events: list[SseEvent], delay: float, drop_after: int | None,
                   headers: dict[str, str]) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache", **headers})
        await response.prepare(request)
        for sent, event in enumerate(events):
            if drop_after is not None and sent >= drop_after:
                self._drop(request)
            if delay:
                await asyncio.sleep(delay)
            await response.write(_frame(event))
        if drop_after is not None and drop_after <= len(events):
            self._drop(request)
        await response.write_eof()
        return response

    @staticmethod
    def _drop(request: web.Request) -> None:
        # Abort, not a clean close: the client must see a broken stream, not a short one.
        if request.transport is not None:
            request.transport.abort()
        raise _Dropped()

    def _request_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):012d}"

    # OpenAI -----------------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        record, body, scripted = await self._begin(request)
        request_id = self._request_id("req_")
        headers = {"x-request-id": request_id}
        problem = self._check_openai(request, body)
        if problem and scripted is None:
            status, message = problem
            return web.Response(status=status, body=_dumps(openai_error(status, message)),
                                content_type="application/json", headers=headers)
        body = body if isinstance(body, dict) else {}
        model = body.get("model", "")
        text = scripted.text if scripted is not None and scripted.text is not None else reply_text(body)
        finish = scripted.finish_reason if scripted is not None and scripted.finish_reason else "stop"
        usage = openai_usage(prompt_tokens(body), completion_tokens(text))
        if scripted is not None and scripted.usage:
            usage.update(scripted.usage)
        completion_id = "chatcmpl-" + request_id[4:]
        events = json_body = None
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = openai_stream_events(id=completion_id, model=model, pieces=_pieces(text),
                                          finish_reason=finish, usage=usage if include_usage else None)
        else:
            json_body = openai_completion(id=completion_id, model=model, text=text, finish_reason=finish, usage=usage)
        return await self._finish(request, record, scripted, native_error=openai_error, json_body=json_body,
                                  events=events, stream_delay=self._stream_delay_for(request, scripted),
                                  headers=headers)

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        record, body, scripted = await self._begin(request)
        request_id = self._request_id("req_")
        headers = {"x-request-id": request_id}
        problem = self._check_embeddings(request, body)
        if problem and scripted is None:
            status, message, param = problem
            error = openai_error(status, message)
            error["error"]["param"] = param
            return web.Response(status=status, body=_dumps(error), content_type="application/json", headers=headers)
        body = body if isinstance(body, dict) else {}
        model = body.get("model", "")
        inputs = embedding_inputs(body.get("input"))
        dimensions = body.get("dimensions") or EMBEDDING_DIMENSIONS.get(model, DEFAULT_EMBEDDING_DIMENSIONS)
        tokens = embedding_tokens(body.get("input"))
        usage: dict[str, Any] = {"prompt_tokens": tokens, "total_tokens": tokens}
        if scripted is not None and scripted.usage:
            usage.update(scripted.usage)
        json_body = openai_embeddings(model=model, inputs=inputs, dimensions=dimensions,
                                      encoding_format=body.get("encoding_format") or "float", usage=usage)
        return await self._finish(request, record, scripted, native_error=openai_error, json_body=json_body,
                                  events=None, stream_delay=0.0, headers=headers)

    @staticmethod
    def _check_embeddings(request: web.Request, body: Any) -> tuple[int, str, str | None] | None:
        """OpenAI's own refusals, in its wording (a bad `input` is `'$.input' is invalid`)."""
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return 401, "You didn't provide an API key. You need to provide your API key in an Authorization header.", None
        if not isinstance(body, dict):
            return 400, "We could not parse the JSON body of your request.", None
        for name in ("model", "input"):
            if name not in body:
                return 400, f"Missing required parameter: '{name}'.", name
        value = body["input"]
        inputs = embedding_inputs(value)
        if not inputs or any(item in ("", []) or not isinstance(item, (str, list)) for item in inputs):
            return 400, "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", None
        native = EMBEDDING_DIMENSIONS.get(body["model"], DEFAULT_EMBEDDING_DIMENSIONS)
        dimensions = body.get("dimensions")
        if dimensions is not None and (not isinstance(dimensions, int) or not 1 <= dimensions <= native):
            return 400, f"Invalid value for 'dimensions' = {dimensions}. Must be between 1 and {native}.", "dimensions"
        if body.get("encoding_format") not in (None, "float", "base64"):
            return 400, "Invalid value for 'encoding_format': must be 'float' or 'base64'.", "encoding_format"
        return None

    @staticmethod
    def _check_openai(request: web.Request, body: Any) -> tuple[int, str] | None:
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return 401, "You didn't provide an API key. You need to provide your API key in an Authorization header."
        if not isinstance(body, dict):
            return 400, "We could not parse the JSON body of your request."
        for name in ("model", "messages"):
            if name not in body:
                return 400, f"Missing required parameter: '{name}'."
        return None

    # Anthropic --------------------------------------------------------------------------------

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        record, body, scripted = await self._begin(request)
        request_id = self._request_id("req_")
        headers = {"request-id": request_id}
        problem = self._check_anthropic(request, body, need_max_tokens=True)
        if problem and scripted is None:
            status, message = problem
            return web.Response(status=status, body=_dumps(anthropic_error(status, message)),
                                content_type="application/json", headers=headers)
        body = body if isinstance(body, dict) else {}
        model = body.get("model", "")
        text = scripted.text if scripted is not None and scripted.text is not None else reply_text(body)
        stop_reason = scripted.finish_reason if scripted is not None and scripted.finish_reason else "end_turn"
        usage = anthropic_usage(prompt_tokens(body), completion_tokens(text))
        if scripted is not None and scripted.usage:
            usage.update(scripted.usage)
        message_id = "msg_" + request_id[4:]
        events = json_body = None
        if body.get("stream"):
            events = anthropic_stream_events(id=message_id, model=model, pieces=_pieces(text),
                                             stop_reason=stop_reason, usage=usage)
        else:
            json_body = anthropic_message(id=message_id, model=model, content=[{"type": "text", "text": text}],
                                          stop_reason=stop_reason, usage=usage)
        return await self._finish(request, record, scripted, native_error=anthropic_error, json_body=json_body,
                                  events=events, stream_delay=self._stream_delay_for(request, scripted),
                                  headers=headers)

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        record, body, scripted = await self._begin(request)
        headers = {"request-id": self._request_id("req_")}
        problem = self._check_anthropic(request, body, need_max_tokens=False)
        if problem and scripted is None:
            status, message = problem
            return web.Response(status=status, body=_dumps(anthropic_error(status, message)),
                                content_type="application/json", headers=headers)
        body = body if isinstance(body, dict) else {}
        return await self._finish(request, record, scripted, native_error=anthropic_error,
                                  json_body={"input_tokens": prompt_tokens(body)}, events=None,
                                  stream_delay=0.0, headers=headers)

    @staticmethod
    def _check_anthropic(request: web.Request, body: Any, *, need_max_tokens: bool) -> tuple[int, str] | None:
        if not (request.headers.get("x-api-key") or request.headers.get("Authorization", "").startswith("Bearer ")):
            return 401, "x-api-key header is required"
        if not request.headers.get("anthropic-version"):
            return 400, "anthropic-version: header is required"
        if not isinstance(body, dict):
            return 400, "There was an issue with your request body."
        required = ("model", "messages", "max_tokens") if need_max_tokens else ("model", "messages")
        for name in required:
            if name not in body:
                return 400, f"{name}: Field required"
        return None

    # Models and config ------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.StreamResponse:
        record, _body, scripted = await self._begin(request)
        if request.headers.get("anthropic-version"):
            data = [{"type": "model", "id": mid, "display_name": name, "created_at": "2025-09-29T00:00:00Z"}
                    for mid, name in [("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5"),
                                      ("claude-3-haiku-20240307", "Claude Haiku 3")]]
            body: Any = {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
            native_error: Any = anthropic_error
        else:
            body = {"object": "list", "data": [
                {"id": mid, "object": "model", "created": CREATED, "owned_by": "system"}
                for mid in ("gpt-4o", "gpt-4o-mini")]}
            native_error = openai_error
        return await self._finish(request, record, scripted, native_error=native_error, json_body=body,
                                  events=None, stream_delay=0.0, headers={})

    async def _config(self, request: web.Request) -> web.Response:
        """Benchmark control for the standalone process: `{"stream_delay_ms": n}`."""
        body = _loads(await request.read() or b"{}")
        if "stream_delay_ms" in body:
            self.stream_delay = max(float(body["stream_delay_ms"]), 0.0) / 1000
        return web.Response(body=_dumps({"stream_delay_ms": self.stream_delay * 1000}),
                            content_type="application/json")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The fake provider, standalone (no request log).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=19100)
    parser.add_argument("--stream-delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        uvloop = None
    fake = FakeProvider(host=args.host, port=args.port, stream_delay=args.stream_delay_ms / 1000, record=False)

    async def serve() -> None:
        await fake._serve()
        print(f"fake provider on {fake.url}", flush=True)
        await asyncio.Event().wait()

    if uvloop is not None:
        uvloop.run(serve())
    else:  # pragma: no cover
        asyncio.run(serve())


if __name__ == "__main__":
    main()
