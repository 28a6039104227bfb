"""Validation of incoming Anthropic Messages requests (`POST /v1/messages`, `/count_tokens`).

We validate up front, the way Anthropic does, so a client gets the same actionable 400 whichever
provider serves the model: an OpenAI-compatible upstream would otherwise fail later with an error
that names fields the client never sent. Field rules follow `anthropic-sdk-python`
`types/message_create_params.py` and WIRE.md §2.

Decisions worth knowing:
- `role: "system"` inside `messages` (listed by newer SDK types) is accepted with text-only content;
  the translator keeps it as an OpenAI `system` message at the same position, natively it passes
  through unchanged.
- Top-level fields we do not know are not rejected here: a native Anthropic upstream judges them
  itself, and `translate_to_openai` refuses them as unsupported (so typos still get a 400).
- Server tools (a `tools[]` entry whose `type` is neither null nor "custom", e.g.
  "web_search_20250305") and server-tool blocks in assistant history are accepted loosely for
  native pass-through; translation refuses them.
- `max_tokens` must be >= 1 (the task's rule; Anthropic itself now also allows 0 to pre-warm the
  prompt cache, which no OpenAI-compatible upstream can express).
"""

from __future__ import annotations

import re
from typing import Any

from core.errors import ErrorCode, GatewayError

ROLES = ("user", "assistant", "system")
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
TOOL_CHOICE_TYPES = ("auto", "any", "none", "tool")
THINKING_TYPES = ("enabled", "disabled", "adaptive")
SERVICE_TIERS = ("auto", "standard_only")

# Blocks a native Anthropic response can contain when server tools ran; clients send them back
# as history. Only their `type` is checked: Anthropic validates the rest on pass-through.
SERVER_BLOCK_TYPES = frozenset(
    {
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "container_upload",
    }
)
USER_BLOCK_TYPES = frozenset({"text", "image", "tool_result", "document", "search_result"})
ASSISTANT_BLOCK_TYPES = frozenset({"text", "tool_use", "thinking", "redacted_thinking"}) | SERVER_BLOCK_TYPES
SYSTEM_BLOCK_TYPES = frozenset({"text"})
_BLOCK_TYPES_BY_ROLE = {"user": USER_BLOCK_TYPES, "assistant": ASSISTANT_BLOCK_TYPES, "system": SYSTEM_BLOCK_TYPES}
DOCUMENT_SOURCE_TYPES = ("base64", "text", "url", "content", "file")


def messages_request_validate(body: object) -> dict:
    """Validate a `/v1/messages` body; return it unchanged or raise GatewayError(400)."""
    return _request_validate(body, require_max_tokens=True)


def messages_count_tokens_validate(body: object) -> dict:
    """Validate a `/v1/messages/count_tokens` body: as above, but `max_tokens` is not required."""
    return _request_validate(body, require_max_tokens=False)


def _invalid(param: str | None, reason: str) -> GatewayError:
    message = f"{param}: {reason}" if param else reason
    return GatewayError(400, message, param=param, code=ErrorCode.INVALID_REQUEST_ERROR)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_name(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if _is_number(value) else type(value).__name__
    )


def _require_str(obj: dict, key: str, path: str, *, non_empty: bool = False) -> str:
    if key not in obj:
        raise _invalid(f"{path}.{key}", "Field required")
    value = obj[key]
    if not isinstance(value, str):
        raise _invalid(f"{path}.{key}", f"Input should be a valid string, got {_type_name(value)}")
    if non_empty and not value:
        raise _invalid(f"{path}.{key}", "String should not be empty")
    return value


def _optional(obj: dict, key: str) -> Any:
    """Clients built on other SDKs send explicit nulls for unset fields; treat them as absent."""
    return obj.get(key)


def _request_validate(body: object, *, require_max_tokens: bool) -> dict:
    if not isinstance(body, dict):
        raise _invalid(None, f"The request body must be a JSON object, got {_type_name(body)}")

    model = body.get("model")
    if model is None:
        raise _invalid("model", "Field required")
    if not isinstance(model, str) or not model.strip():
        raise _invalid("model", "Input should be a non-empty string naming a model")

    if require_max_tokens or body.get("max_tokens") is not None:
        if "max_tokens" not in body or body["max_tokens"] is None:
            raise _invalid("max_tokens", "Field required")
        max_tokens = body["max_tokens"]
        if not _is_int(max_tokens):
            raise _invalid("max_tokens", f"Input should be a valid integer, got {_type_name(max_tokens)}")
        if max_tokens < 1:
            raise _invalid("max_tokens", "Input should be greater than or equal to 1")

    _messages_validate(body.get("messages"))

    if _optional(body, "system") is not None:
        _system_validate(body["system"])
    _number_in_range(body, "temperature", 0.0, 1.0)
    _number_in_range(body, "top_p", 0.0, 1.0)
    top_k = _optional(body, "top_k")
    if top_k is not None and (not _is_int(top_k) or top_k < 1):
        raise _invalid("top_k", "Input should be a positive integer")
    _stop_sequences_validate(_optional(body, "stop_sequences"))
    stream = _optional(body, "stream")
    if stream is not None and not isinstance(stream, bool):
        raise _invalid("stream", f"Input should be a valid boolean, got {_type_name(stream)}")
    _metadata_validate(_optional(body, "metadata"))
    tool_names = _tools_validate(_optional(body, "tools"))
    _tool_choice_validate(_optional(body, "tool_choice"), tool_names)
    _thinking_validate(_optional(body, "thinking"))
    service_tier = _optional(body, "service_tier")
    if service_tier is not None and service_tier not in SERVICE_TIERS:
        raise _invalid("service_tier", "Input should be 'auto' or 'standard_only'")
    return body


def _number_in_range(body: dict, key: str, low: float, high: float) -> None:
    value = _optional(body, key)
    if value is None:
        return
    if not _is_number(value):
        raise _invalid(key, f"Input should be a valid number, got {_type_name(value)}")
    if not low <= value <= high:
        raise _invalid(key, f"Input should be between {low:g} and {high:g}, got {value}")


def _stop_sequences_validate(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise _invalid("stop_sequences", f"Input should be a valid array of strings, got {_type_name(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _invalid(f"stop_sequences[{i}]", f"Input should be a valid string, got {_type_name(item)}")


def _metadata_validate(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise _invalid("metadata", f"Input should be a valid object, got {_type_name(value)}")
    for key in value:
        if key != "user_id":
            raise _invalid(f"metadata.{key}", "Extra inputs are not permitted (only `user_id` is)")
    user_id = value.get("user_id")
    if user_id is not None and not isinstance(user_id, str):
        raise _invalid("metadata.user_id", f"Input should be a valid string, got {_type_name(user_id)}")


def _system_validate(value: object) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, list):
        raise _invalid("system", f"Input should be a string or an array of text blocks, got {_type_name(value)}")
    for i, block in enumerate(value):
        path = f"system[{i}]"
        if not isinstance(block, dict):
            raise _invalid(path, f"Input should be a text block object, got {_type_name(block)}")
        if block.get("type") != "text":
            raise _invalid(f"{path}.type", "System blocks must have type 'text'")
        _require_str(block, "text", path)


def _messages_validate(messages: object) -> None:
    if messages is None:
        raise _invalid("messages", "Field required")
    if not isinstance(messages, list):
        raise _invalid("messages", f"Input should be a valid array, got {_type_name(messages)}")
    if not messages:
        raise _invalid("messages", "At least one message is required")
    last = len(messages) - 1
    for i, message in enumerate(messages):
        path = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _invalid(path, f"Each message must be an object with `role` and `content`, got {_type_name(message)}")
        role = message.get("role")
        if role not in ROLES:
            raise _invalid(f"{path}.role", f"Input should be 'user' or 'assistant' (or 'system'), got {role!r}")
        if "content" not in message:
            raise _invalid(f"{path}.content", "Field required")
        content = message["content"]
        final_assistant = i == last and role == "assistant"
        if isinstance(content, str):
            if not content and not final_assistant:
                raise _invalid(
                    path, "All messages must have non-empty content except for the optional final assistant message"
                )
            text = content
        elif isinstance(content, list):
            if not content and not final_assistant:
                raise _invalid(
                    path, "All messages must have non-empty content except for the optional final assistant message"
                )
            for j, block in enumerate(content):
                _block_validate(block, role, f"{path}.content[{j}]")
            text = content[-1].get("text", "") if content and content[-1].get("type") == "text" else ""
        else:
            raise _invalid(
                f"{path}.content", f"Input should be a string or an array of content blocks, got {_type_name(content)}"
            )
        if final_assistant and text and text != text.rstrip():
            # Anthropic refuses this too: a prefill ending in whitespace derails tokenization.
            raise _invalid(f"{path}.content", "Final assistant content cannot end with trailing whitespace")
    _tool_pairing_validate(messages)


def _block_validate(block: object, role: str, path: str) -> None:
    if not isinstance(block, dict):
        raise _invalid(path, f"Each content block must be an object with a `type`, got {_type_name(block)}")
    block_type = block.get("type")
    allowed = _BLOCK_TYPES_BY_ROLE[role]
    if not isinstance(block_type, str):  # before the set lookup: a list or object is unhashable
        raise _invalid(f"{path}.type", "Field required: each content block needs a string `type`")
    if block_type not in allowed:
        raise _invalid(
            f"{path}.type",
            f"Block type {block_type!r} is not allowed in {role} messages; allowed: {', '.join(sorted(allowed))}",
        )
    if block_type == "text":
        text = _require_str(block, "text", path)
        if not text:
            raise _invalid(f"{path}.text", "Text content blocks must be non-empty")
    elif block_type == "image":
        _image_validate(block, path)
    elif block_type == "document":
        source = block.get("source")
        if not isinstance(source, dict):
            raise _invalid(f"{path}.source", "Field required: a document needs a `source` object")
        if source.get("type") not in DOCUMENT_SOURCE_TYPES:
            raise _invalid(f"{path}.source.type", f"Input should be one of {', '.join(DOCUMENT_SOURCE_TYPES)}")
    elif block_type == "tool_use":
        _require_str(block, "id", path, non_empty=True)
        _require_str(block, "name", path, non_empty=True)
        if not isinstance(block.get("input"), dict):
            raise _invalid(f"{path}.input", "Input should be a JSON object with the tool's arguments")
    elif block_type == "tool_result":
        _tool_result_validate(block, path)
    elif block_type == "thinking":
        _require_str(block, "thinking", path)
        _require_str(block, "signature", path)
    elif block_type == "redacted_thinking":
        _require_str(block, "data", path)


def _image_validate(block: dict, path: str) -> None:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _invalid(f"{path}.source", "Field required: an image needs a `source` object")
    source_type = source.get("type")
    if source_type == "base64":
        media_type = source.get("media_type")
        if media_type not in IMAGE_MEDIA_TYPES:
            raise _invalid(
                f"{path}.source.media_type",
                f"Input should be one of {', '.join(IMAGE_MEDIA_TYPES)}, got {media_type!r}",
            )
        _require_str(source, "data", f"{path}.source", non_empty=True)
    elif source_type == "url":
        _require_str(source, "url", f"{path}.source", non_empty=True)
    elif source_type == "file":
        _require_str(source, "file_id", f"{path}.source", non_empty=True)
    else:
        raise _invalid(f"{path}.source.type", f"Input should be 'base64', 'url' or 'file', got {source_type!r}")


def _tool_result_validate(block: dict, path: str) -> None:
    _require_str(block, "tool_use_id", path, non_empty=True)
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise _invalid(f"{path}.is_error", f"Input should be a valid boolean, got {_type_name(is_error)}")
    content = block.get("content")
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _invalid(f"{path}.content", f"Input should be a string or an array of blocks, got {_type_name(content)}")
    for k, item in enumerate(content):
        item_path = f"{path}.content[{k}]"
        if not isinstance(item, dict):
            raise _invalid(item_path, f"Each block must be an object, got {_type_name(item)}")
        item_type = item.get("type")
        if item_type == "text":
            _require_str(item, "text", item_path)
        elif item_type == "image":
            _image_validate(item, item_path)
        elif item_type not in ("document", "search_result"):
            raise _invalid(f"{item_path}.type", f"Tool result blocks must be 'text' or 'image', got {item_type!r}")


def _tool_pairing_validate(messages: list) -> None:
    """Every tool_result must answer a tool_use of the previous assistant turn, and every tool_use
    must be answered by the next user turn (Anthropic enforces both; OpenAI upstreams too, with an
    error naming `tool_call_id`s the client never sent). Consecutive same-role messages are one turn.
    """
    turns: list[tuple[str, list[tuple[int, int, dict]]]] = []
    for i, message in enumerate(messages):
        role = message["role"]
        blocks = message["content"] if isinstance(message["content"], list) else []
        located = [(i, j, block) for j, block in enumerate(blocks)]
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(located)
        else:
            turns.append((role, located))
    for t, (role, blocks) in enumerate(turns):
        if role != "user":
            continue
        previous = turns[t - 1] if t > 0 else None
        offered = (
            {b["id"] for _, _, b in previous[1] if b["type"] == "tool_use"}
            if previous and previous[0] == "assistant"
            else set()
        )
        answered = set()
        for i, j, block in blocks:
            if block["type"] != "tool_result":
                continue
            if block["tool_use_id"] not in offered:
                raise _invalid(
                    f"messages[{i}].content[{j}].tool_use_id",
                    f"Unexpected `tool_use_id` {block['tool_use_id']!r} in a `tool_result` block: each "
                    "`tool_result` must answer a `tool_use` block of the previous assistant message",
                )
            answered.add(block["tool_use_id"])
        if previous and previous[0] == "assistant":
            for i, j, block in previous[1]:
                if block["type"] == "tool_use" and block["id"] not in answered:
                    raise _invalid(
                        f"messages[{i}].content[{j}]",
                        f"`tool_use` id {block['id']!r} has no `tool_result` block in the next user message; "
                        "each `tool_use` must be answered immediately after",
                    )


def _tools_validate(tools: object) -> set[str]:
    if tools is None:
        return set()
    if not isinstance(tools, list):
        raise _invalid("tools", f"Input should be a valid array, got {_type_name(tools)}")
    names: set[str] = set()
    for i, tool in enumerate(tools):
        path = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _invalid(path, f"Each tool must be an object, got {_type_name(tool)}")
        tool_type = tool.get("type")
        if tool_type not in (None, "custom"):
            if not isinstance(tool_type, str):
                raise _invalid(f"{path}.type", "Input should be a string")
            name = _require_str(tool, "name", path, non_empty=True)
        else:
            name = _require_str(tool, "name", path)
            if not TOOL_NAME_RE.match(name):
                raise _invalid(f"{path}.name", "Tool names must match ^[a-zA-Z0-9_-]{1,128}$")
            description = tool.get("description")
            if description is not None and not isinstance(description, str):
                raise _invalid(f"{path}.description", f"Input should be a valid string, got {_type_name(description)}")
            schema = tool.get("input_schema")
            if not isinstance(schema, dict):
                raise _invalid(f"{path}.input_schema", "Field required: a JSON Schema object")
            if schema.get("type") != "object":
                raise _invalid(f"{path}.input_schema.type", "Input should be 'object'")
        if name in names:
            raise _invalid(f"{path}.name", f"Tool names must be unique; {name!r} appears twice")
        names.add(name)
    return names


def _tool_choice_validate(choice: object, tool_names: set[str]) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict):
        raise _invalid("tool_choice", f"Input should be an object like {{'type': 'auto'}}, got {_type_name(choice)}")
    choice_type = choice.get("type")
    if choice_type not in TOOL_CHOICE_TYPES:
        raise _invalid("tool_choice.type", f"Input should be 'auto', 'any', 'tool' or 'none', got {choice_type!r}")
    if "disable_parallel_tool_use" in choice:
        if choice_type == "none":
            raise _invalid("tool_choice.disable_parallel_tool_use", "Not permitted when tool_choice.type is 'none'")
        if not isinstance(choice["disable_parallel_tool_use"], bool):
            raise _invalid("tool_choice.disable_parallel_tool_use", "Input should be a valid boolean")
    if choice_type == "tool":
        name = _require_str(choice, "name", "tool_choice", non_empty=True)
        if name not in tool_names:
            raise _invalid("tool_choice.name", f"Tool {name!r} is not among the request's `tools`")


def _thinking_validate(thinking: object) -> None:
    if thinking is None:
        return
    if not isinstance(thinking, dict):
        raise _invalid("thinking", f"Input should be a valid object, got {_type_name(thinking)}")
    if thinking.get("type") not in THINKING_TYPES:
        raise _invalid("thinking.type", f"Input should be one of {', '.join(THINKING_TYPES)}")
    if thinking["type"] == "enabled":
        budget = thinking.get("budget_tokens")
        if not _is_int(budget) or budget < 1024:
            raise _invalid("thinking.budget_tokens", "Input should be an integer greater than or equal to 1024")
