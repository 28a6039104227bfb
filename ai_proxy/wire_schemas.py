"""JSON Schemas (OpenAPI 3.1 components) of the wire formats the hot endpoints speak.

Written from /work/shared/WIRE.md and the official SDKs' types (openai `types/chat/`,
`types/responses/`, `types/create_embedding_response.py`; anthropic `types/message*.py`), so the
published schema says what those SDKs send and parse. Requests are described as the gateway
accepts them (unknown top-level fields pass through to the provider, so objects stay open);
responses list as required only what the gateway always sends, which is what the SDKs require.

`COMPONENTS` is merged into the document's `components.schemas` by ai_proxy.openapi; an operation
names its request, response and stream-event schemas by these keys.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """OpenAPI 3.1 spells "or null" as a JSON Schema union."""
    return {"anyOf": [schema, {"type": "null"}]}


_STR = {"type": "string"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_BOOL = {"type": "boolean"}
_OBJ = {"type": "object"}
_METADATA = {"type": "object", "additionalProperties": {"type": "string"},
             "description": "Up to 16 string pairs, passed to the provider."}
_MODEL = {"type": "string", "minLength": 1,
          "description": "Any model id or alias in the gateway's catalog (GET /api/ai/models), whatever its provider."}

# --- errors --------------------------------------------------------------------------------

ERRORS: dict[str, Schema] = {
    "OpenAIError": {
        "type": "object",
        "description": "The error body of OpenAI-format routes (and of the catalog, usage and health views). "
                       "`detail` repeats the message for clients that read it; `request_id` is also in the "
                       "`x-request-id` header.",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": _STR,
                    "type": {**_STR, "examples": ["invalid_request_error", "rate_limit_error", "insufficient_quota",
                                                  "server_error"]},
                    "param": nullable(_STR),
                    "code": nullable({**_STR, "examples": ["model_not_found", "invalid_api_key", "rate_limit_exceeded",
                                                           "budget_exceeded", "upstream_unavailable"]}),
                },
            },
            "detail": _STR,
            "request_id": _STR,
        },
    },
    "AnthropicError": {
        "type": "object",
        "description": "The error body of Anthropic-format routes (`/api/ai/anthropic/...`).",
        "required": ["type", "error"],
        "properties": {
            "type": {"const": "error"},
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {
                    "type": {**_STR, "examples": ["invalid_request_error", "authentication_error", "permission_error",
                                                  "not_found_error", "request_too_large", "rate_limit_error",
                                                  "billing_error", "api_error", "overloaded_error"]},
                    "message": _STR,
                },
            },
            "detail": _STR,
            "request_id": _STR,
        },
    },
}

# --- OpenAI Chat Completions (WIRE.md §1) ----------------------------------------------------

_TEXT_PART = {"type": "object", "required": ["type", "text"],
              "properties": {"type": {"const": "text"}, "text": _STR}}
_IMAGE_URL_PART = {
    "type": "object", "required": ["type", "image_url"],
    "properties": {
        "type": {"const": "image_url"},
        "image_url": {"type": "object", "required": ["url"], "properties": {
            "url": {**_STR, "description": "An http(s) URL or `data:<mime>;base64,...`."},
            "detail": {"enum": ["auto", "low", "high"]}}},
    },
}
_CHAT_CONTENT = {"anyOf": [_STR, {"type": "array", "items": {"anyOf": [
    _TEXT_PART, _IMAGE_URL_PART,
    {"type": "object", "required": ["type"], "properties": {"type": {"enum": ["input_audio", "file", "refusal"]}}},
]}}]}
_TOOL_CALL = {
    "type": "object", "required": ["id", "type", "function"],
    "properties": {
        "id": _STR, "type": {"const": "function"},
        "function": {"type": "object", "required": ["name", "arguments"],
                     "properties": {"name": _STR, "arguments": {**_STR, "description": "JSON text."}}},
    },
}

CHAT: dict[str, Schema] = {
    "ChatMessage": {
        "type": "object", "required": ["role"],
        "properties": {
            "role": {"enum": ["system", "developer", "user", "assistant", "tool", "function"]},
            "content": nullable(_CHAT_CONTENT),
            "name": _STR,
            "tool_calls": {"type": "array", "items": _TOOL_CALL},
            "tool_call_id": _STR,
        },
    },
    "ChatCompletionRequest": {
        "type": "object",
        "description": "OpenAI Chat Completions (`openai` SDK `chat.completions.create`). Fields not listed pass "
                       "through to OpenAI-compatible providers.",
        "required": ["model", "messages"],
        "properties": {
            "model": _MODEL,
            "messages": {"type": "array", "minItems": 1, "items": ref("ChatMessage")},
            "max_tokens": nullable({**_INT, "minimum": 1}),
            "max_completion_tokens": nullable({**_INT, "minimum": 1}),
            "temperature": nullable({**_NUM, "minimum": 0, "maximum": 2}),
            "top_p": nullable({**_NUM, "minimum": 0, "maximum": 1}),
            "n": nullable({**_INT, "minimum": 1, "maximum": 128}),
            "stop": nullable({"anyOf": [_STR, {"type": "array", "items": _STR, "maxItems": 4}]}),
            "seed": nullable(_INT),
            "user": _STR,
            "metadata": nullable(_METADATA),
            "parallel_tool_calls": nullable(_BOOL),
            "reasoning_effort": nullable({"enum": ["none", "minimal", "low", "medium", "high", "xhigh", "max"]}),
            "service_tier": nullable({"enum": ["auto", "default", "flex", "scale", "priority", "fast"],
                                      "description": "Refused with 400 unless the route allows it (priced)."}),
            "stream": nullable({**_BOOL, "description": "true: the answer is `text/event-stream` "
                                                        "(ChatCompletionChunk events, then `data: [DONE]`)."}),
            "stream_options": nullable({"type": "object", "properties": {
                "include_usage": _BOOL, "include_obfuscation": _BOOL}}),
            "tools": {"type": "array", "items": {
                "type": "object", "required": ["type", "function"],
                "properties": {"type": {"const": "function"}, "function": {
                    "type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"},
                                   "description": _STR, "parameters": _OBJ, "strict": nullable(_BOOL)}}}}},
            "tool_choice": nullable({"anyOf": [
                {"enum": ["none", "auto", "required"]},
                {"type": "object", "required": ["type"], "properties": {"type": _STR}},
            ]}),
            "response_format": nullable({"type": "object", "required": ["type"], "properties": {
                "type": {"enum": ["text", "json_object", "json_schema"]},
                "json_schema": {"type": "object", "required": ["name"], "properties": {
                    "name": _STR, "schema": _OBJ, "strict": nullable(_BOOL), "description": _STR}}}}),
        },
    },
    "ChatCompletionUsage": {
        "type": "object", "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
        "properties": {
            "prompt_tokens": _INT, "completion_tokens": _INT, "total_tokens": _INT,
            "prompt_tokens_details": nullable({"type": "object", "properties": {
                "cached_tokens": _INT, "audio_tokens": _INT, "cache_write_tokens": _INT}}),
            "completion_tokens_details": nullable({"type": "object", "properties": {
                "reasoning_tokens": _INT, "audio_tokens": _INT,
                "accepted_prediction_tokens": _INT, "rejected_prediction_tokens": _INT}}),
        },
    },
    "ChatCompletion": {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices"],
        "properties": {
            "id": _STR,
            "object": {"const": "chat.completion"},
            "created": _INT,
            "model": {**_STR, "description": "The model the client asked for."},
            "choices": {"type": "array", "items": {
                "type": "object", "required": ["index", "message", "finish_reason"],
                "properties": {
                    "index": _INT,
                    "message": {"type": "object", "required": ["role"], "properties": {
                        "role": {"const": "assistant"},
                        "content": nullable(_STR),
                        "refusal": nullable(_STR),
                        "tool_calls": nullable({"type": "array", "items": _TOOL_CALL}),
                    }},
                    "logprobs": nullable(_OBJ),
                    "finish_reason": {"enum": ["stop", "length", "tool_calls", "content_filter", "function_call"]},
                },
            }},
            "usage": nullable(ref("ChatCompletionUsage")),
            "system_fingerprint": nullable(_STR),
            "service_tier": nullable(_STR),
        },
    },
    "ChatCompletionChunk": {
        "type": "object",
        "description": "One `data:` event of a chat completion stream. The stream ends with `data: [DONE]`; a "
                       "failure mid-stream is sent as `data: {\"error\": {...}}`.",
        "required": ["id", "object", "created", "model", "choices"],
        "properties": {
            "id": _STR,
            "object": {"const": "chat.completion.chunk"},
            "created": _INT,
            "model": _STR,
            "choices": {"type": "array", "items": {
                "type": "object", "required": ["index", "delta"],
                "properties": {
                    "index": _INT,
                    "delta": {"type": "object", "properties": {
                        "role": {"const": "assistant"}, "content": nullable(_STR), "refusal": nullable(_STR),
                        "tool_calls": {"type": "array", "items": {
                            "type": "object", "required": ["index"], "properties": {
                                "index": _INT, "id": _STR, "type": {"const": "function"},
                                "function": {"type": "object", "properties": {"name": _STR, "arguments": _STR}}}}}}},
                    "logprobs": nullable(_OBJ),
                    "finish_reason": nullable({"enum": ["stop", "length", "tool_calls", "content_filter",
                                                        "function_call"]}),
                },
            }},
            "usage": nullable(ref("ChatCompletionUsage")),
        },
    },
}

# --- Anthropic Messages (WIRE.md §2) ----------------------------------------------------------

_ANT_TEXT = {"type": "object", "required": ["type", "text"], "properties": {
    "type": {"const": "text"}, "text": {**_STR, "minLength": 1}, "cache_control": nullable(_OBJ)}}
_ANT_IMAGE = {"type": "object", "required": ["type", "source"], "properties": {
    "type": {"const": "image"},
    "source": {"anyOf": [
        {"type": "object", "required": ["type", "media_type", "data"], "properties": {
            "type": {"const": "base64"}, "media_type": {"enum": ["image/jpeg", "image/png", "image/gif", "image/webp"]},
            "data": _STR}},
        {"type": "object", "required": ["type", "url"], "properties": {"type": {"const": "url"}, "url": _STR}},
    ]}}}
_ANT_BLOCK = {"anyOf": [
    _ANT_TEXT, _ANT_IMAGE,
    {"type": "object", "required": ["type", "id", "name", "input"], "properties": {
        "type": {"const": "tool_use"}, "id": _STR, "name": _STR, "input": _OBJ}},
    {"type": "object", "required": ["type", "tool_use_id"], "properties": {
        "type": {"const": "tool_result"}, "tool_use_id": _STR,
        "content": {"anyOf": [_STR, {"type": "array", "items": {"anyOf": [_ANT_TEXT, _ANT_IMAGE]}}]},
        "is_error": _BOOL}},
    {"type": "object", "required": ["type"], "properties": {"type": {"enum": ["document", "thinking",
                                                                              "redacted_thinking"]}}},
]}
_ANT_MESSAGES_FIELDS: Schema = {
    "model": _MODEL,
    "messages": {"type": "array", "minItems": 1, "items": {
        "type": "object", "required": ["role", "content"], "properties": {
            "role": {"enum": ["user", "assistant"]},
            "content": {"anyOf": [{**_STR, "minLength": 1}, {"type": "array", "minItems": 1, "items": _ANT_BLOCK}],
                        "description": "Non-empty, except a final assistant prefill. A tool_result answers a "
                                       "tool_use of the assistant turn just before it."}}}},
    "system": {"anyOf": [_STR, {"type": "array", "items": _ANT_TEXT}]},
    "tools": {"type": "array", "items": {"type": "object", "required": ["name", "input_schema"], "properties": {
        "name": _STR, "description": _STR, "input_schema": _OBJ}}},
    "tool_choice": {"type": "object", "required": ["type"], "properties": {
        "type": {"enum": ["auto", "any", "none", "tool"]}, "name": _STR, "disable_parallel_tool_use": _BOOL}},
    "thinking": _OBJ,
}

MESSAGES: dict[str, Schema] = {
    "MessagesRequest": {
        "type": "object",
        "description": "Anthropic Messages (`anthropic` SDK `messages.create`). Headers `anthropic-version` and "
                       "`anthropic-beta` are read as Anthropic does; betas that change the price are refused unless "
                       "the route allows them.",
        "required": ["model", "max_tokens", "messages"],
        "properties": {
            **_ANT_MESSAGES_FIELDS,
            "max_tokens": {**_INT, "minimum": 1},
            "stop_sequences": {"type": "array", "items": _STR},
            "temperature": {**_NUM, "minimum": 0, "maximum": 1},
            "top_p": {**_NUM, "minimum": 0, "maximum": 1},
            "top_k": {**_INT, "minimum": 1},
            "metadata": {"type": "object", "additionalProperties": False, "properties": {"user_id": nullable(_STR)}},
            "stream": {**_BOOL, "description": "true: the answer is `text/event-stream` of Anthropic events "
                                               "(`event:` name and `data:` with the same `type`)."},
            "service_tier": {"enum": ["auto", "standard_only"]},
        },
    },
    "MessagesUsage": {
        "type": "object", "required": ["input_tokens", "output_tokens"],
        "properties": {
            "input_tokens": _INT, "output_tokens": _INT,
            "cache_creation_input_tokens": nullable(_INT), "cache_read_input_tokens": nullable(_INT),
            "cache_creation": nullable(_OBJ), "server_tool_use": nullable(_OBJ), "service_tier": nullable(_STR),
        },
    },
    "Message": {
        "type": "object",
        "required": ["id", "type", "role", "model", "content", "stop_reason", "usage"],
        "properties": {
            "id": _STR,
            "type": {"const": "message"},
            "role": {"const": "assistant"},
            "model": _STR,
            "content": {"type": "array", "items": {"type": "object", "required": ["type"], "properties": {
                "type": {**_STR, "examples": ["text", "tool_use", "thinking"]}, "text": _STR,
                "id": _STR, "name": _STR, "input": _OBJ}}},
            "stop_reason": nullable({"enum": ["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn",
                                              "refusal", "model_context_window_exceeded"]}),
            "stop_sequence": nullable(_STR),
            "usage": ref("MessagesUsage"),
        },
    },
    "MessagesStreamEvent": {
        "type": "object",
        "description": "One event of a Messages stream: `event: <type>` then `data: <this object>`. Order: "
                       "message_start, then per block content_block_start / content_block_delta... / "
                       "content_block_stop, then message_delta (stop_reason, cumulative usage) and message_stop; "
                       "`ping` may appear anywhere, `error` ends a failed stream.",
        "required": ["type"],
        "properties": {
            "type": {"enum": ["message_start", "content_block_start", "content_block_delta", "content_block_stop",
                              "message_delta", "message_stop", "ping", "error"]},
            "message": ref("Message"),
            "index": _INT,
            "content_block": _OBJ,
            "delta": _OBJ,
            "usage": _OBJ,
            "error": {"type": "object", "properties": {"type": _STR, "message": _STR}},
        },
    },
    "CountTokensRequest": {
        "type": "object",
        "description": "Anthropic `messages.count_tokens`: a Messages body without `max_tokens`.",
        "required": ["model", "messages"],
        "properties": dict(_ANT_MESSAGES_FIELDS),
    },
    "CountTokensResponse": {
        "type": "object", "required": ["input_tokens"],
        "properties": {"input_tokens": {**_INT, "minimum": 0}},
    },
}

# --- OpenAI Responses (openai/types/responses/) ----------------------------------------------

_RESPONSES_INPUT_CONTENT = {"anyOf": [_STR, {"type": "array", "items": {
    "type": "object", "required": ["type"], "properties": {
        "type": {**_STR, "examples": ["input_text", "input_image", "output_text"]},
        "text": _STR, "image_url": nullable(_STR), "detail": {"enum": ["auto", "low", "high"]}}}}]}

RESPONSES: dict[str, Schema] = {
    "ResponsesRequest": {
        "type": "object",
        "description": "OpenAI Responses (`openai` SDK `responses.create`; the Vercel AI SDK's default "
                       "`openai(model)`), for every catalog model.",
        "required": ["model", "input"],
        "properties": {
            "model": _MODEL,
            "input": {"anyOf": [_STR, {"type": "array", "items": {"type": "object", "properties": {
                "type": {**_STR, "examples": ["message", "function_call", "function_call_output"]},
                "role": {"enum": ["user", "assistant", "system", "developer"]},
                "content": _RESPONSES_INPUT_CONTENT,
                "call_id": _STR, "name": _STR, "arguments": _STR, "output": {"anyOf": [_STR, {"type": "array"}]}}}}]},
            "instructions": nullable(_STR),
            "max_output_tokens": nullable({**_INT, "minimum": 16}),
            "temperature": nullable({**_NUM, "minimum": 0, "maximum": 2}),
            "top_p": nullable({**_NUM, "minimum": 0, "maximum": 1}),
            "tools": {"type": "array", "description": "Function tools only: hosted tools run on OpenAI's servers, "
                                                      "not on every catalog model, and are refused.",
                      "items": {"type": "object", "required": ["type", "name"], "properties": {
                          "type": {"const": "function"}, "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"},
                          "description": nullable(_STR), "parameters": nullable(_OBJ), "strict": nullable(_BOOL)}}},
            "tool_choice": {"anyOf": [{"enum": ["none", "auto", "required"]},
                                      {"type": "object", "required": ["type"], "properties": {"type": _STR,
                                                                                               "name": _STR}}]},
            "parallel_tool_calls": nullable(_BOOL),
            "text": nullable({"type": "object", "properties": {"format": {
                "type": "object", "required": ["type"], "properties": {
                    "type": {"enum": ["text", "json_object", "json_schema"]},
                    "name": _STR, "schema": _OBJ, "strict": nullable(_BOOL), "description": _STR}}}}),
            "stream": nullable({**_BOOL, "description": "true: typed `response.*` events as `text/event-stream`."}),
            "store": {"enum": [False, None], "description": "The gateway keeps no responses: `true` is refused "
                                                            "with a 400; send the whole conversation in `input`."},
            "previous_response_id": {"type": "null", "description": "Refused (400) when set: responses are not "
                                                                    "kept."},
            "metadata": nullable(_METADATA),
            "reasoning": nullable(_OBJ),
            "user": _STR,
        },
    },
    "ResponseUsage": {
        "type": "object", "required": ["input_tokens", "output_tokens", "total_tokens"],
        "properties": {
            "input_tokens": _INT, "output_tokens": _INT, "total_tokens": _INT,
            "input_tokens_details": {"type": "object", "properties": {"cached_tokens": _INT}},
            "output_tokens_details": {"type": "object", "properties": {"reasoning_tokens": _INT}},
        },
    },
    "Response": {
        "type": "object",
        "required": ["id", "object", "created_at", "model", "output"],
        "properties": {
            "id": _STR,
            "object": {"const": "response"},
            "created_at": _NUM,
            "status": nullable({"enum": ["completed", "failed", "in_progress", "cancelled", "queued", "incomplete"]}),
            "model": _STR,
            "output": {"type": "array", "items": {"type": "object", "required": ["type"], "properties": {
                "type": {**_STR, "examples": ["message", "function_call", "reasoning"]},
                "id": _STR, "role": {"const": "assistant"}, "status": _STR,
                "content": {"type": "array", "items": {"type": "object", "required": ["type"], "properties": {
                    "type": {**_STR, "examples": ["output_text", "refusal"]}, "text": _STR,
                    "annotations": {"type": "array"}}}},
                "call_id": _STR, "name": _STR, "arguments": _STR}}},
            "usage": nullable(ref("ResponseUsage")),
            "error": nullable(_OBJ),
            "incomplete_details": nullable(_OBJ),
            "instructions": nullable({"anyOf": [_STR, {"type": "array"}]}),
            "max_output_tokens": nullable(_INT),
            "parallel_tool_calls": _BOOL,
            "tool_choice": {"anyOf": [_STR, _OBJ]},
            "tools": {"type": "array"},
            "temperature": nullable(_NUM),
            "top_p": nullable(_NUM),
            "text": nullable(_OBJ),
            "metadata": nullable(_OBJ),
        },
    },
    "ResponseStreamEvent": {
        "type": "object",
        "description": "One event of a Responses stream: `event: <type>` then `data: <this object>`, in the "
                       "documented order (response.created, response.in_progress, response.output_item.added, "
                       "response.content_part.added, response.output_text.delta..., ...done, response.completed).",
        "required": ["type"],
        "properties": {
            "type": {**_STR, "examples": ["response.created", "response.output_text.delta", "response.completed",
                                          "error"]},
            "sequence_number": _INT,
            "response": ref("Response"),
            "delta": _STR,
        },
    },
}

# --- OpenAI Embeddings (openai/types/embedding_create_params.py) ------------------------------

_TOKEN = {"type": "integer", "minimum": 0}

EMBEDDINGS: dict[str, Schema] = {
    "EmbeddingsRequest": {
        "type": "object",
        "description": "OpenAI Embeddings (`openai` SDK `embeddings.create`), for catalog models of type embedding. "
                       "Unknown fields are refused (nothing translates them).",
        "required": ["model", "input"],
        "additionalProperties": False,
        "properties": {
            "model": _MODEL,
            "input": {"anyOf": [
                {**_STR, "minLength": 1},
                {"type": "array", "minItems": 1, "maxItems": 2048, "items": {**_STR, "minLength": 1}},
                {"type": "array", "minItems": 1, "maxItems": 2048, "items": _TOKEN, "description": "Token ids."},
                {"type": "array", "minItems": 1, "maxItems": 2048,
                 "items": {"type": "array", "minItems": 1, "items": _TOKEN}},
            ]},
            "dimensions": nullable({**_INT, "minimum": 1}),
            "encoding_format": nullable({"enum": ["float", "base64"],
                                         "description": "The openai SDK asks for base64 and decodes it itself."}),
            "user": _STR,
            "stream": {"enum": [False, None], "description": "Embeddings are not streamed."},
        },
    },
    "EmbeddingsResponse": {
        "type": "object",
        "required": ["object", "data", "model", "usage"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": {
                "type": "object", "required": ["object", "embedding", "index"], "properties": {
                    "object": {"const": "embedding"},
                    "embedding": {"anyOf": [{"type": "array", "items": _NUM},
                                            {**_STR, "description": "base64 of little-endian float32 "
                                                                    "(encoding_format=base64)."}]},
                    "index": _INT}}},
            "model": _STR,
            "usage": {"type": "object", "required": ["prompt_tokens", "total_tokens"],
                      "properties": {"prompt_tokens": _INT, "total_tokens": _INT}},
        },
    },
}

# --- the catalog (GET models: OpenAI's list format plus the gateway's fields) -----------------

_PRICE = nullable({**_STR, "pattern": r"^\d+(\.\d+)?$", "description": "USD per million tokens, exact decimal."})

CATALOG: dict[str, Schema] = {
    "Model": {
        "type": "object", "required": ["id", "object", "created", "owned_by"],
        "properties": {
            "id": _STR, "object": {"const": "model"}, "created": _INT, "owned_by": _STR,
            "display_name": _STR, "provider": _STR, "best_for": _STR,
            "speed": nullable(_STR), "cost_tier": nullable(_STR),
            "max_output_tokens": nullable(_INT), "context_window": nullable(_INT),
            "model_type": {"enum": ["chat", "embedding"], "description": "Which endpoints serve it."},
            "dimensions": nullable({**_INT, "description": "An embedding model's vector size."}),
            "pricing": {"type": "object", "required": ["currency", "unit"], "properties": {
                "currency": {"const": "USD"}, "unit": {"const": "per_million_tokens"},
                "input": _PRICE, "output": _PRICE, "cache_read": _PRICE, "cache_write": _PRICE}},
        },
    },
    "ModelList": {
        "type": "object", "required": ["object", "data"],
        "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": ref("Model")}},
    },
}

# --- catalog in Anthropic's format -----------------------------------------------------------

ANTHROPIC_MODELS: dict[str, Schema] = {
    "AnthropicModel": {
        "type": "object", "required": ["type", "id", "display_name", "created_at"],
        "properties": {"type": {"const": "model"}, "id": _STR, "display_name": _STR,
                       "created_at": {**_STR, "format": "date-time"}},
    },
    "AnthropicModelList": {
        "type": "object", "required": ["data", "has_more", "first_id", "last_id"],
        "properties": {"data": {"type": "array", "items": ref("AnthropicModel")}, "has_more": _BOOL,
                       "first_id": nullable(_STR), "last_id": nullable(_STR)},
    },
}

# Request examples by component, shown in Swagger UI and sent by schemathesis' examples phase:
# mock-echo answers offline; the others cross formats (a Claude model behind the OpenAI format, GPT
# behind Anthropic's), which exercises the translations.
_HELLO = [{"role": "user", "content": "hello gateway"}]
REQUEST_EXAMPLES: dict[str, dict[str, dict]] = {
    "ChatCompletionRequest": {
        "offline": {"summary": "The offline mock model", "value": {"model": "mock-echo", "messages": _HELLO}},
        "translated": {"summary": "A Claude model in OpenAI's format", "value": {
            "model": "claude-3-haiku", "max_tokens": 64,
            "messages": [{"role": "system", "content": "Be brief."}, *_HELLO]}},
        "stream": {"summary": "Streaming, with the final usage chunk", "value": {
            "model": "gpt-4o-mini", "messages": _HELLO, "stream": True, "stream_options": {"include_usage": True}}},
    },
    "MessagesRequest": {
        "offline": {"summary": "The offline mock model", "value": {"model": "mock-echo", "max_tokens": 64,
                                                                  "messages": _HELLO}},
        "translated": {"summary": "A GPT model in Anthropic's format", "value": {
            "model": "gpt-4o-mini", "max_tokens": 64, "system": "Be brief.", "messages": _HELLO}},
        "stream": {"summary": "Streaming", "value": {"model": "claude-3-haiku", "max_tokens": 64, "stream": True,
                                                     "messages": _HELLO}},
    },
    "CountTokensRequest": {
        "estimate": {"summary": "Estimated (not an Anthropic route)", "value": {"model": "mock-echo",
                                                                                "messages": _HELLO}},
        "provider": {"summary": "Counted by Anthropic", "value": {"model": "claude-3-haiku", "messages": _HELLO}},
    },
    "ResponsesRequest": {
        "offline": {"summary": "The offline mock model", "value": {"model": "mock-echo", "input": "hello gateway"}},
        "stream": {"summary": "Streaming, with instructions", "value": {
            "model": "claude-3-haiku", "instructions": "Be brief.", "input": "hello gateway", "stream": True}},
    },
    "EmbeddingsRequest": {
        "offline": {"summary": "The offline mock embedding model", "value": {"model": "mock-embedding",
                                                                             "input": "hello gateway"}},
        "many": {"summary": "Several, base64, fewer dimensions", "value": {
            "model": "text-embedding-3-small", "input": ["hello", "gateway"], "dimensions": 256,
            "encoding_format": "base64"}},
    },
}

COMPONENTS: dict[str, Schema] = {**ERRORS, **CHAT, **MESSAGES, **RESPONSES, **EMBEDDINGS, **CATALOG, **ANTHROPIC_MODELS}
