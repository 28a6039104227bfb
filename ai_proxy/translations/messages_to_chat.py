"""Anthropic Messages <-> OpenAI Chat Completions, for Anthropic-format requests served by an
OpenAI-compatible provider. Pure functions and one stateful stream re-framer; no I/O.

Rules follow WIRE.md §2 and §5 ("Anthropic request -> OpenAI-compatible upstream"). Input must
already have passed `messages_format.messages_request_validate`. Choices made where the wire
formats leave room, so callers and tests can rely on them:

- Unsupported input (no OpenAI equivalent: `top_k`, `thinking` other than disabled, server tools,
  server-tool/document-url/file-id blocks, images inside tool results, `container`,
  `mcp_servers`, unknown top-level fields, ...) raises 400 `unsupported_parameter` naming the
  param, unless `drop_unsupported=True`, in which case it is silently left out.
- Dropped silently always, because they only tune Anthropic's own serving and change no
  semantics: `cache_control` (OpenAI caches automatically), `service_tier`, `thinking:
  {"type": "disabled"}`, tool hints (`input_examples`, `defer_loading`, `allowed_callers`,
  `eager_input_streaming`), `citations` on text blocks, and thinking/redacted_thinking blocks in
  assistant history (they cannot be replayed to another vendor's model).
- Text joins: system blocks, assistant text blocks and multi-text tool results are joined with
  "\\n\\n" into one string (OpenAI-compatible servers vary in accepting part arrays for those
  roles); user text stays as parts unless it is a single text block.
- `is_error: true` tool results are prefixed with "Error: " so the model still sees the failure.
- Tool names longer than OpenAI's 64 characters are refused (400 naming `tools[i].name`) rather
  than truncated with a reverse map: responses then need no name rewriting.
- Responses keep the upstream `id`; tool-call arguments that are not a JSON object become
  `{"_raw": "<arguments>"}` so the client still sees what the model produced; a "stop" finish
  that nevertheless carries tool calls maps to `tool_use` (Anthropic clients loop on it).
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

from typing import TYPE_CHECKING

from core.errors import ANTHROPIC, ErrorCode, GatewayError

from ..sse import SSEEvent, sse_named
from ..usage import usage_from_openai
from .base import Framer, Translation, loads_object

if TYPE_CHECKING:
    from catalog.selectors import RouteEntry

    from ..call import ProxyCall

OPENAI_TOOL_NAME_MAX = 64

# Top-level fields translated below; anything else not silently dropped is unsupported.
_HANDLED_FIELDS = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "temperature",
        "top_p",
        "stop_sequences",
        "stream",
        "metadata",
        "tools",
        "tool_choice",
    }
)
_SILENTLY_DROPPED_FIELDS = frozenset({"cache_control", "service_tier"})
_SILENTLY_DROPPED_TOOL_KEYS = frozenset(
    {"cache_control", "input_examples", "defer_loading", "allowed_callers", "eager_input_streaming"}
)

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def _unsupported(param: str, what: str | None = None) -> GatewayError:
    what = what or f"`{param}`"
    return GatewayError(
        400,
        f"{param}: {what} is not supported for this model (its provider speaks the OpenAI format); "
        "remove it or choose a model served by Anthropic",
        param=param,
        code=ErrorCode.UNSUPPORTED_PARAMETER,
    )


class _Ctx:
    def __init__(self, drop_unsupported: bool) -> None:
        self.drop = drop_unsupported

    def unsupported(self, param: str, what: str | None = None) -> None:
        """Raise unless the caller asked to drop what has no equivalent."""
        if not self.drop:
            raise _unsupported(param, what)


# --- request ---------------------------------------------------------------------------------


def anthropic_to_chat_request(
    body: dict, *, upstream_model: str, drop_unsupported: bool = False, reasoning_model: bool = False
) -> dict:
    """Translate a validated Anthropic Messages request into an OpenAI Chat Completions request.

    `reasoning_model` sends `max_completion_tokens` (o-series models refuse `max_tokens`).
    """
    ctx = _Ctx(drop_unsupported)
    for key, value in body.items():
        if key in _HANDLED_FIELDS or key in _SILENTLY_DROPPED_FIELDS or value is None:
            continue
        if key == "thinking" and isinstance(value, dict) and value.get("type") == "disabled":
            continue
        ctx.unsupported(key)

    out: dict[str, Any] = {"model": upstream_model, "messages": _messages_translate(body, ctx)}
    out["max_completion_tokens" if reasoning_model else "max_tokens"] = body["max_tokens"]
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    user_id = (body.get("metadata") or {}).get("user_id")
    if user_id is not None:
        out["user"] = user_id

    tools = _tools_translate(body.get("tools") or [], ctx)
    if tools:
        out["tools"] = tools
        choice = body.get("tool_choice")
        if choice:
            out["tool_choice"] = _tool_choice_translate(choice)
            if choice.get("disable_parallel_tool_use") is True:
                out["parallel_tool_calls"] = False
    if body.get("stream"):
        out["stream"] = True
        # Without include_usage an OpenAI stream carries no token counts at all.
        out["stream_options"] = {"include_usage": True}
    return out


def _tools_translate(tools: list, ctx: _Ctx) -> list[dict]:
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type") not in (None, "custom"):
            ctx.unsupported(f"tools[{i}]", f"the server tool {tool.get('type')!r}")
            continue
        name = tool["name"]
        if len(name) > OPENAI_TOOL_NAME_MAX:
            raise GatewayError(
                400,
                f"tools[{i}].name: {name!r} is {len(name)} characters; this model's provider allows at most "
                f"{OPENAI_TOOL_NAME_MAX}",
                param=f"tools[{i}].name",
                code=ErrorCode.INVALID_REQUEST_ERROR,
            )
        function: dict[str, Any] = {"name": name}
        if tool.get("description") is not None:
            function["description"] = tool["description"]
        function["parameters"] = tool["input_schema"]
        if tool.get("strict") is not None:
            function["strict"] = tool["strict"]
        for key, value in tool.items():
            if key not in {"name", "description", "input_schema", "strict", "type"} | _SILENTLY_DROPPED_TOOL_KEYS:
                if value is not None:
                    ctx.unsupported(f"tools[{i}].{key}")
        out.append({"type": "function", "function": function})
    return out


def _tool_choice_translate(choice: dict) -> Any:
    if choice["type"] == "tool":
        return {"type": "function", "function": {"name": choice["name"]}}
    return {"any": "required", "auto": "auto", "none": "none"}[choice["type"]]


def _messages_translate(body: dict, ctx: _Ctx) -> list[dict]:
    out: list[dict] = []
    system = body.get("system")
    if system:
        text = system if isinstance(system, str) else "\n\n".join(b["text"] for b in system if b["text"])
        if text:
            out.append({"role": "system", "content": text})

    # Anthropic merges consecutive same-role messages into one turn; so do we, keeping each
    # block's original position for error params.
    turns: list[tuple[str, list[tuple[str, dict]]]] = []
    for i, message in enumerate(body["messages"]):
        content = message["content"]
        if isinstance(content, str):
            blocks = [(f"messages[{i}].content", {"type": "text", "text": content})] if content else []
        else:
            blocks = [(f"messages[{i}].content[{j}]", block) for j, block in enumerate(content)]
        if turns and turns[-1][0] == message["role"]:
            turns[-1][1].extend(blocks)
        else:
            turns.append((message["role"], blocks))

    for role, blocks in turns:
        if role == "system":
            text = "\n\n".join(block["text"] for _, block in blocks if block["text"])
            if text:
                out.append({"role": "system", "content": text})
        elif role == "user":
            out.extend(_user_turn_translate(blocks, ctx))
        else:
            message = _assistant_turn_translate(blocks, ctx)
            if message is not None:
                out.append(message)
    if not any(m["role"] != "system" for m in out):
        # Possible only after dropping unsupported blocks; the upstream would answer with an
        # error about an empty conversation the client never sent.
        raise GatewayError(
            400,
            "messages: nothing this model's provider can read is left after removing unsupported content",
            param="messages",
            code=ErrorCode.UNSUPPORTED_PARAMETER,
        )
    return out


def _user_turn_translate(blocks: list[tuple[str, dict]], ctx: _Ctx) -> list[dict]:
    # Tool results go first, as separate `tool` messages: OpenAI requires them right after the
    # assistant message with the tool_calls, before any new user content.
    out: list[dict] = []
    parts: list[dict] = []
    for path, block in blocks:
        kind = block["type"]
        if kind == "tool_result":
            out.append(_tool_result_translate(path, block, ctx))
        elif kind == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            part = _image_part(path, block, ctx)
            if part is not None:
                parts.append(part)
        elif kind == "document":
            part = _document_part(path, block, ctx)
            if part is not None:
                parts.append(part)
        else:
            ctx.unsupported(f"{path}.type", f"the {kind!r} block")
    if parts:
        if len(parts) == 1 and parts[0]["type"] == "text":
            out.append({"role": "user", "content": parts[0]["text"]})
        else:
            out.append({"role": "user", "content": parts})
    return out


def _image_part(path: str, block: dict, ctx: _Ctx) -> dict | None:
    source = block["source"]
    if source["type"] == "base64":
        url = f"data:{source['media_type']};base64,{source['data']}"
    elif source["type"] == "url":
        url = source["url"]
    else:
        ctx.unsupported(f"{path}.source", f"an image with a {source['type']!r} source")
        return None
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(path: str, block: dict, ctx: _Ctx) -> dict | None:
    source = block["source"]
    if source["type"] == "text":
        return {"type": "text", "text": source["data"]}
    if source["type"] == "base64" and source.get("media_type") == "application/pdf":
        filename = block.get("title") or "document.pdf"
        return {
            "type": "file",
            "file": {"filename": filename, "file_data": f"data:application/pdf;base64,{source['data']}"},
        }
    ctx.unsupported(f"{path}.source", f"a document with a {source['type']!r} source")
    return None


def _tool_result_translate(path: str, block: dict, ctx: _Ctx) -> dict:
    content = block.get("content")
    if content is None:
        texts: list[str] = []
    elif isinstance(content, str):
        texts = [content] if content else []
    else:
        texts = []
        for k, item in enumerate(content):
            if item["type"] == "text":
                if item["text"]:
                    texts.append(item["text"])
            else:
                # OpenAI `tool` messages carry text only; moving images elsewhere would change
                # what the model is told about which call returned them.
                ctx.unsupported(f"{path}.content[{k}]", f"a {item['type']!r} block inside a tool_result")
    text = "\n\n".join(texts)
    if block.get("is_error"):
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}


def _assistant_turn_translate(blocks: list[tuple[str, dict]], ctx: _Ctx) -> dict | None:
    texts: list[str] = []
    tool_calls: list[dict] = []
    for path, block in blocks:
        kind = block["type"]
        if kind == "text":
            if block["text"]:
                texts.append(block["text"])
        elif kind == "tool_use":
            tool_calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {
                        "name": block["name"],
                        "arguments": json.dumps(block["input"], separators=(",", ":"), ensure_ascii=False),
                    },
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            ctx.unsupported(f"{path}.type", f"the {kind!r} block")
    if not texts and not tool_calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


# --- response --------------------------------------------------------------------------------


def _stop_reason(finish_reason: str | None, has_tool_calls: bool) -> str:
    if has_tool_calls and finish_reason in ("stop", None):
        return "tool_use"
    return _STOP_REASONS.get(finish_reason or "", "end_turn")


def _anthropic_usage(usage: dict[str, int]) -> dict[str, int]:
    """Metering usage (OpenAI convention: cache reads/writes are subsets of prompt_tokens) in
    Anthropic's, where input, cache reads and cache writes are disjoint."""
    return {
        "input_tokens": max(usage["prompt_tokens"] - usage["cache_read_tokens"] - usage["cache_write_tokens"], 0),
        "cache_creation_input_tokens": usage["cache_write_tokens"],
        "cache_read_input_tokens": usage["cache_read_tokens"],
        "output_tokens": usage["completion_tokens"],
    }


def _parse_arguments(arguments: str | None) -> dict:
    if not arguments:
        return {}
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return {"_raw": arguments}
    return parsed if isinstance(parsed, dict) else {"_raw": arguments}


def _message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):  # a few compatible servers answer with parts
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content or ""


def chat_to_anthropic_response(resp: dict, *, model: str) -> dict:
    """Translate a `chat.completion` into an Anthropic Message; `model` is the public id asked for."""
    choices = resp.get("choices") or []
    choice = choices[0] if choices else {}
    message = choice.get("message") or {}
    content: list[dict] = []
    text = _message_text(message)
    refusal = message.get("refusal")
    if not text and refusal:
        text = refusal
    if text:
        content.append({"type": "text", "text": text})
    tool_calls = message.get("tool_calls") or []
    for call in tool_calls:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or _tool_use_id(),
                "name": function.get("name") or "",
                "input": _parse_arguments(function.get("arguments")),
            }
        )
    stop_reason = _stop_reason(choice.get("finish_reason"), bool(tool_calls))
    if refusal and not _message_text(message):
        stop_reason = "refusal"
    return {
        "id": resp.get("id") or _message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": _anthropic_usage(usage_from_openai(resp.get("usage") or {})),
    }


def _message_id() -> str:
    return "msg_" + uuid.uuid4().hex


def _tool_use_id() -> str:
    return "toolu_" + uuid.uuid4().hex


# --- streaming -------------------------------------------------------------------------------

Event = tuple[str, dict]


class ChatStreamToAnthropic:
    """Re-frame an OpenAI `chat.completion.chunk` stream as Anthropic Messages stream events.

    Feed each parsed upstream chunk to `feed()`, send what it returns as
    `event: <name>\\ndata: <json>\\n\\n`, and call `finish()` at `[DONE]` or end of stream.
    The upstream's finish_reason chunk precedes its usage chunk, so the closing
    `message_delta` waits for usage (or for `finish()`).

    After `finish()`: `complete` is False when the upstream never sent a finish_reason (then
    nothing was emitted by finish(); send an error event), `errored` is True when an upstream
    error object was already re-framed as an `error` event. `usage` is the upstream's own counts
    in the metering shape of `ai_proxy.usage` (prompt_tokens total, completion_tokens,
    cache_read_tokens, cache_write_tokens), or None if it never sent any; `stop_reason` is the
    Anthropic stop reason and `text_chars` the characters of text streamed.
    """

    def __init__(self, *, model: str, input_tokens_estimate: int = 0, message_id: str | None = None) -> None:
        self.model = model
        self.input_tokens_estimate = input_tokens_estimate
        self.message_id = message_id
        self.usage: dict[str, int] | None = None
        self.complete = False
        self.errored = False
        self.stop_reason: str | None = None
        self.finish_reason: str | None = None
        self.text_chars = 0
        self._argument_chars = 0
        self._started = False
        self._closed = False  # message_stop (or error) sent: ignore anything after
        self._next_index = 0
        self._open: tuple[str, int] | None = None  # (block type, block index)
        self._tool_blocks: dict[int, int] = {}  # upstream tool_calls[].index -> block index
        self._saw_refusal = False

    def feed(self, chunk: dict) -> list[Event]:
        if self._closed:
            return []
        error = chunk.get("error")
        if error:
            self._closed = True
            self.errored = True
            message = error.get("message") if isinstance(error, dict) else None
            return [
                (
                    "error",
                    {"type": "error", "error": {"type": "api_error", "message": message or str(error)}},
                )
            ]
        events: list[Event] = []
        if not self._started:
            events.extend(self._start(chunk))
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # n > 1 has no Anthropic equivalent; the first choice is the answer
            events.extend(self._delta(choice.get("delta") or {}))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        if chunk.get("usage"):
            self.usage = usage_from_openai(chunk["usage"])
        if self.finish_reason is not None and self.usage is not None:
            events.extend(self._close())
        return events

    def finish(self) -> list[Event]:
        if self._closed:
            return []
        if self.finish_reason is None:
            self.complete = False
            return []
        return self._close()

    def _start(self, chunk: dict) -> list[Event]:
        self._started = True
        if self.message_id is None:
            self.message_id = chunk.get("id") or _message_id()
        message = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens_estimate, "output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message}), ("ping", {"type": "ping"})]

    def _open_block(self, kind: str, block: dict) -> list[Event]:
        events = self._close_block()
        index = self._next_index
        self._next_index += 1
        self._open = (kind, index)
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}))
        return events

    def _close_block(self) -> list[Event]:
        if self._open is None:
            return []
        index = self._open[1]
        self._open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _delta(self, delta: dict) -> list[Event]:
        events: list[Event] = []
        text = delta.get("content")
        if not text and delta.get("refusal"):
            text = delta["refusal"]
            self._saw_refusal = True
        if text:
            if self._open is None or self._open[0] != "text":
                events.extend(self._open_block("text", {"type": "text", "text": ""}))
            self.text_chars += len(text)
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": self._open[1],
                        "delta": {"type": "text_delta", "text": text},
                    },
                )
            )
        for call in delta.get("tool_calls") or []:
            upstream_index = call.get("index", 0)
            function = call.get("function") or {}
            if upstream_index not in self._tool_blocks:
                block = {
                    "type": "tool_use",
                    "id": call.get("id") or _tool_use_id(),
                    "name": function.get("name") or "",
                    "input": {},
                }
                events.extend(self._open_block("tool_use", block))
                self._tool_blocks[upstream_index] = self._open[1]
            fragment = function.get("arguments")
            if fragment:
                self._argument_chars += len(fragment)
                # An upstream that interleaves parallel calls' fragments gets them at the
                # original block index: the SDKs accumulate by index.
                events.append(
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": self._tool_blocks[upstream_index],
                            "delta": {"type": "input_json_delta", "partial_json": fragment},
                        },
                    )
                )
        return events

    def _close(self) -> list[Event]:
        self._closed = True
        self.complete = True
        stop_reason = _stop_reason(self.finish_reason, bool(self._tool_blocks))
        if self._saw_refusal and stop_reason == "end_turn":
            stop_reason = "refusal"
        self.stop_reason = stop_reason
        if self.usage is not None:
            usage = _anthropic_usage(self.usage)
        else:
            # The upstream ignored include_usage: tell the client a rough estimate (about 4
            # characters per token) rather than 0; `.usage` stays None so metering knows.
            usage = {
                "input_tokens": self.input_tokens_estimate,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": math.ceil((self.text_chars + self._argument_chars) / 4),
            }
        events = self._close_block()
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {
                        "input_tokens": usage["input_tokens"],
                        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                        "cache_read_input_tokens": usage["cache_read_input_tokens"],
                        "output_tokens": usage["output_tokens"],
                    },
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events


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
        chunk = loads_object(event.data)
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


def _request(call: "ProxyCall", route: "RouteEntry") -> dict:
    return anthropic_to_chat_request(
        call.body, upstream_model=route.upstream_model, drop_unsupported=route.drop_unsupported_params
    )


def _response(call: "ProxyCall", data: dict) -> dict:
    return chat_to_anthropic_response(data, model=call.requested_model)


def _framer(call: "ProxyCall") -> Framer:
    return MessagesFromChat(model=call.requested_model, input_tokens_estimate=call.operation.input_tokens(call.body))


MESSAGES_TO_CHAT = Translation(request=_request, response=_response, framer=_framer)
