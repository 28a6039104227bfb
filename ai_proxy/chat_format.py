"""Validation of OpenAI Chat Completions request bodies (WIRE.md §1), before anything goes upstream.

The checks and the wording of the messages follow what api.openai.com answers for the same body
(`Invalid 'temperature': decimal above maximum value...`), so a client sees the same 400 whichever
provider the model routes to. Every error is a `GatewayError(400, ...)` whose `param` is the JSON
path of the offending value (`messages[2].content[0].type`).

Deliberately *not* checked here: top-level keys we do not know. OpenAI rejects them, but they are
the only way clients pass provider extensions (`top_k`), so the upstream-specific translation
decides (see `translate_to_anthropic`). Optional parameters may be `null`, as OpenAI allows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from core.errors import ErrorCode, GatewayError

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_PART_TYPES = {
    "system": ("text",),
    "developer": ("text",),
    "tool": ("text",),
    "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"),
}
TOOL_NAME_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # fullmatch: `$` would allow a trailing newline
SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
MAX_STOP_SEQUENCES = 4


def chat_request_validate(body: object) -> dict:
    """Raise GatewayError(400) for anything OpenAI would reject; return `body` unchanged."""
    if not isinstance(body, dict):
        raise _error(None, f"Invalid type for request body: expected an object, but got {_kind(body)} instead.",
                     ErrorCode.INVALID_TYPE)
    model = body.get("model")
    if model is None or model == "":
        # OpenAI's own wording, param null: the SDKs show it verbatim.
        raise _error(None, "you must provide a model parameter", None)
    _expect_str(body, "model", "model")
    _validate_messages(body.get("messages", _MISSING))
    _validate_sampling(body)
    _validate_stream(body)
    _validate_tools(body)
    _validate_response_format(body.get("response_format"))
    return body


def chat_request_max_output(body: dict) -> int | None:
    """The output cap the client asked for: `max_completion_tokens`, else `max_tokens`, else None."""
    value = body.get("max_completion_tokens")
    if value is None:
        value = body.get("max_tokens")
    return value


def chat_stream_include_usage(body: dict) -> bool:
    """True when a streaming client asked for the final usage chunk."""
    options = body.get("stream_options")
    return bool(body.get("stream") is True and isinstance(options, dict) and options.get("include_usage") is True)


# --- helpers ---------------------------------------------------------------------------------

_MISSING = object()


def _error(param: str | None, message: str, code: ErrorCode | None = ErrorCode.INVALID_VALUE) -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _invalid_type(param: str, expected: str, value: object) -> GatewayError:
    return _error(param, f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.",
                  "invalid_type")


def _missing(param: str) -> GatewayError:
    return _error(param, f"Missing required parameter: '{param}'.", ErrorCode.MISSING_REQUIRED_PARAMETER)


def _bad_choice(param: str, value: object, allowed: tuple[str, ...]) -> GatewayError:
    supported = ", ".join(f"'{a}'" for a in allowed)
    return _error(param, f"Invalid value: '{value}'. Supported values are: {supported}.")


def _is_int(value: object) -> bool:
    # bool is an int subclass in Python; JSON `true` is not a number.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _expect_str(obj: dict, key: str, param: str, *, required: bool = False) -> None:
    value = obj.get(key, _MISSING)
    if value is _MISSING or (value is None and not required):
        if required:
            raise _missing(param)
        return
    if not isinstance(value, str):
        raise _invalid_type(param, "a string", value)


def _expect_bool(obj: dict, key: str, param: str) -> None:
    value = obj.get(key)
    if value is not None and not isinstance(value, bool):
        raise _invalid_type(param, "a boolean", value)


def _expect_object(value: object, param: str) -> dict:
    if not isinstance(value, dict):
        raise _invalid_type(param, "an object", value)
    return value


def _expect_list(value: object, param: str, *, non_empty: bool = True) -> list:
    if not isinstance(value, list):
        raise _invalid_type(param, "an array", value)
    if non_empty and not value:
        raise _error(param, f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
                            "but got an empty array instead.", "empty_array")
    return value


def _expect_parts(value: object, param: str, each: Callable[[object, str], None], *, non_empty: bool = True) -> None:
    """Content as both wire formats carry it: a string, or a list of parts, each checked by
    `each(part, its param)`."""
    if isinstance(value, str):
        return
    if not isinstance(value, list):
        raise _invalid_type(param, "one of a string or array of objects", value)
    for j, part in enumerate(_expect_list(value, param, non_empty=non_empty)):
        each(part, f"{param}[{j}]")


def _check_range(body: dict, key: str, low: float | None, high: float | None, *, integer: bool) -> None:
    value = body.get(key)
    if value is None:
        return
    if integer and not _is_int(value):
        raise _invalid_type(key, "an integer", value)
    if not integer and not _is_number(value):
        raise _invalid_type(key, "a number", value)
    word = "integer" if integer else "decimal"
    if low is not None and value < low:
        raise _error(key, f"Invalid '{key}': {word} below minimum value. Expected a value >= {low:g}, "
                          f"but got {value} instead.", f"{word}_below_min_value")
    if high is not None and value > high:
        raise _error(key, f"Invalid '{key}': {word} above maximum value. Expected a value <= {high:g}, "
                          f"but got {value} instead.", f"{word}_above_max_value")


# --- messages --------------------------------------------------------------------------------


def _validate_messages(messages: object) -> None:
    if messages is _MISSING or messages is None:
        raise _missing("messages")
    for i, message in enumerate(_expect_list(messages, "messages")):
        _validate_message(message, f"messages[{i}]")


def _validate_message(message: object, path: str) -> None:
    message = _expect_object(message, path)
    role = message.get("role", _MISSING)
    if role is _MISSING:
        raise _missing(f"{path}.role")
    if role not in ROLES:
        raise _bad_choice(f"{path}.role", role, ROLES)
    _expect_str(message, "name", f"{path}.name")
    content = message.get("content", _MISSING)

    if role == "function":
        _expect_str(message, "name", f"{path}.name", required=True)
        if content is not _MISSING and content is not None and not isinstance(content, str):
            raise _invalid_type(f"{path}.content", "a string", content)
        return

    if role == "assistant":
        has_calls = bool(message.get("tool_calls") or message.get("function_call") or message.get("audio"))
        if message.get("tool_calls") is not None:
            _validate_tool_calls(message["tool_calls"], f"{path}.tool_calls")
        _expect_str(message, "refusal", f"{path}.refusal")
        if content is _MISSING or content is None:
            if not has_calls and not message.get("refusal"):
                raise _missing(f"{path}.content")
            return
    elif content is _MISSING or content is None:
        raise _missing(f"{path}.content")

    if role == "tool":
        _expect_str(message, "tool_call_id", f"{path}.tool_call_id", required=True)

    _expect_parts(content, f"{path}.content", lambda part, where: _validate_part(part, where, _PART_TYPES[role]))


def _validate_part(part: object, path: str, allowed: tuple[str, ...]) -> None:
    part = _expect_object(part, path)
    kind = part.get("type", _MISSING)
    if kind is _MISSING:
        raise _missing(f"{path}.type")
    if kind not in allowed:
        raise _bad_choice(f"{path}.type", kind, allowed)
    if kind == "text":
        _expect_str(part, "text", f"{path}.text", required=True)
    elif kind == "refusal":
        _expect_str(part, "refusal", f"{path}.refusal", required=True)
    elif kind == "image_url":
        image = _expect_object(part.get("image_url"), f"{path}.image_url")
        _expect_str(image, "url", f"{path}.image_url.url", required=True)
        detail = image.get("detail")
        if detail is not None and detail not in ("auto", "low", "high"):
            raise _bad_choice(f"{path}.image_url.detail", detail, ("auto", "low", "high"))
    elif kind == "input_audio":
        audio = _expect_object(part.get("input_audio"), f"{path}.input_audio")
        _expect_str(audio, "data", f"{path}.input_audio.data", required=True)
        if audio.get("format") not in ("wav", "mp3"):
            raise _bad_choice(f"{path}.input_audio.format", audio.get("format"), ("wav", "mp3"))
    elif kind == "file":
        file = _expect_object(part.get("file"), f"{path}.file")
        for key in ("file_data", "file_id", "filename"):
            _expect_str(file, key, f"{path}.file.{key}")
        if not file.get("file_data") and not file.get("file_id"):
            raise _missing(f"{path}.file.file_data")


def _validate_tool_calls(calls: object, path: str) -> None:
    for k, call in enumerate(_expect_list(calls, path)):
        where = f"{path}[{k}]"
        call = _expect_object(call, where)
        _expect_str(call, "id", f"{where}.id", required=True)
        kind = call.get("type", _MISSING)
        if kind is _MISSING:
            raise _missing(f"{where}.type")
        if kind == "custom":
            custom = _expect_object(call.get("custom"), f"{where}.custom")
            _expect_str(custom, "name", f"{where}.custom.name", required=True)
            _expect_str(custom, "input", f"{where}.custom.input", required=True)
            continue
        if kind != "function":
            raise _bad_choice(f"{where}.type", kind, ("function", "custom"))
        function = _expect_object(call.get("function"), f"{where}.function")
        _expect_str(function, "name", f"{where}.function.name", required=True)
        _expect_str(function, "arguments", f"{where}.function.arguments", required=True)


# --- parameters ------------------------------------------------------------------------------


def _validate_sampling(body: dict) -> None:
    _check_range(body, "temperature", 0, 2, integer=False)
    _check_range(body, "top_p", 0, 1, integer=False)
    _check_range(body, "presence_penalty", -2, 2, integer=False)
    _check_range(body, "frequency_penalty", -2, 2, integer=False)
    _check_range(body, "n", 1, 128, integer=True)
    _check_range(body, "max_tokens", 1, None, integer=True)
    _check_range(body, "max_completion_tokens", 1, None, integer=True)
    _check_range(body, "top_logprobs", 0, 20, integer=True)
    _check_range(body, "seed", None, None, integer=True)
    for key in ("logprobs", "store", "parallel_tool_calls"):
        _expect_bool(body, key, key)
    _expect_str(body, "user", "user")
    _expect_str(body, "safety_identifier", "safety_identifier")
    _expect_str(body, "prompt_cache_key", "prompt_cache_key")

    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str):
        if not isinstance(stop, list):
            raise _invalid_type("stop", "one of a string or array of strings", stop)
        if len(stop) > MAX_STOP_SEQUENCES:
            raise _error("stop", f"Invalid 'stop': array too long. Expected an array with maximum length "
                                 f"{MAX_STOP_SEQUENCES}, but got an array with length {len(stop)} instead.",
                         "array_above_max_length")
        for i, item in enumerate(stop):
            if not isinstance(item, str):
                raise _invalid_type(f"stop[{i}]", "a string", item)

    logit_bias = body.get("logit_bias")
    if logit_bias is not None:
        for token, bias in _expect_object(logit_bias, "logit_bias").items():
            if not _is_number(bias) or not -100 <= bias <= 100:
                raise _error(f"logit_bias.{token}", f"Invalid 'logit_bias.{token}': expected a number "
                                                    "between -100 and 100.")

    metadata = body.get("metadata")
    if metadata is not None:
        for key, value in _expect_object(metadata, "metadata").items():
            if not isinstance(value, str):
                raise _invalid_type(f"metadata.{key}", "a string", value)

    for key, allowed in (("service_tier", SERVICE_TIERS), ("reasoning_effort", REASONING_EFFORTS)):
        value = body.get(key)
        if value is not None and value not in allowed:
            raise _bad_choice(key, value, allowed)
    modalities = body.get("modalities")
    if modalities is not None:
        for i, item in enumerate(_expect_list(modalities, "modalities", non_empty=False)):
            if item not in ("text", "audio"):
                raise _bad_choice(f"modalities[{i}]", item, ("text", "audio"))


def _validate_stream(body: dict) -> None:
    _expect_bool(body, "stream", "stream")
    options = body.get("stream_options")
    if options is None:
        return
    _expect_object(options, "stream_options")
    if body.get("stream") is not True:
        raise _error("stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled.")
    for key in ("include_usage", "include_obfuscation"):
        _expect_bool(options, key, f"stream_options.{key}")


def _validate_tools(body: dict) -> None:
    tools = body.get("tools")
    if tools is not None:
        for i, tool in enumerate(_expect_list(tools, "tools")):
            _validate_tool(tool, f"tools[{i}]")
    has_tools = bool(tools)
    tool_choice = body.get("tool_choice")
    if tool_choice is not None:
        if not has_tools:
            raise _error("tool_choice", "Invalid value for 'tool_choice': 'tool_choice' is only allowed when "
                                        "'tools' are specified.")
        _validate_tool_choice(tool_choice)
    if body.get("parallel_tool_calls") is not None and not has_tools:
        raise _error("parallel_tool_calls", "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is "
                                            "only allowed when 'tools' are specified.")


def _validate_name(obj: dict, path: str) -> None:
    _expect_str(obj, "name", path, required=True)
    if not TOOL_NAME_RE.fullmatch(obj["name"]):
        raise _error(path, f"Invalid '{path}': string does not match pattern. Expected a string that matches "
                           "the pattern '^[a-zA-Z0-9_-]{1,64}$'.")


def _validate_tool(tool: object, path: str) -> None:
    tool = _expect_object(tool, path)
    kind = tool.get("type", _MISSING)
    if kind is _MISSING:
        raise _missing(f"{path}.type")
    if kind == "custom":
        _validate_name(_expect_object(tool.get("custom"), f"{path}.custom"), f"{path}.custom.name")
        return
    if kind != "function":
        raise _bad_choice(f"{path}.type", kind, ("function", "custom"))
    function = _expect_object(tool.get("function"), f"{path}.function")
    _validate_name(function, f"{path}.function.name")
    _expect_str(function, "description", f"{path}.function.description")
    if function.get("parameters") is not None:
        _expect_object(function["parameters"], f"{path}.function.parameters")
    _expect_bool(function, "strict", f"{path}.function.strict")


def _validate_tool_choice(choice: object) -> None:
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise _bad_choice("tool_choice", choice, ("none", "auto", "required"))
        return
    choice = _expect_object(choice, "tool_choice")
    kind = choice.get("type", _MISSING)
    if kind is _MISSING:
        raise _missing("tool_choice.type")
    if kind == "function":
        function = _expect_object(choice.get("function"), "tool_choice.function")
        _expect_str(function, "name", "tool_choice.function.name", required=True)
    elif kind == "custom":
        custom = _expect_object(choice.get("custom"), "tool_choice.custom")
        _expect_str(custom, "name", "tool_choice.custom.name", required=True)
    elif kind == "allowed_tools":
        allowed = _expect_object(choice.get("allowed_tools"), "tool_choice.allowed_tools")
        if allowed.get("mode") not in ("auto", "required"):
            raise _bad_choice("tool_choice.allowed_tools.mode", allowed.get("mode"), ("auto", "required"))
        for i, tool in enumerate(_expect_list(allowed.get("tools"), "tool_choice.allowed_tools.tools")):
            _expect_object(tool, f"tool_choice.allowed_tools.tools[{i}]")
    else:
        raise _bad_choice("tool_choice.type", kind, ("function", "custom", "allowed_tools"))


def _validate_response_format(response_format: object) -> None:
    if response_format is None:
        return
    response_format = _expect_object(response_format, "response_format")
    kind = response_format.get("type", _MISSING)
    if kind is _MISSING:
        raise _missing("response_format.type")
    if kind not in ("text", "json_object", "json_schema"):
        raise _bad_choice("response_format.type", kind, ("text", "json_object", "json_schema"))
    if kind != "json_schema":
        return
    if "json_schema" not in response_format:
        raise _missing("response_format.json_schema")
    schema = _expect_object(response_format["json_schema"], "response_format.json_schema")
    _validate_name(schema, "response_format.json_schema.name")
    _expect_str(schema, "description", "response_format.json_schema.description")
    if schema.get("schema") is not None:
        _expect_object(schema["schema"], "response_format.json_schema.schema")
    _expect_bool(schema, "strict", "response_format.json_schema.strict")
