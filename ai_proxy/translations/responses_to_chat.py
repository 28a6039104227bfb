"""(responses, openai): OpenAI Responses API clients on OpenAI-dialect routes, through Chat Completions.

The Responses request becomes a chat-completions body (`responses_to_chat_request`), which goes
upstream as it is to OpenAI-dialect providers (this pair) or on through chat_to_anthropic
(responses_to_anthropic); the chat answer (Anthropic's translated back to chat first) becomes a
Response object (`chat_to_responses_response`), and a chat chunk stream becomes typed `response.*`
events (`ChatStreamToResponses`, framed by `ResponsesFromChat`). The validator is
ai_proxy.responses_format; the operation ai_proxy.operations.RESPONSES.

Wire formats, field by field: the official SDK's types (`openai/types/responses/response.py`,
`response_stream_event.py` and each event type), and recorded OpenAI streams in the Vercel AI SDK's
fixtures (`packages/openai/src/responses/__fixtures__/*.chunks.txt`), which also fix the event order:
response.created, response.in_progress, then per output item output_item.added, (message:
content_part.added, output_text.delta..., output_text.done, content_part.done | function_call:
function_call_arguments.delta..., function_call_arguments.done), output_item.done, and finally one
of response.completed / response.incomplete / response.failed. Every event has a `sequence_number`
counting from 0 and goes out as `event: <type>` + `data: <json>`; no `[DONE]` follows.

Decisions, where the formats leave a choice:
- `instructions` become the first chat message, role `system` (every OpenAI-compatible provider
  knows it; `developer` input messages pass as `developer`).
- `max_output_tokens` becomes `max_completion_tokens` (OpenAI's current name; `max_tokens` is
  refused by its reasoning models). `metadata` is echoed but not sent upstream: OpenAI's chat API
  only accepts it with `store`, which the gateway never sets.
- Consecutive `function_call` items (and the assistant message before them) become one assistant
  message with `tool_calls`: Anthropic needs every tool_use of a turn in one message.
- `finish_reason` "length" gives status `incomplete` with reason `max_output_tokens`,
  "content_filter" reason `content_filter`; anything else is `completed`.
- Ids: `resp_`, `msg_` and `fc_` plus the gateway's request id, so one request's objects share it;
  `call_id` is the provider's tool-call id, so tool results pair up on the way back.
- `usage` in the Response is what metering bills: the provider's, or (flagged as estimated on the
  ledger row) the same estimate the proxy would make.
- Errors raised by the chat translations name chat-completions paths; `responses_error_param`
  rewrites them to the Responses body's paths (`messages[1].content[0]` -> `input[0].content[0]`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from core.errors import OPENAI, GatewayError

from ..responses_format import responses_request_validate
from ..sse import SSEEvent, sse_named
from ..tokens import tokens_for_chars, tokens_for_request, tokens_for_text, tokens_upper_bound
from ..usage import usage_from_openai
from .base import Framer, Translation, loads_object

if TYPE_CHECKING:
    from ..call import ProxyCall
    from ..catalog import RouteEntry

# --- request -----------------------------------------------------------------------------------


@dataclass
class ChatRequest:
    """The chat-completions body for a Responses request, and where each chat message came from."""

    body: dict
    # chat message index -> the Responses path it was built from ("instructions", "input[2]").
    message_paths: list[str] = field(default_factory=list)
    # (chat message index, tool call index) -> the function_call item's path.
    tool_call_paths: dict[tuple[int, int], str] = field(default_factory=dict)


class ResponsesBody(dict):
    """A validated Responses body that keeps its chat translation: the input estimate, the
    admission bound, each route's request and the framer all read one translation, not one each."""

    __slots__ = ("chat",)


def responses_body_validate(body: dict) -> ResponsesBody:
    """Operation.validate for /responses: the validator's checks, and the body that keeps its chat form."""
    return ResponsesBody(responses_request_validate(body))


def chat_request_of(body: dict) -> ChatRequest:
    """`responses_to_chat_request(body)`, translated once per validated body."""
    if not isinstance(body, ResponsesBody):
        return responses_to_chat_request(body)
    try:
        return body.chat
    except AttributeError:
        body.chat = responses_to_chat_request(body)
        return body.chat


def responses_to_chat_request(body: dict) -> ChatRequest:
    """Translate a body accepted by `responses_request_validate` into a chat-completions body.

    The model stays the client's; the route's upstream model is set by the next translation.
    """
    out = ChatRequest(body={"model": body["model"]})
    messages: list[dict] = []
    instructions = body.get("instructions")
    if instructions:
        messages.append({"role": "system", "content": instructions})
        out.message_paths.append("instructions")
    items = body["input"]
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
        out.message_paths.append("input")
    else:
        for i, item in enumerate(items):
            _add_item(out, messages, item, f"input[{i}]")
    chat = out.body
    chat["messages"] = messages

    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    for key in ("temperature", "top_p", "user", "service_tier", "safety_identifier", "prompt_cache_key",
                "prompt_cache_retention"):
        if body.get(key) is not None:
            chat[key] = body[key]
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        chat["reasoning_effort"] = effort
    text = body.get("text") or {}
    if text.get("verbosity") is not None:
        chat["verbosity"] = text["verbosity"]
    response_format = _response_format(text.get("format"))
    if response_format is not None:
        chat["response_format"] = response_format

    tools = [_chat_tool(tool) for tool in body.get("tools") or []]
    if tools:
        chat["tools"] = tools
        choice = _chat_tool_choice(body.get("tool_choice"))
        if choice is not None:
            chat["tool_choice"] = choice
        if body.get("parallel_tool_calls") is not None:
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    # Without tools, tool_choice "auto"/"none" and parallel_tool_calls say nothing (chat refuses them).
    if body.get("stream") is True:
        chat["stream"] = True
    return out


def _add_item(out: ChatRequest, messages: list[dict], item: dict, path: str) -> None:
    kind = item.get("type") or "message"
    if kind == "message":
        role = item["role"]
        content = item["content"]
        if role == "assistant":
            texts, refusals = [], []
            if isinstance(content, str):
                texts.append(content)
            else:
                for part in content:
                    (texts if part["type"] == "output_text" else refusals).append(
                        part.get("text") if part["type"] == "output_text" else part["refusal"])
            message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
            if refusals and not texts:
                message = {"role": "assistant", "content": None, "refusal": "".join(refusals)}
            messages.append(message)
        else:
            if not isinstance(content, str):
                content = [_chat_part(part) for part in content]
            messages.append({"role": role, "content": content})
        out.message_paths.append(path)
    elif kind == "function_call":
        call = {"id": item["call_id"], "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]}}
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant":
            # One assistant turn: its text and every call it made (Anthropic needs them together).
            last.setdefault("tool_calls", []).append(call)
            if last.get("content") == "":
                last["content"] = None
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            out.message_paths.append(path)
        index = len(messages) - 1
        out.tool_call_paths[(index, len(messages[index]["tool_calls"]) - 1)] = path
    else:  # function_call_output
        output = item["output"]
        if not isinstance(output, str):  # text parts only (responses_format)
            output = [{"type": "text", "text": part["text"]} for part in output]
        messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": output})
        out.message_paths.append(path)


def _chat_part(part: dict) -> dict:
    kind = part["type"]
    if kind == "input_text":
        return {"type": "text", "text": part["text"]}
    if kind == "input_image":
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail") is not None:
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    file: dict[str, Any] = {"file_data": part["file_data"]}  # input_file, inline (validated)
    if part.get("filename"):
        file["filename"] = part["filename"]
    return {"type": "file", "file": file}


def _chat_tool(tool: dict) -> dict:
    function: dict[str, Any] = {"name": tool["name"]}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    if tool.get("parameters") is not None:
        function["parameters"] = tool["parameters"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _chat_tool_choice(choice: object) -> object:
    if choice is None or isinstance(choice, str):
        return choice
    if choice["type"] == "function":
        return {"type": "function", "function": {"name": choice["name"]}}
    return {"type": "allowed_tools", "allowed_tools": {
        "mode": choice["mode"],
        "tools": [{"type": "function", "function": {"name": tool["name"]}} for tool in choice["tools"]],
    }}


def _response_format(fmt: dict | None) -> dict | None:
    if not fmt or fmt["type"] == "text":
        return None
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    schema: dict[str, Any] = {"name": fmt["name"], "schema": fmt["schema"]}
    for key in ("description", "strict"):
        if fmt.get(key) is not None:
            schema[key] = fmt[key]
    return {"type": "json_schema", "json_schema": schema}


# Chat-completions parameter names and their Responses equivalents, for error messages.
_PARAMS = {
    "max_completion_tokens": "max_output_tokens",
    "max_tokens": "max_output_tokens",
    "response_format": "text.format",
    "reasoning_effort": "reasoning.effort",
    "verbosity": "text.verbosity",
}
_MESSAGE_PATH = re.compile(r"^messages\[(\d+)\](.*)$")
_TOOL_CALL_PATH = re.compile(r"^\.tool_calls\[(\d+)\](?:\.function)?(.*)$")
_TOOL_PATH = re.compile(r"^tools\[(\d+)\]\.function(.*)$")
_CONTENT_IMAGE = re.compile(r"^(\.content\[\d+\])\.image_url\.url$")
_CONTENT_FILE = re.compile(r"^(\.content\[\d+\])\.file(\.\w+)$")


def responses_error_param(exc: GatewayError, request: ChatRequest) -> GatewayError:
    """`exc` (raised about the chat body) with its `param` naming the Responses body's field."""
    param = exc.param
    if not param:
        return exc
    mapped = _map_param(param, request)
    if mapped == param:
        return exc
    message = exc.message.replace(param, mapped)
    return GatewayError(exc.status, message, code=exc.code, param=mapped, error_type=exc.error_type,
                        anthropic_error_type=exc.anthropic_error_type, headers=exc.headers)


def _map_param(param: str, request: ChatRequest) -> str:
    if param == "messages":
        return "input"
    if param in _PARAMS:
        return _PARAMS[param]
    match = _TOOL_PATH.match(param)
    if match:
        return f"tools[{match.group(1)}]{match.group(2)}"
    if param.startswith("tool_choice.function"):
        return "tool_choice" + param[len("tool_choice.function"):]
    match = _MESSAGE_PATH.match(param)
    if not match:
        return param
    index, rest = int(match.group(1)), match.group(2)
    if index >= len(request.message_paths):
        return "input"
    base = request.message_paths[index]
    call = _TOOL_CALL_PATH.match(rest)
    if call:
        return request.tool_call_paths.get((index, int(call.group(1))), base) + call.group(2)
    if base.startswith("input[") and rest.startswith(".tool_call_id"):
        return base + ".call_id"
    image = _CONTENT_IMAGE.match(rest)
    if image:
        return base + image.group(1) + ".image_url"
    file = _CONTENT_FILE.match(rest)
    if file:
        return base + file.group(1) + file.group(2)
    if base == "instructions":
        return base
    if base.startswith("input[") and ".output[" not in base and rest.startswith(".content") and \
            request.body["messages"][index]["role"] == "tool":
        rest = ".output" + rest[len(".content"):]
    return base + rest


# --- response ----------------------------------------------------------------------------------


def response_ids(request_id: str) -> tuple[str, str]:
    """(response id, message item id) for one gateway request."""
    suffix = request_id.removeprefix("req_")
    return f"resp_{suffix}", f"msg_{suffix}"


def response_object(body: dict, *, response_id: str, model: str, created_at: int, status: str,
                    output: list[dict] | None = None, usage: dict | None = None,
                    incomplete_reason: str | None = None, error: dict | None = None) -> dict:
    """A Response object for `body` (the client's validated request), echoing what it asked for."""
    text = dict(body.get("text") or {})
    text.setdefault("format", {"type": "text"})
    if text["format"] is None:
        text["format"] = {"type": "text"}
    reasoning = body.get("reasoning") or {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": model,
        "output": output or [],
        "parallel_tool_calls": body.get("parallel_tool_calls") if body.get("parallel_tool_calls") is not None else True,
        "previous_response_id": None,
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": body.get("safety_identifier"),
        # "auto" is served at the standard tier; OpenAI answers with the tier it used.
        "service_tier": body.get("service_tier") if body.get("service_tier") not in (None, "auto") else "default",
        "store": False,  # the gateway never keeps responses (responses_format refuses store: true)
        "temperature": body["temperature"] if body.get("temperature") is not None else 1.0,
        "text": text,
        "tool_choice": body.get("tool_choice") if body.get("tool_choice") is not None else "auto",
        "tools": [_echo_tool(tool) for tool in body.get("tools") or []],
        "top_p": body["top_p"] if body.get("top_p") is not None else 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def _echo_tool(tool: dict) -> dict:
    return {"type": "function", "name": tool["name"], "description": tool.get("description"),
            "parameters": tool.get("parameters"), "strict": tool.get("strict")}


def responses_usage(usage: dict[str, int], reasoning_tokens: int = 0) -> dict:
    """The Response `usage` from metering's usage dict (ai_proxy.usage: prompt_tokens includes
    cache reads and writes, as `input_tokens` does), so the client sees what is billed."""
    return {
        "input_tokens": usage["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": usage.get("cache_read_tokens", 0),
                                 "cache_write_tokens": usage.get("cache_write_tokens", 0)},
        "output_tokens": usage["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"],
    }


def chat_reasoning_tokens(chat_usage: object) -> int:
    """Reasoning tokens an OpenAI-dialect provider reported (a subset of completion tokens)."""
    details = chat_usage.get("completion_tokens_details") if isinstance(chat_usage, dict) else None
    value = details.get("reasoning_tokens") if isinstance(details, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _status(finish_reason: str | None) -> tuple[str, str | None]:
    if finish_reason == "length":
        return "incomplete", "max_output_tokens"
    if finish_reason == "content_filter":
        return "incomplete", "content_filter"
    return "completed", None


def text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def function_call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict:
    return {"id": item_id, "type": "function_call", "status": status, "arguments": arguments,
            "call_id": call_id, "name": name}


def chat_to_responses_response(chat: dict, *, body: dict, model: str, request_id: str,
                               created_at: int, usage: dict[str, int]) -> dict:
    """A `chat.completion` (from any upstream, already in chat form) as a Response object.

    `body` is the client's Responses request, `model` the name it asked for, `usage` metering's
    usage dict for the call (so the client sees exactly what is billed).
    """
    response_id, message_id = response_ids(request_id)
    # Read defensively: a provider's malformed answer becomes an empty message, not a 500.
    choices = chat.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = _dict(choice.get("message"))
    status, reason = _status(choice.get("finish_reason"))
    item_status = "incomplete" if status == "incomplete" else "completed"
    output: list[dict] = []
    content = message.get("content")
    calls = [call for call in _list(message.get("tool_calls")) if isinstance(call, dict)]
    parts = []
    if isinstance(content, list):  # some providers answer with parts
        content = "".join(_str(p.get("text")) for p in content if isinstance(p, dict))
    elif not isinstance(content, str):
        content = None
    if content or (not calls and not message.get("refusal")):
        parts.append(text_part(content or ""))
    if message.get("refusal"):
        parts.append({"type": "refusal", "refusal": _str(message["refusal"])})
    if parts:
        output.append({"id": message_id, "type": "message", "status": item_status, "role": "assistant",
                       "content": parts})
    suffix = response_id.removeprefix("resp_")
    for k, call in enumerate(calls):
        function = _dict(call.get("function"))
        output.append(function_call_item(f"fc_{suffix}_{k}", _str(call.get("id")) or f"call_{suffix}_{k}",
                                         _str(function.get("name")), _str(function.get("arguments")),
                                         "completed"))
    return response_object(body, response_id=response_id, model=model, created_at=created_at, status=status,
                           output=output, usage=responses_usage(usage, chat_reasoning_tokens(chat.get("usage"))),
                           incomplete_reason=reason)


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def responses_output_text(response: dict) -> str:
    """The text a Response carries (what an organization that stores content keeps)."""
    texts = []
    for item in response.get("output") or []:
        if item.get("type") == "message":
            texts.extend(part.get("text") or "" for part in item.get("content") or []
                         if part.get("type") == "output_text")
        elif item.get("type") == "function_call":
            texts.append(item.get("arguments") or "")
    return "".join(texts)


# --- streaming ---------------------------------------------------------------------------------


class ChatStreamToResponses:
    """Re-frames one chat.completion.chunk stream (as dicts) as typed Responses events.

    `feed(chunk)` and `finish(usage)` return `(type, data)` pairs to send as `event: type`. The
    owner reads `.complete` (the upstream said how it finished) and `.text_chars` (characters
    generated, to estimate tokens on a disconnect), and passes the final usage to `finish`, since
    only it knows which usage to bill (provider's or estimated).
    """

    def __init__(self, *, body: dict, model: str, request_id: str, created_at: int | None = None) -> None:
        self.body = body
        self.model = model
        self.created_at = created_at if created_at is not None else int(time.time())
        self.response_id, self.message_id = response_ids(request_id)
        self._suffix = self.response_id.removeprefix("resp_")
        self.sequence = 0
        self.started = False
        self.finish_reason: str | None = None
        self.complete = False
        self.finished = False
        self.text_chars = 0
        self._output: list[dict] = []  # output items as they are opened, completed in place
        self._text_item: dict | None = None
        self._text: list[str] = []
        self._calls: dict[int, dict] = {}  # chat tool-call index -> its function_call item
        self._calls_args: dict[int, list[str]] = {}
        self._open: dict | None = None  # the output item being streamed
        self.reasoning_tokens = 0

    # -- events --

    def _event(self, kind: str, **data: Any) -> tuple[str, dict]:
        event = {"type": kind, **data, "sequence_number": self.sequence}
        self.sequence += 1
        return kind, event

    def _response(self, status: str, **kwargs: Any) -> dict:
        return response_object(self.body, response_id=self.response_id, model=self.model,
                               created_at=self.created_at, status=status, **kwargs)

    def start(self) -> list[tuple[str, dict]]:
        if self.started:
            return []
        self.started = True
        return [self._event("response.created", response=self._response("in_progress")),
                self._event("response.in_progress", response=self._response("in_progress"))]

    def feed(self, chunk: dict) -> list[tuple[str, dict]]:
        events = self.start()
        if chunk.get("usage"):
            self.reasoning_tokens = chat_reasoning_tokens(chunk["usage"])
        for choice in _list(chunk.get("choices")):
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = _dict(choice.get("delta"))
            content = delta.get("content")
            if content and isinstance(content, str):
                events += self._text_delta(content)
            for call in _list(delta.get("tool_calls")):
                if isinstance(call, dict):
                    events += self._call_delta(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                self.complete = True
        return events

    def _close_open(self) -> list[tuple[str, dict]]:
        item, self._open = self._open, None
        if item is None:
            return []
        index = self._output.index(item)
        status = "incomplete" if self.finish_reason in ("length", "content_filter") and self.complete else "completed"
        if item["type"] == "message":
            text = "".join(self._text)
            part = text_part(text)
            item["content"] = [part]
            item["status"] = status
            return [
                self._event("response.output_text.done", item_id=item["id"], output_index=index,
                            content_index=0, text=text, logprobs=[]),
                self._event("response.content_part.done", item_id=item["id"], output_index=index,
                            content_index=0, part=part),
                self._event("response.output_item.done", output_index=index, item=item),
            ]
        chat_index = next(k for k, v in self._calls.items() if v is item)
        item["arguments"] = "".join(self._calls_args[chat_index])
        item["status"] = "completed"  # the AI SDK's schema accepts only completed calls
        return [
            self._event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                        arguments=item["arguments"]),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def _text_delta(self, text: str) -> list[tuple[str, dict]]:
        events: list[tuple[str, dict]] = []
        self.text_chars += len(text)
        if self._text_item is None:
            events += self._close_open()
            item = {"id": self.message_id, "type": "message", "status": "in_progress", "role": "assistant",
                    "content": []}
            self._text_item = self._open = item
            self._output.append(item)
            index = len(self._output) - 1
            events.append(self._event("response.output_item.added", output_index=index,
                                      item={**item, "content": []}))
            events.append(self._event("response.content_part.added", item_id=item["id"], output_index=index,
                                      content_index=0, part=text_part("")))
        elif self._open is not self._text_item:
            return events  # text after a tool call started: chat upstreams do not interleave
        self._text.append(text)
        index = self._output.index(self._text_item)
        events.append(self._event("response.output_text.delta", item_id=self.message_id, output_index=index,
                                  content_index=0, delta=text, logprobs=[]))
        return events

    def _call_delta(self, call: dict) -> list[tuple[str, dict]]:
        events: list[tuple[str, dict]] = []
        index = call.get("index", 0)
        if not isinstance(index, int) or isinstance(index, bool):
            index = 0
        function = _dict(call.get("function"))
        arguments = _str(function.get("arguments"))
        item = self._calls.get(index)
        if item is None:
            events += self._close_open()
            item = function_call_item(f"fc_{self._suffix}_{index}",
                                      _str(call.get("id")) or f"call_{self._suffix}_{index}",
                                      _str(function.get("name")), "", "in_progress")
            self._calls[index] = self._open = item
            self._calls_args[index] = []
            self._output.append(item)
            events.append(self._event("response.output_item.added", output_index=len(self._output) - 1,
                                      item=dict(item)))
        if arguments:
            self.text_chars += len(arguments)
            self._calls_args[index].append(arguments)
            events.append(self._event("response.function_call_arguments.delta", item_id=item["id"],
                                      output_index=self._output.index(item), delta=arguments))
        return events

    def finish(self, usage: dict[str, int]) -> list[tuple[str, dict]]:
        """The upstream ended. `usage` is what metering bills. Completed streams end with
        response.completed or response.incomplete; a stream cut short ends with response.failed."""
        if self.finished:
            return []
        self.finished = True
        events = self.start()
        if not self.complete:
            return events + self._failed("The provider's stream ended before the response was complete.", usage)
        events += self._close_open()
        if not self._output:  # nothing generated: still one (empty) message, as OpenAI sends
            events += self._text_delta_empty()
        status, reason = _status(self.finish_reason)
        response = self._response(status, output=self._output,
                                  usage=responses_usage(usage, self.reasoning_tokens), incomplete_reason=reason)
        events.append(self._event("response.completed" if status == "completed" else "response.incomplete",
                                  response=response))
        return events

    def _text_delta_empty(self) -> list[tuple[str, dict]]:
        item = {"id": self.message_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        self._text_item = self._open = item
        self._output.append(item)
        events = [self._event("response.output_item.added", output_index=0, item={**item, "content": []}),
                  self._event("response.content_part.added", item_id=item["id"], output_index=0,
                              content_index=0, part=text_part(""))]
        return events + self._close_open()

    def fail(self, message: str, usage: dict[str, int] | None) -> list[tuple[str, dict]]:
        """The upstream failed mid-stream: an `error` event, then response.failed."""
        if self.finished:
            return []
        self.finished = True
        return self.start() + self._failed(message, usage)

    def _failed(self, message: str, usage: dict[str, int] | None) -> list[tuple[str, dict]]:
        # The `error` event as OpenAI sends it (nested `error`, the AI SDK's schema) with the
        # SDK's ResponseErrorEvent fields beside it; the Python SDK raises APIError on it.
        error = {"type": "server_error", "code": "server_error", "message": message, "param": None}
        for item in self._output:
            if item["status"] == "in_progress":
                item["status"] = "incomplete"
                if item["type"] == "message":
                    item["content"] = [text_part("".join(self._text))]
                else:
                    chat_index = next(k for k, v in self._calls.items() if v is item)
                    item["arguments"] = "".join(self._calls_args[chat_index])
        response = self._response("failed", output=self._output,
                                  usage=responses_usage(usage) if usage else None,
                                  error={"code": "server_error", "message": message})
        return [
            self._event("error", **{"code": error["code"], "message": message, "param": None, "error": error}),
            self._event("response.failed", response=response),
        ]


# --- framing -----------------------------------------------------------------------------------


class ResponsesFramer(Framer):
    """Chat chunks in (from the subclass), Responses events out, and what metering needs.

    The final `response.completed` carries usage, which OpenAI-dialect providers send after the
    finish chunk: the final events go out at `[DONE]` (Anthropic: `message_stop`), or when the
    upstream closes. When the provider never said, the event carries the same estimate the proxy
    bills (`usage` stays None, so the ledger row is flagged as estimated).
    """

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


class ResponsesFromChat(ResponsesFramer):
    """Responses client, OpenAI-dialect upstream (asked for `stream_options.include_usage`)."""

    def feed(self, event: SSEEvent) -> bytes:
        if event.data.startswith("[DONE]"):
            return self._finish()
        chunk = loads_object(event.data)
        if chunk is None:
            return b""
        if chunk.get("usage"):
            self.usage = usage_from_openai(chunk["usage"])
        return self._chunks([chunk])


# --- the operation's estimates and the translation ---------------------------------------------


def responses_input_tokens(body: dict) -> int:
    """Estimated input tokens (Operation.input_tokens): those of the chat body it becomes."""
    return tokens_for_request(chat_request_of(body).body)


def responses_input_tokens_bound(body: dict, **kwargs: int) -> int:
    """A true upper bound of the input tokens (Operation.input_tokens_bound), on the chat body."""
    return tokens_upper_bound(chat_request_of(body).body, **kwargs)


def responses_max_output(body: dict, model) -> tuple[int, int]:
    """(max output, choices) as the upstream is asked (Operation.max_output): absent, the Anthropic
    translation sends the model's max output and an OpenAI upstream may generate up to it."""
    return body.get("max_output_tokens") or model.max_output_tokens, 1


def responses_body(call: "ProxyCall", chat: dict) -> dict:
    """The Response for a chat completion answering `call`. `usage` in it is what is billed: the
    provider's (already on the call, ProviderAdapter.usage), or the proxy's own estimate, set on the
    call here (and flagged) because the body must carry it."""
    if call.usage is None:
        call.tokens_estimated = True
        call.usage = {
            "prompt_tokens": call.operation.input_tokens(call.body),
            "completion_tokens": tokens_for_text(orjson.dumps(chat.get("choices") or "").decode()),
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
        }
    return chat_to_responses_response(chat, body=call.body, model=call.requested_model, request_id=call.request_id,
                                      created_at=int(call.started_at.timestamp()), usage=call.usage)


def _request(call: "ProxyCall", route: "RouteEntry") -> dict:
    out = dict(chat_request_of(call.body).body, model=route.upstream_model)
    if out.get("stream"):
        out["stream_options"] = {"include_usage": True}  # metering and response.completed need it
    return out


def _response(call: "ProxyCall", data: dict) -> dict:
    return responses_body(call, data)


def _framer(call: "ProxyCall") -> Framer:
    return ResponsesFromChat(body=call.body, model=call.requested_model, request_id=call.request_id,
                             input_tokens_estimate=call.operation.input_tokens(call.body))


RESPONSES_TO_CHAT = Translation(request=_request, response=_response, framer=_framer, text=responses_output_text)
