"""Validation of OpenAI Responses API request bodies (`POST /responses`), before anything goes upstream.

The fields and their types are the official SDK's (`openai/types/responses/response_create_params.py`
and the item and part types next to it); the wording of the messages and the `param` paths follow
chat_format (`input[2].content[0].image_url`), so a client sees OpenAI-style 400s.

What the gateway serves is the stateless core of the API, translated to chat completions upstream
(translate_responses): text and image input, function tools and their results, instructions,
max_output_tokens, sampling, text.format (JSON schema) and streaming. Refused with a 400 naming the
field, because the gateway cannot honour them and silently ignoring them would change the answer:
- `store: true` and `previous_response_id` (and `item_reference` items, `conversation`,
  `background`, `prompt`): responses are not kept by the gateway, so nothing can be retrieved or
  continued later; the client sends the whole conversation in `input`. An absent `store` is
  accepted (OpenAI would store; the response says `"store": false`).
- hosted tools (web_search, file_search, code_interpreter, computer use, MCP, ...) and custom
  (free-form) tools: they run on OpenAI's servers, not on every catalog model.
- `truncation: "auto"`, `top_logprobs` > 0 and `include: ["message.output_text.logprobs"]`.
- uploaded files by id (`file_id`) and files by URL: the gateway does not fetch or hold files.
Unknown top-level keys are refused the same way (unless null), as translate_to_anthropic does.
"""

from __future__ import annotations

from core.errors import ErrorCode, GatewayError

from .chat_format import (
    TOOL_NAME_RE,
    _bad_choice,
    _check_range,
    _error,
    _expect_bool,
    _expect_list,
    _expect_object,
    _expect_parts,
    _expect_str,
    _invalid_type,
    _kind,
    _missing,
    _MISSING,
)

MESSAGE_ROLES = ("user", "system", "developer", "assistant")
ITEM_TYPES = ("message", "function_call", "function_call_output")
_INPUT_PARTS = ("input_text", "input_image", "input_file")
_PART_TYPES = {
    "user": _INPUT_PARTS,
    "system": _INPUT_PARTS,
    "developer": _INPUT_PARTS,
    "assistant": ("output_text", "refusal"),
}
IMAGE_DETAILS = ("auto", "low", "high")
SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast", "ultrafast")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
REASONING_SUMMARIES = ("auto", "concise", "detailed")
VERBOSITIES = ("low", "medium", "high")
INCLUDABLE = (
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
)
# OpenAI's minimum for max_output_tokens.
MIN_OUTPUT_TOKENS = 16
MAX_METADATA_PAIRS = 16

# Every top-level key the gateway knows. Anything else (non-null) is a 400 naming it.
_KNOWN = {
    "model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "tools", "tool_choice",
    "parallel_tool_calls", "text", "stream", "stream_options", "metadata", "user", "store",
    "previous_response_id", "reasoning", "truncation", "include", "service_tier", "safety_identifier",
    "prompt_cache_key", "prompt_cache_retention", "background", "top_logprobs", "max_tool_calls",
    "conversation", "prompt",
}
_NOT_KEPT = (
    "the gateway does not keep responses (stored responses are not available), so send the whole "
    "conversation in `input`"
)


def responses_request_validate(body: object) -> dict:
    """Raise GatewayError(400) for anything OpenAI would reject or the gateway cannot honour;
    return `body` unchanged."""
    if not isinstance(body, dict):
        raise _error(None, f"Invalid type for request body: expected an object, but got {_kind(body)} instead.",
                     ErrorCode.INVALID_TYPE)
    model = body.get("model")
    if model is None or model == "":
        raise _error(None, "you must provide a model parameter", None)
    _expect_str(body, "model", "model")
    _validate_stateless(body)
    _validate_unknown(body)
    _validate_input(body.get("input", _MISSING))
    _expect_str(body, "instructions", "instructions")
    _validate_parameters(body)
    _validate_stream(body)
    _validate_tools(body)
    _validate_text(body.get("text"))
    return body


def responses_request_max_output(body: dict) -> int | None:
    """The output cap the client asked for, or None."""
    return body.get("max_output_tokens")


# --- what the gateway does not do --------------------------------------------------------------


def _unsupported(param: str, message: str) -> GatewayError:
    return GatewayError(400, message, param=param, code=ErrorCode.UNSUPPORTED_PARAMETER)


def _validate_stateless(body: dict) -> None:
    _expect_bool(body, "store", "store")
    if body.get("store") is True:
        raise _unsupported(
            "store",
            f"`store: true` is not supported: {_NOT_KEPT}. Send `store: false` or leave it out "
            "(Vercel AI SDK: `providerOptions: { openai: { store: false } }`).",
        )
    _expect_str(body, "previous_response_id", "previous_response_id")
    if body.get("previous_response_id") is not None:
        raise _unsupported("previous_response_id", f"`previous_response_id` is not supported: {_NOT_KEPT}.")
    if body.get("conversation") is not None:
        raise _unsupported("conversation", f"`conversation` is not supported: {_NOT_KEPT}.")
    if body.get("prompt") is not None:
        raise _unsupported("prompt", "Stored prompt templates (`prompt`) are not supported by the gateway: send "
                                     "the prompt's text in `instructions` and `input`.")
    _expect_bool(body, "background", "background")
    if body.get("background") is True:
        raise _unsupported("background", "`background: true` is not supported: the gateway does not keep "
                                         "responses to poll later. Use `stream: true` for long responses.")


def _validate_unknown(body: dict) -> None:
    for key, value in body.items():
        if key not in _KNOWN and value is not None:
            raise _unsupported(key, f"`{key}` is not supported by the gateway's Responses endpoint.")


# --- input -------------------------------------------------------------------------------------


def _validate_input(value: object) -> None:
    if value is _MISSING or value is None:
        raise _missing("input")
    if isinstance(value, str):
        return
    if not isinstance(value, list):
        raise _invalid_type("input", "one of a string or array of input items", value)
    for i, item in enumerate(_expect_list(value, "input")):
        _validate_item(item, f"input[{i}]")


def _validate_item(item: object, path: str) -> None:
    item = _expect_object(item, path)
    kind = item.get("type", _MISSING)
    if kind is _MISSING or kind is None:
        if "role" not in item:
            raise _missing(f"{path}.type")
        kind = "message"  # EasyInputMessage: `type` is optional
    if kind == "item_reference":
        raise _unsupported(
            f"{path}.type",
            f"`item_reference` items are not supported: {_NOT_KEPT}. Vercel AI SDK: set "
            "`providerOptions: { openai: { store: false } }` so earlier turns are sent in full.",
        )
    if kind not in ITEM_TYPES:
        if not isinstance(kind, str):
            raise _invalid_type(f"{path}.type", "a string", kind)
        raise _unsupported(
            f"{path}.type",
            f"Input items of type `{kind}` are not supported by the gateway; it accepts "
            f"{', '.join(ITEM_TYPES)} items.",
        )
    if kind == "message":
        _validate_message(item, path)
    elif kind == "function_call":
        for key in ("call_id", "name", "arguments"):
            _expect_str(item, key, f"{path}.{key}", required=True)
        _expect_str(item, "id", f"{path}.id")
    else:
        _expect_str(item, "call_id", f"{path}.call_id", required=True)
        _expect_str(item, "id", f"{path}.id")
        output = item.get("output", _MISSING)
        if output is _MISSING or output is None:
            raise _missing(f"{path}.output")
        _expect_parts(output, f"{path}.output", _validate_output_part, non_empty=False)


def _validate_output_part(part: object, path: str) -> None:
    _validate_part(part, path, _INPUT_PARTS)
    if part["type"] != "input_text":
        # Chat Completions tool messages, which carry it upstream, hold text only.
        raise _unsupported(f"{path}.type", f"`{part['type']}` parts in a function_call_output are not "
                                           "supported by the gateway: send the output as text.")


def _validate_message(item: dict, path: str) -> None:
    role = item.get("role", _MISSING)
    if role is _MISSING:
        raise _missing(f"{path}.role")
    if role not in MESSAGE_ROLES:
        raise _bad_choice(f"{path}.role", role, MESSAGE_ROLES)
    content = item.get("content", _MISSING)
    if content is _MISSING or content is None:
        raise _missing(f"{path}.content")
    _expect_parts(content, f"{path}.content", lambda part, where: _validate_part(part, where, _PART_TYPES[role]))


def _validate_part(part: object, path: str, allowed: tuple[str, ...]) -> None:
    part = _expect_object(part, path)
    kind = part.get("type", _MISSING)
    if kind is _MISSING:
        raise _missing(f"{path}.type")
    if kind not in allowed:
        raise _bad_choice(f"{path}.type", kind, allowed)
    if kind in ("input_text", "output_text"):
        _expect_str(part, "text", f"{path}.text", required=True)
    elif kind == "refusal":
        _expect_str(part, "refusal", f"{path}.refusal", required=True)
    elif kind == "input_image":
        _validate_image(part, path)
    elif kind == "input_file":
        _validate_file(part, path)


def _validate_image(part: dict, path: str) -> None:
    _expect_str(part, "file_id", f"{path}.file_id")
    if part.get("file_id") is not None:
        raise _unsupported(f"{path}.file_id", "Images by uploaded file id are not supported by the gateway: send "
                                              "`image_url` as a data: URL or an https URL.")
    _expect_str(part, "image_url", f"{path}.image_url", required=True)
    url = part["image_url"]
    if not url.startswith(("data:", "https://", "http://")):
        raise _error(f"{path}.image_url", f"Invalid '{path}.image_url': expected an http(s) URL or a "
                                          "data:<mime>;base64 URL.")
    detail = part.get("detail")
    if detail is not None and detail not in IMAGE_DETAILS:
        raise _bad_choice(f"{path}.detail", detail, IMAGE_DETAILS)


def _validate_file(part: dict, path: str) -> None:
    for key in ("file_data", "file_id", "file_url", "filename"):
        _expect_str(part, key, f"{path}.{key}")
    for key in ("file_id", "file_url"):
        if part.get(key) is not None:
            raise _unsupported(f"{path}.{key}", f"Files by `{key}` are not supported by the gateway: send the file "
                                                "inline as `file_data` (a data:application/pdf;base64 URL).")
    if not part.get("file_data"):
        raise _missing(f"{path}.file_data")


# --- parameters --------------------------------------------------------------------------------


def _validate_parameters(body: dict) -> None:
    _check_range(body, "temperature", 0, 2, integer=False)
    _check_range(body, "top_p", 0, 1, integer=False)
    _check_range(body, "max_output_tokens", MIN_OUTPUT_TOKENS, None, integer=True)
    _check_range(body, "max_tool_calls", 1, None, integer=True)
    _check_range(body, "top_logprobs", 0, 20, integer=True)
    if body.get("top_logprobs"):
        raise _unsupported("top_logprobs", "`top_logprobs` is not supported by the gateway: log probabilities "
                                           "are not returned for every catalog model.")
    for key in ("user", "safety_identifier", "prompt_cache_key"):
        _expect_str(body, key, key)
    for key, allowed in (("service_tier", SERVICE_TIERS), ("truncation", ("auto", "disabled")),
                         ("prompt_cache_retention", ("in_memory", "24h"))):
        value = body.get(key)
        if value is not None and value not in allowed:
            raise _bad_choice(key, value, allowed)
    if body.get("truncation") == "auto":
        raise _unsupported("truncation", "`truncation: \"auto\"` is not supported: the gateway does not drop input "
                                         "to fit the context window. Send `\"disabled\"` or leave it out.")

    metadata = body.get("metadata")
    if metadata is not None:
        metadata = _expect_object(metadata, "metadata")
        if len(metadata) > MAX_METADATA_PAIRS:
            raise _error("metadata", f"Invalid 'metadata': too many properties. Expected an object with at most "
                                     f"{MAX_METADATA_PAIRS} properties, but got {len(metadata)} instead.")
        for key, value in metadata.items():
            if not isinstance(value, str):
                raise _invalid_type(f"metadata.{key}", "a string", value)

    reasoning = body.get("reasoning")
    if reasoning is not None:
        reasoning = _expect_object(reasoning, "reasoning")
        for key, allowed in (("effort", REASONING_EFFORTS), ("summary", REASONING_SUMMARIES),
                             ("generate_summary", REASONING_SUMMARIES)):
            value = reasoning.get(key)
            if value is not None and value not in allowed:
                raise _bad_choice(f"reasoning.{key}", value, allowed)

    include = body.get("include")
    if include is not None:
        for i, value in enumerate(_expect_list(include, "include", non_empty=False)):
            if value not in INCLUDABLE:
                raise _bad_choice(f"include[{i}]", value, INCLUDABLE)
            if value == "message.output_text.logprobs":
                raise _unsupported(f"include[{i}]", "`message.output_text.logprobs` is not supported by the "
                                                    "gateway: log probabilities are not returned.")


def _validate_stream(body: dict) -> None:
    _expect_bool(body, "stream", "stream")
    options = body.get("stream_options")
    if options is None:
        return
    _expect_object(options, "stream_options")
    if body.get("stream") is not True:
        raise _error("stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled.")
    _expect_bool(options, "include_obfuscation", "stream_options.include_obfuscation")


# --- tools -------------------------------------------------------------------------------------


def _validate_name(obj: dict, key: str, path: str) -> None:
    _expect_str(obj, key, path, required=True)
    if not TOOL_NAME_RE.fullmatch(obj[key]):
        raise _error(path, f"Invalid '{path}': string does not match pattern. Expected a string that matches "
                           "the pattern '^[a-zA-Z0-9_-]{1,64}$'.")


def _validate_tools(body: dict) -> None:
    tools = body.get("tools")
    if tools is not None:
        for i, tool in enumerate(_expect_list(tools, "tools", non_empty=False)):
            _validate_tool(tool, f"tools[{i}]")
    _expect_bool(body, "parallel_tool_calls", "parallel_tool_calls")
    choice = body.get("tool_choice")
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise _bad_choice("tool_choice", choice, ("none", "auto", "required"))
        if choice == "required" and not tools:
            raise _error("tool_choice", "Invalid value for 'tool_choice': 'required' needs at least one tool in "
                                        "'tools'.")
        return
    choice = _expect_object(choice, "tool_choice")
    kind = choice.get("type", _MISSING)
    if kind is _MISSING:
        raise _missing("tool_choice.type")
    names = {tool.get("name") for tool in tools or [] if isinstance(tool, dict)}
    if kind == "function":
        _expect_str(choice, "name", "tool_choice.name", required=True)
        if choice["name"] not in names:
            raise _error("tool_choice.name", f"Invalid value for 'tool_choice.name': no function named "
                                             f"'{choice['name']}' in 'tools'.")
    elif kind == "allowed_tools":
        if choice.get("mode") not in ("auto", "required"):
            raise _bad_choice("tool_choice.mode", choice.get("mode"), ("auto", "required"))
        for i, tool in enumerate(_expect_list(choice.get("tools"), "tool_choice.tools")):
            where = f"tool_choice.tools[{i}]"
            tool = _expect_object(tool, where)
            if tool.get("type") != "function":
                raise _unsupported(f"{where}.type", "Only function tools can be listed in "
                                                    "`tool_choice.tools` through the gateway.")
            _expect_str(tool, "name", f"{where}.name", required=True)
    elif isinstance(kind, str):
        raise _unsupported("tool_choice.type", f"tool_choice `{kind}` is not supported by the gateway: only "
                                               "function tools are served.")
    else:
        raise _invalid_type("tool_choice.type", "a string", kind)


def _validate_tool(tool: object, path: str) -> None:
    tool = _expect_object(tool, path)
    kind = tool.get("type", _MISSING)
    if kind is _MISSING:
        raise _missing(f"{path}.type")
    if kind != "function":
        if not isinstance(kind, str):
            raise _invalid_type(f"{path}.type", "a string", kind)
        raise _unsupported(
            f"{path}.type",
            f"Tools of type `{kind}` are not supported by the gateway: only `function` tools are "
            "(hosted tools run on OpenAI's servers and are not available for every catalog model).",
        )
    _validate_name(tool, "name", f"{path}.name")
    _expect_str(tool, "description", f"{path}.description")
    if tool.get("parameters") is not None:
        _expect_object(tool["parameters"], f"{path}.parameters")
    _expect_bool(tool, "strict", f"{path}.strict")


def _validate_text(text: object) -> None:
    if text is None:
        return
    text = _expect_object(text, "text")
    verbosity = text.get("verbosity")
    if verbosity is not None and verbosity not in VERBOSITIES:
        raise _bad_choice("text.verbosity", verbosity, VERBOSITIES)
    fmt = text.get("format")
    if fmt is None:
        return
    fmt = _expect_object(fmt, "text.format")
    kind = fmt.get("type", _MISSING)
    if kind is _MISSING:
        raise _missing("text.format.type")
    if kind not in ("text", "json_object", "json_schema"):
        raise _bad_choice("text.format.type", kind, ("text", "json_object", "json_schema"))
    if kind != "json_schema":
        return
    _validate_name(fmt, "name", "text.format.name")
    if fmt.get("schema") is None:
        raise _missing("text.format.schema")
    _expect_object(fmt["schema"], "text.format.schema")
    _expect_str(fmt, "description", "text.format.description")
    _expect_bool(fmt, "strict", "text.format.strict")

