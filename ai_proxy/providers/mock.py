"""The `mock` provider kind: an OpenAI-compatible model that answers in-process, deterministically.

It lets the quick start work offline and exercises every gateway path (auth, routing, translation
for Anthropic-format clients, streaming, metering) without a network. The reply is
"Mock reply: <the last user text>", cut to max_tokens (finish_reason "length"); usage comes from
ai_proxy.tokens, so it is stable for the same request. When tools are forced (tool_choice
"required" or a named function) it calls the first such tool with `{}`.

`POST .../embeddings` answers OpenAI's embeddings shape: one deterministic vector per input
(`mock_embedding_vector`), `dimensions` long when given (else MOCK_EMBEDDING_DIMENSIONS), as floats
or as base64 of little-endian float32; usage is the gateway's own estimate of the input.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
import uuid

import httpx
import orjson

from .base import ProviderClient, UnsupportedOperation, loop_client
from .openai import OpenAIAdapter

from ..tokens import tokens_for_request, tokens_for_text

MOCK_EMBEDDING_DIMENSIONS = 1536


def _last_user_text(body: dict) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _forced_tool(body: dict) -> str | None:
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        return (choice.get("function") or {}).get("name")
    if choice == "required" and tools:
        return (tools[0].get("function") or {}).get("name")
    return None


def _reply(body: dict) -> tuple[list[str], str]:
    words = ("Mock reply: " + _last_user_text(body)[:2000]).split(" ")
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    pieces: list[str] = []
    used = 0
    for i, word in enumerate(words):
        piece = word if i == 0 else " " + word
        cost = tokens_for_text(piece)
        if limit is not None and used + cost > limit:
            return pieces, "length"
        pieces.append(piece)
        used += cost
    return pieces, "stop"


def _usage(body: dict, completion: int) -> dict:
    prompt = tokens_for_request(body)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def _completion(body: dict) -> dict:
    created = int(time.time())
    tool = _forced_tool(body)
    if tool:
        message = {"role": "assistant", "content": None, "refusal": None, "annotations": [],
                   "tool_calls": [{"id": "call_mock0", "type": "function",
                                   "function": {"name": tool, "arguments": "{}"}}]}
        finish, completion = "tool_calls", 3
    else:
        pieces, finish = _reply(body)
        text = "".join(pieces)
        message = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
        completion = sum(tokens_for_text(p) for p in pieces)
    return {
        "id": "chatcmpl-mock" + uuid.uuid4().hex[:20],
        "object": "chat.completion",
        "created": created,
        "model": body.get("model", "mock-echo"),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": _usage(body, completion),
        "system_fingerprint": None,
    }


def _stream(body: dict) -> list[bytes]:
    full = _completion(body)
    base = {"id": full["id"], "object": "chat.completion.chunk", "created": full["created"], "model": full["model"]}
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict, finish: str | None = None) -> bytes:
        payload = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if include_usage:
            payload["usage"] = None
        return b"data: " + orjson.dumps(payload) + b"\n\n"

    message = full["choices"][0]["message"]
    out = [chunk({"role": "assistant", "content": ""})]
    if message.get("tool_calls"):
        call = message["tool_calls"][0]
        out.append(chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                          "function": {"name": call["function"]["name"], "arguments": ""}}]}))
        out.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}))
    else:
        pieces, _ = _reply(body)
        out.extend(chunk({"content": piece}) for piece in pieces)
    out.append(chunk({}, full["choices"][0]["finish_reason"]))
    if include_usage:
        out.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": full["usage"]}) + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out


class _FrameStream(httpx.AsyncByteStream):
    """One SSE frame per read, as a real provider's stream arrives."""

    def __init__(self, frames: list[bytes]) -> None:
        self._frames = frames

    async def __aiter__(self):
        for frame in self._frames:
            yield frame


def mock_embedding_vector(item: str | list[int], dimensions: int) -> list[float]:
    """SHA-256 of the input in counter mode, 24-bit slices mapped to [-1, 1): exact in float32."""
    seed = item.encode("utf-8", "surrogatepass") if isinstance(item, str) else ",".join(map(str, item)).encode()
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        block = hashlib.sha256(seed + counter.to_bytes(4, "little")).digest()
        values.extend(int.from_bytes(block[i:i + 3], "little") / 2**23 - 1.0 for i in range(0, 30, 3))
        counter += 1
    return values[:dimensions]


def _embeddings(body: dict) -> dict:
    value = body.get("input")
    if isinstance(value, str) or (isinstance(value, list) and value and isinstance(value[0], int)):
        inputs = [value]
    else:
        inputs = list(value or [])
    dimensions = body.get("dimensions") or MOCK_EMBEDDING_DIMENSIONS
    base64_wanted = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        vector = mock_embedding_vector(item, dimensions)
        if base64_wanted:
            vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(tokens_for_text(item) if isinstance(item, str) else len(item) for item in inputs)
    return {"object": "list", "data": data, "model": body.get("model", "mock-embedding"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


async def mock_handler(request: httpx.Request) -> httpx.Response:
    body = orjson.loads(request.content)
    if request.url.path.endswith("/embeddings"):
        dimensions = body.get("dimensions")
        if isinstance(dimensions, int) and dimensions > MOCK_EMBEDDING_DIMENSIONS:
            # As OpenAI answers past a model's size; never a vector as long as a client asks.
            error = {"error": {"message": f"Invalid value for 'dimensions' = {dimensions}. Must be between 1 and "
                                          f"{MOCK_EMBEDDING_DIMENSIONS}.", "type": "invalid_request_error",
                               "param": "dimensions", "code": None}}
            return httpx.Response(400, content=orjson.dumps(error), headers={"content-type": "application/json"})
        return httpx.Response(200, content=orjson.dumps(_embeddings(body)), headers={"content-type": "application/json"})
    if body.get("stream"):
        return httpx.Response(200, stream=_FrameStream(_stream(body)), headers={"content-type": "text/event-stream"})
    return httpx.Response(200, content=orjson.dumps(_completion(body)), headers={"content-type": "application/json"})


class MockAdapter(OpenAIAdapter):
    """Speaks the OpenAI dialect through an httpx MockTransport: the same code path as a real
    provider (URL, headers, client, streaming, usage), with no network and no secret."""

    kind = "mock"
    label = "Mock (offline, deterministic)"
    needs_base_url = False
    offline = True
    paths = {"chat": "/chat/completions", "embeddings": "/embeddings"}

    def url(self, provider, path_key: str) -> str:
        if path_key not in self.paths:
            raise UnsupportedOperation(f"provider kind `mock` has no `{path_key}` endpoint")
        return "http://mock.invalid" + self.paths[path_key]  # never resolved: the transport answers

    def headers(self, provider, body: bytes, client_headers=None) -> dict[str, str]:
        return {"content-type": "application/json", "accept-encoding": "identity"}

    def client(self) -> httpx.AsyncClient:
        return loop_client("mock", _mock_client)


def _mock_client() -> httpx.AsyncClient:
    return ProviderClient(transport=httpx.MockTransport(mock_handler))
