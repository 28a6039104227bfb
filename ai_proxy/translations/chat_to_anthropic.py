"""OpenAI Chat Completions ⇄ Anthropic Messages, for an OpenAI-format request routed to Claude.

Pure functions, no I/O (WIRE.md §1, §2, §5). Input is a body already accepted by
`chat_format.chat_request_validate`.

Decisions, where WIRE.md leaves a choice:
- Parameters Anthropic cannot honour (`seed`, `n` > 1, penalties ≠ 0, `logprobs`, `logit_bias`,
  audio output, `prediction`, ...) are a 400 `unsupported_parameter` naming the parameter, unless the
  route has `drop_unsupported` (then they are dropped). Unknown top-level keys are treated the same
  way: silently ignoring a parameter the client relies on is worse than a clear 400.
- Dropped silently because the answer is still what the client asked for: `stream_options`,
  `store`, OpenAI `metadata`, `service_tier`, `prompt_cache_key`, `prompt_cache_retention`,
  `prompt_cache_options`, `safety_identifier`, `n` == 1, `parallel_tool_calls` true, penalties of 0,
  `logprobs` false, empty `logit_bias`, `modalities` ["text"], and `reasoning_effort`. The last is a
  hint, not a contract: mapping it to extended thinking would change price (thinking is billed as
  output), `max_tokens` rules and temperature rules behind the client's back.
- `top_k` (an Anthropic parameter some OpenAI-format clients send) passes through.
- Images: `data:` URLs become base64 sources; http(s) URLs become `{"type": "url"}` sources, never
  fetched by the gateway. PDFs sent as `file.file_data` become `document` blocks.
- Tool-call ids are reduced to Anthropic's `^[a-zA-Z0-9_-]+$` the same way on the `tool_use` and the
  `tool_result` side, so they still pair up.
- Whitespace-only stop sequences (Anthropic rejects them) count as unsupported.
- Responses keep Anthropic's `msg_…` id, so a support ticket can be matched to Anthropic's logs;
  the stream uses the same id. `pause_turn` maps to `stop` (no OpenAI equivalent; the server tool
  loop is not resumed). `thinking`/`redacted_thinking` blocks and server-tool blocks are skipped:
  Chat Completions has no field for them, and their tokens are still in `completion_tokens`.
- Usage follows OpenAI's convention: `prompt_tokens` includes cache reads and cache writes
  (`cached_tokens` and `cache_write_tokens` are subsets of it).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from typing import TYPE_CHECKING

from core.errors import ErrorCode, GatewayError

from ..sse import SSE_DONE, SSEEvent, sse_data
from ..usage import usage_from_anthropic
from .base import Framer, Translation, loads_object

if TYPE_CHECKING:
    from catalog.selectors import RouteEntry

    from ..call import ProxyCall

PROVIDER = "Anthropic"
JSON_TOOL_NAME = "json_tool_call"
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Handled explicitly below; anything else at the top level is unsupported.
_MAPPED = {
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "stop",
    "stream", "user", "tools", "tool_choice", "parallel_tool_calls", "response_format",
}
_HARMLESS = {
    "stream_options", "store", "metadata", "service_tier", "reasoning_effort", "prompt_cache_key",
    "prompt_cache_retention", "prompt_cache_options", "safety_identifier",
}
_DATA_URL_RE = re.compile(r"^data:([^;,]+)((?:;[^;,]*)*?);base64,(.*)$", re.DOTALL)
_TOOL_ID_BAD = re.compile(r"[^a-zA-Z0-9_-]")


def chat_wants_json_tool(body: dict) -> bool:
    """True when the request becomes the forced `json_tool_call` tool (pass as `json_tool=`)."""
    response_format = body.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema")


def chat_to_anthropic_request(
    body: dict, *, upstream_model: str, default_max_tokens: int, drop_unsupported: bool = False
) -> dict:
    """Translate a validated chat-completions body into an Anthropic Messages request body."""
    _check_unsupported_params(body, drop_unsupported)
    system, messages = _translate_messages(body["messages"], drop_unsupported)
    if not messages:
        raise GatewayError(400, "messages: at least one user or assistant message is required for "
                                "Anthropic models (system and developer messages alone are not enough).",
                           param="messages", code=ErrorCode.INVALID_VALUE)

    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    out: dict[str, Any] = {
        "model": upstream_model,
        "max_tokens": max_tokens if max_tokens is not None else default_max_tokens,
        "messages": messages,
    }
    if system:
        out["system"] = system

    temperature = body.get("temperature")
    if temperature is not None:
        if temperature > 1:
            if not drop_unsupported:
                raise GatewayError(400, f"temperature {temperature} is out of range: Anthropic models accept "
                                        "temperature between 0 and 1.",
                                   param="temperature", code=ErrorCode.UNSUPPORTED_VALUE)
            temperature = 1
        out["temperature"] = temperature
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    top_k = body.get("top_k")
    if top_k is not None:
        # Not an OpenAI parameter, so chat_request_validate never saw it.
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
            raise GatewayError(400, "Invalid 'top_k': expected a non-negative integer.", param="top_k",
                               code=ErrorCode.INVALID_TYPE)
        out["top_k"] = top_k

    stop = _stop_sequences(body.get("stop"), drop_unsupported)
    if stop:
        out["stop_sequences"] = stop
    if body.get("stream") is True:
        out["stream"] = True
    if body.get("user"):
        out["metadata"] = {"user_id": body["user"]}

    tools, tool_choice = _translate_tools(body, drop_unsupported)
    if tools:
        out["tools"] = tools
    if tool_choice:
        out["tool_choice"] = tool_choice
    return out


# --- parameters ------------------------------------------------------------------------------


def _unsupported(param: str, what: str | None = None) -> GatewayError:
    """`what` names the feature when it is not simply the parameter (`custom` tools)."""
    subject = f"{what} (`{param}`) is" if what else f"`{param}` is"
    return GatewayError(400, f"{subject} not supported by {PROVIDER} models.", param=param,
                        code=ErrorCode.UNSUPPORTED_PARAMETER)


def _check_unsupported_params(body: dict, drop_unsupported: bool) -> None:
    if drop_unsupported:
        return
    for key, value in body.items():
        if key in _MAPPED or key in _HARMLESS or value is None:
            continue
        harmless = (
            (key == "n" and value == 1)
            or (key in ("presence_penalty", "frequency_penalty") and value == 0)
            or (key == "logprobs" and value is False)
            or (key == "logit_bias" and value == {})
            or (key == "modalities" and value in ([], ["text"]))
        )
        if not harmless:
            raise _unsupported(key)


def _stop_sequences(stop: object, drop_unsupported: bool) -> list[str]:
    if stop is None:
        return []
    items = [stop] if isinstance(stop, str) else list(stop)
    kept = []
    for i, item in enumerate(items):
        if item.strip():
            kept.append(item)
        elif item and not drop_unsupported:
            # "\n" is a common OpenAI stop; Anthropic rejects whitespace-only sequences.
            raise GatewayError(400, f"Whitespace-only stop sequences ({item!r}) are not supported by "
                                    f"{PROVIDER} models.",
                               param="stop" if isinstance(stop, str) else f"stop[{i}]",
                               code=ErrorCode.UNSUPPORTED_PARAMETER)
    return kept


def _translate_tools(body: dict, drop_unsupported: bool) -> tuple[list[dict], dict | None]:
    tools: list[dict] = []
    for i, tool in enumerate(body.get("tools") or []):
        if tool.get("type") != "function":
            if drop_unsupported:
                continue
            raise _unsupported(f"tools[{i}].type", f"`{tool.get('type')}` tools")
        function = tool["function"]
        entry: dict[str, Any] = {"name": function["name"]}
        if function.get("description"):
            entry["description"] = function["description"]
        # No parameters means "takes no arguments"; Anthropic requires a schema regardless.
        entry["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
        if tool.get("cache_control"):
            entry["cache_control"] = tool["cache_control"]
        tools.append(entry)

    choice = body.get("tool_choice")
    result: dict | None = None
    if choice is None:
        result = {"type": "auto"}
    elif choice in ("auto", "none", "required"):
        result = {"type": {"auto": "auto", "none": "none", "required": "any"}[choice]}
    elif choice["type"] == "function":
        result = {"type": "tool", "name": choice["function"]["name"]}
    elif choice["type"] == "allowed_tools":
        # Anthropic has no "only these" switch; sending only the allowed tools has the same effect.
        allowed = choice["allowed_tools"]
        names = {(t.get("function") or {}).get("name") or t.get("name") for t in allowed["tools"]}
        tools = [t for t in tools if t["name"] in names]
        result = {"type": "any" if allowed["mode"] == "required" else "auto"}
    elif not drop_unsupported:
        raise _unsupported("tool_choice.type", f"tool_choice `{choice['type']}`")

    if chat_wants_json_tool(body):
        if tools:
            raise GatewayError(400, "response_format json_object/json_schema cannot be combined with `tools` "
                                    f"for {PROVIDER} models: the gateway implements it as a forced tool call.",
                               param="response_format", code=ErrorCode.UNSUPPORTED_PARAMETER)
        json_format = body["response_format"]
        spec = json_format.get("json_schema") or {}
        json_tool: dict[str, Any] = {"name": JSON_TOOL_NAME}
        if spec.get("description"):
            json_tool["description"] = spec["description"]
        json_tool["input_schema"] = spec.get("schema") or {"type": "object"}
        tools = [json_tool]
        result = {"type": "tool", "name": JSON_TOOL_NAME}

    if not tools:
        return [], None
    if body.get("parallel_tool_calls") is False and result and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    if choice is None and result == {"type": "auto"}:
        result = None  # the client said nothing and Anthropic's default is auto
    return tools, result


# --- messages --------------------------------------------------------------------------------


def _translate_messages(messages: list[dict], drop_unsupported: bool) -> tuple[list[dict], list[dict]]:
    system: list[dict] = []
    turns: list[tuple[str, list[dict]]] = []
    for i, message in enumerate(messages):
        role = message["role"]
        path = f"messages[{i}]"
        if role in ("system", "developer"):
            system.extend(_text_blocks(message, path))
            continue
        if role == "function":
            if drop_unsupported:
                continue
            raise _unsupported(f"{path}.role", "Deprecated `function` messages (use `tool` messages)")
        if role == "user":
            blocks = _user_blocks(message, path, drop_unsupported)
        elif role == "tool":
            blocks = [_tool_result_block(message, path)]
        else:
            blocks = _assistant_blocks(message, path, drop_unsupported)
        if blocks:
            turns.append(("assistant" if role == "assistant" else "user", blocks))

    merged: list[dict] = []
    for role, blocks in turns:
        if merged and merged[-1]["role"] == role:
            merged[-1]["content"].extend(blocks)
        else:
            merged.append({"role": role, "content": list(blocks)})
    for turn in merged:
        if turn["role"] == "user":
            # Anthropic wants a user turn's tool_result blocks before any other content.
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")

    if merged and merged[-1]["role"] == "assistant":
        # A final assistant turn is a prefill; Anthropic rejects trailing whitespace in it.
        content = merged[-1]["content"]
        if content[-1]["type"] == "text":
            content[-1]["text"] = content[-1]["text"].rstrip()
            if not content[-1]["text"]:
                content.pop()
        if not content:
            merged.pop()
    return system, merged


def _text_blocks(message: dict, path: str) -> list[dict]:
    """System, developer and tool content: a string or text parts, empty text dropped."""
    content = message.get("content")
    if isinstance(content, str):
        blocks = [{"type": "text", "text": content}] if content else []
    else:
        blocks = []
        for part in content or []:
            if part["type"] == "text" and part["text"]:
                blocks.append(_with_cache_control({"type": "text", "text": part["text"]}, part))
            elif part["type"] == "refusal" and part["refusal"]:
                blocks.append({"type": "text", "text": part["refusal"]})
    if blocks and message.get("cache_control"):
        blocks[-1] = _with_cache_control(blocks[-1], message)
    return blocks


def _with_cache_control(block: dict, source: dict) -> dict:
    if source.get("cache_control"):
        block["cache_control"] = source["cache_control"]
    return block


def _user_blocks(message: dict, path: str, drop_unsupported: bool) -> list[dict]:
    content = message["content"]
    if isinstance(content, str):
        return _text_blocks(message, path)
    blocks: list[dict] = []
    for j, part in enumerate(content):
        where = f"{path}.content[{j}]"
        kind = part["type"]
        if kind == "text":
            if part["text"]:
                blocks.append(_with_cache_control({"type": "text", "text": part["text"]}, part))
        elif kind == "image_url":
            blocks.append(_with_cache_control(_image_block(part["image_url"]["url"], f"{where}.image_url.url"), part))
        elif kind == "file":
            block = _document_block(part["file"], where, drop_unsupported)
            if block:
                blocks.append(_with_cache_control(block, part))
        elif not drop_unsupported:
            raise _unsupported(f"{where}.type", f"`{kind}` content")
    if blocks and message.get("cache_control"):
        blocks[-1] = _with_cache_control(blocks[-1], message)
    return blocks


def _image_block(url: str, param: str) -> dict:
    if url.startswith("data:"):
        match = _DATA_URL_RE.match(url)
        if not match:
            raise GatewayError(400, "Invalid image data URL: expected data:<mime>;base64,<data>.",
                               param=param, code=ErrorCode.INVALID_VALUE)
        media_type = match.group(1).lower()
        if media_type not in IMAGE_MEDIA_TYPES:
            raise GatewayError(400, f"Image type {media_type} is not supported by {PROVIDER} models; use one of "
                                    f"{', '.join(IMAGE_MEDIA_TYPES)}.", param=param, code=ErrorCode.INVALID_VALUE)
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": match.group(3)}}
    if url.startswith(("https://", "http://")):
        # Anthropic fetches it; the gateway never does (no SSRF, no buffering).
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise GatewayError(400, "Invalid image URL: expected an http(s) URL or a data:<mime>;base64 URL.",
                       param=param, code=ErrorCode.INVALID_VALUE)


def _document_block(file: dict, where: str, drop_unsupported: bool) -> dict | None:
    data = file.get("file_data")
    if not data:
        if drop_unsupported:
            return None
        raise _unsupported(f"{where}.file.file_id", "An uploaded OpenAI file (send `file_data` instead)")
    media_type = "application/pdf"  # OpenAI's file input is PDF; raw base64 without a data: prefix is too
    match = _DATA_URL_RE.match(data)
    if match:
        media_type, data = match.group(1).lower(), match.group(3)
    if media_type != "application/pdf":
        if drop_unsupported:
            return None
        raise GatewayError(400, f"File type {media_type} is not supported by {PROVIDER} models; send a PDF.",
                           param=f"{where}.file.file_data", code=ErrorCode.INVALID_VALUE)
    block: dict[str, Any] = {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if file.get("filename"):
        block["title"] = file["filename"]
    return block


def _tool_id(value: str) -> str:
    return _TOOL_ID_BAD.sub("_", value)


def _tool_result_block(message: dict, path: str) -> dict:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": _tool_id(message["tool_call_id"])}
    content = message["content"]
    if isinstance(content, str):
        if content:
            block["content"] = content
    else:
        parts = _text_blocks({"content": content}, path)  # message-level cache_control goes on the block
        if parts:
            block["content"] = parts
    return _with_cache_control(block, message)


def _assistant_blocks(message: dict, path: str, drop_unsupported: bool) -> list[dict]:
    blocks = _text_blocks(message, path) if message.get("content") is not None else []
    for k, call in enumerate(message.get("tool_calls") or []):
        where = f"{path}.tool_calls[{k}]"
        if call["type"] != "function":
            if drop_unsupported:
                continue
            raise _unsupported(f"{where}.type", f"`{call['type']}` tool calls")
        arguments = call["function"]["arguments"]
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            raise GatewayError(400, f"Invalid '{where}.function.arguments': expected a JSON object string, got "
                                    f"invalid JSON.", param=f"{where}.function.arguments", code=ErrorCode.INVALID_VALUE)
        if not isinstance(parsed, dict):
            raise GatewayError(400, f"Invalid '{where}.function.arguments': expected a JSON object, got "
                                    f"{type(parsed).__name__}.", param=f"{where}.function.arguments",
                               code=ErrorCode.INVALID_VALUE)
        blocks.append({"type": "tool_use", "id": _tool_id(call["id"]), "name": call["function"]["name"],
                       "input": parsed})
    return blocks


# --- responses -------------------------------------------------------------------------------


def anthropic_to_chat_response(
    resp: dict, *, model: str, request_id: str | None = None, json_tool: bool = False
) -> dict:
    """Translate an Anthropic Message into a `chat.completion` for `model` (the client's model id)."""
    texts: list[str] = []
    tool_calls: list[dict] = []
    json_text: str | None = None
    for block in resp.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {}, separators=(",", ":"), ensure_ascii=False)
            if json_tool and block.get("name") == JSON_TOOL_NAME:
                json_text = arguments
                continue
            tool_calls.append({"id": block.get("id"), "type": "function",
                               "function": {"name": block.get("name"), "arguments": arguments}})

    finish_reason = FINISH_REASONS.get(resp.get("stop_reason") or "", "stop")
    if json_text is not None:
        # The forced tool is our implementation detail: its input *is* the JSON answer.
        content: str | None = json_text
        if finish_reason == "tool_calls" and not tool_calls:
            finish_reason = "stop"
    elif texts:
        content = "".join(texts)
    else:
        content = None if tool_calls else ""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if tool_calls:
        message["tool_calls"] = tool_calls

    return {
        "id": resp.get("id") or _fallback_id(request_id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": _chat_usage(usage_from_anthropic(resp.get("usage") or {})),
        "service_tier": "default",
        "system_fingerprint": None,
    }


def _fallback_id(request_id: str | None) -> str:
    return "chatcmpl-" + (request_id or uuid.uuid4().hex)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _chat_usage(usage: dict[str, int]) -> dict:
    return {
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
        "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"],
        "prompt_tokens_details": {"cached_tokens": usage["cache_read_tokens"], "audio_tokens": 0,
                                  "cache_write_tokens": usage["cache_write_tokens"]},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0},
    }


# --- streaming -------------------------------------------------------------------------------


class AnthropicStreamToChat:
    """Re-frames one Anthropic Messages event stream as chat.completion.chunk dicts, event by event.

    Metering reads `.usage` (prompt_tokens incl. cache, completion_tokens, cache_read_tokens,
    cache_write_tokens), `.finish_reason`, `.complete` (message_stop seen) and `.text_chars`
    (characters generated so far, text plus tool arguments, to estimate tokens on a disconnect).
    `.usage_known` is False until upstream reported any usage, so metering can flag an estimate.
    """

    def __init__(self, *, model: str, include_usage: bool, created: int | None = None,
                 json_tool: bool = False) -> None:
        self.model = model
        self.include_usage = include_usage
        self.created = created if created is not None else int(time.time())
        self.json_tool = json_tool
        self.id: str | None = None
        self.usage: dict[str, int] = {"prompt_tokens": 0, "completion_tokens": 0,
                                      "cache_read_tokens": 0, "cache_write_tokens": 0}
        self.usage_known = False
        self.finish_reason: str | None = None
        self.stop_reason: str | None = None
        self.complete = False
        self.text_chars = 0
        self.error: dict | None = None
        self._started = False
        self._tool_index: dict[int, int] = {}  # content-block index -> tool-call index
        self._json_blocks: set[int] = set()
        self._input = {"input_tokens": 0, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}

    def feed(self, event: str, data: dict) -> list[dict]:
        """One upstream SSE event (name and parsed data) → the chunks to send, possibly none."""
        kind = event or data.get("type") or ""
        if kind == "message_start":
            return self._message_start(data.get("message") or {})
        if kind == "content_block_start":
            return self._block_start(data.get("index"), data.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(data.get("index"), data.get("delta") or {})
        if kind == "message_delta":
            return self._message_delta(data)
        if kind == "message_stop":
            return self._message_stop()
        if kind == "error":
            error = data.get("error") or {}
            error_type = error.get("type") or "api_error"
            self.error = {"message": error.get("message") or "Upstream error", "type": error_type,
                          "code": error_type}
            return [{"error": dict(self.error)}]
        return []  # ping, content_block_stop, unknown future events

    def finish(self) -> list[dict]:
        """Upstream ended. Nothing is owed after message_stop; a stream cut short stays incomplete."""
        return []

    # -- events --

    def _chunk(self, delta: dict, finish_reason: str | None = None) -> dict:
        chunk = self._envelope()
        chunk["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def _envelope(self) -> dict:
        if self.id is None:
            self.id = _fallback_id(None)
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "service_tier": "default", "system_fingerprint": None}

    def _message_start(self, message: dict) -> list[dict]:
        self.id = message.get("id") or self.id
        self._update_usage(message.get("usage") or {})
        if self._started:
            return []
        self._started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, index: int | None, block: dict) -> list[dict]:
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            return self._text(block["text"])
        if kind != "tool_use":
            return []  # thinking, redacted_thinking, server tools: no Chat Completions field
        if self.json_tool and block.get("name") == JSON_TOOL_NAME:
            self._json_blocks.add(index)
            return []
        position = len(self._tool_index)
        self._tool_index[index] = position
        # id, type and name go out once: the SDK's accumulate_delta concatenates repeated strings.
        return [self._chunk({"tool_calls": [{"index": position, "id": block.get("id"), "type": "function",
                                             "function": {"name": block.get("name"), "arguments": ""}}]})]

    def _block_delta(self, index: int | None, delta: dict) -> list[dict]:
        kind = delta.get("type")
        if kind == "text_delta":
            return self._text(delta.get("text") or "")
        if kind != "input_json_delta":
            return []  # thinking_delta, signature_delta, citations_delta
        fragment = delta.get("partial_json") or ""
        if not fragment:
            return []
        if index in self._json_blocks:
            return self._text(fragment)
        if index not in self._tool_index:
            return []
        self.text_chars += len(fragment)
        return [self._chunk({"tool_calls": [{"index": self._tool_index[index], "function": {"arguments": fragment}}]})]

    def _text(self, text: str) -> list[dict]:
        if not text:
            return []
        self.text_chars += len(text)
        return [self._chunk({"content": text})]

    def _message_delta(self, data: dict) -> list[dict]:
        self._update_usage(data.get("usage") or {})
        stop_reason = (data.get("delta") or {}).get("stop_reason")
        if stop_reason is None or self.finish_reason is not None:
            return []
        self.stop_reason = stop_reason
        finish_reason = FINISH_REASONS.get(stop_reason, "stop")
        if finish_reason == "tool_calls" and self._json_blocks and not self._tool_index:
            finish_reason = "stop"
        self.finish_reason = finish_reason
        return [self._chunk({}, finish_reason)]

    def _message_stop(self) -> list[dict]:
        chunks = []
        if self.finish_reason is None:
            self.finish_reason = "stop"
            chunks.append(self._chunk({}, "stop"))
        self.complete = True
        if self.include_usage:
            chunk = self._envelope()
            chunk["choices"] = []
            chunk["usage"] = _chat_usage(self.usage)
            chunks.append(chunk)
        return chunks

    def _update_usage(self, usage: dict) -> None:
        if usage:
            self.usage_known = True
        # message_delta may restate input counts; when present they overwrite (WIRE.md §2).
        for key in self._input:
            if usage.get(key) is not None:
                self._input[key] = _int(usage[key])
        if usage.get("output_tokens") is not None:
            self.usage["completion_tokens"] = _int(usage["output_tokens"])  # cumulative, not a delta
        self.usage["cache_read_tokens"] = self._input["cache_read_input_tokens"]
        self.usage["cache_write_tokens"] = self._input["cache_creation_input_tokens"]
        self.usage["prompt_tokens"] = sum(self._input.values())


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
        data = loads_object(event.data)
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


def _json_mode(body: dict) -> bool:
    fmt = body.get("response_format")
    return isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object")


def _request(call: "ProxyCall", route: "RouteEntry") -> dict:
    return chat_to_anthropic_request(
        call.body,
        upstream_model=route.upstream_model,
        default_max_tokens=call.model.max_output_tokens,
        drop_unsupported=route.drop_unsupported_params,
    )


def _response(call: "ProxyCall", data: dict) -> dict:
    return anthropic_to_chat_response(
        data, model=call.requested_model, request_id=call.request_id, json_tool=_json_mode(call.body)
    )


def _framer(call: "ProxyCall") -> Framer:
    include_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))
    return ChatFromAnthropic(model=call.requested_model, include_usage=include_usage, json_tool=_json_mode(call.body))


CHAT_TO_ANTHROPIC = Translation(request=_request, response=_response, framer=_framer)
