"""Anthropic Messages <-> OpenAI Chat Completions translation (ai_proxy.translate_to_openai).

Request bodies are asserted exactly; responses and re-framed streams are also fed to the real
`anthropic` SDK (its pydantic types, its stream accumulator, and a client reading our bytes
through an in-memory httpx2 transport, the SDK's HTTP library) to prove clients accept them.
"""

from __future__ import annotations

import json

import anthropic
import httpx2
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from core.errors import GatewayError
from ai_proxy.messages_format import messages_request_validate
from ai_proxy.translations.messages_to_chat import ChatStreamToAnthropic, anthropic_to_chat_request, chat_to_anthropic_response

PNG = "iVBORw0KGgo="
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME_TOOL = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
STREAM_EVENT = TypeAdapter(RawMessageStreamEvent)
READ_THIS = {"type": "text", "text": "Read this"}


def _body(**overrides) -> dict:
    body = {"model": "gpt-4o", "max_tokens": 300, "messages": [{"role": "user", "content": "Hi, I'm Alice"}]}
    body.update(overrides)
    return messages_request_validate(body)


def _translate(body: dict, **kwargs) -> dict:
    return anthropic_to_chat_request(body, upstream_model="gpt-4o-2024-08-06", **kwargs)


# --- request ---------------------------------------------------------------------------------


def test_it_translates_a_minimal_request():
    assert _translate(_body()) == {
        "model": "gpt-4o-2024-08-06",
        "messages": [{"role": "user", "content": "Hi, I'm Alice"}],
        "max_tokens": 300,
    }


def test_it_sends_max_completion_tokens_to_reasoning_models():
    out = _translate(_body(), reasoning_model=True)
    assert "max_tokens" not in out
    assert out["max_completion_tokens"] == 300


def test_it_puts_a_system_string_first():
    out = _translate(_body(system="Be brief."))
    assert out["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi, I'm Alice"},
    ]


def test_it_joins_system_blocks_and_drops_cache_control():
    system = [
        {"type": "text", "text": "You are Alice's assistant.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Be brief."},
    ]
    out = _translate(_body(system=system))
    assert out["messages"][0] == {"role": "system", "content": "You are Alice's assistant.\n\nBe brief."}


def test_it_keeps_system_role_messages_in_place():
    messages = [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi"},
        {"role": "system", "content": [{"type": "text", "text": "Now answer in French."}]},
        {"role": "user", "content": "How are you?"},
    ]
    assert _translate(_body(system="Be brief.", messages=messages))["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi"},
        {"role": "system", "content": "Now answer in French."},
        {"role": "user", "content": "How are you?"},
    ]


def test_it_translates_images_base64_and_url():
    content = [
        {"type": "text", "text": "Compare these"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    out = _translate(_body(messages=[{"role": "user", "content": content}]))
    assert out["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare these"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        }
    ]


def test_it_keeps_several_user_text_blocks_as_parts_and_one_as_a_string():
    one = _translate(_body(messages=[{"role": "user", "content": [{"type": "text", "text": "only"}]}]))
    assert one["messages"] == [{"role": "user", "content": "only"}]
    two = _translate(
        _body(messages=[{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])
    )
    assert two["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]


def test_it_translates_documents_text_and_pdf():
    content = [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Alice's notes"}},
        {
            "type": "document",
            "title": "cv.pdf",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        },
    ]
    out = _translate(_body(messages=[{"role": "user", "content": content}]))
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "Alice's notes"},
        {"type": "file", "file": {"filename": "cv.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
    ]


def test_it_round_trips_tool_use_and_tool_results_before_user_text():
    messages = [
        {"role": "user", "content": "Weather and time in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Two tools.", "signature": "sig"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris", "unit": "°C"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Here you go."},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18C"}]},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "noon", "is_error": True},
            ],
        },
    ]
    out = _translate(_body(messages=messages, tools=[WEATHER_TOOL, TIME_TOOL]))
    assert out["messages"] == [
        {"role": "user", "content": "Weather and time in Paris?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris","unit":"°C"}'},
                },
                {"id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: noon"},
        {"role": "user", "content": "Here you go."},
    ]
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": WEATHER_TOOL["input_schema"],
            },
        },
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
    ]


def test_it_sends_tool_calls_with_null_content_and_flattens_tool_result_lists():
    messages = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "Cold."}, {"type": "text", "text": "-3C"}],
                }
            ],
        },
    ]
    out = _translate(_body(messages=messages, tools=[WEATHER_TOOL]))
    assert out["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Cold.\n\n-3C"},
    ]


def test_it_refuses_images_inside_tool_results_unless_dropping():
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    messages = [
        {"role": "user", "content": "Screenshot?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}}]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "ok"}, image]}
            ],
        },
    ]
    body = _body(messages=messages, tools=[TIME_TOOL])
    with pytest.raises(GatewayError) as caught:
        _translate(body)
    assert caught.value.status == 400
    assert caught.value.param == "messages[2].content[0].content[1]"
    assert _translate(body, drop_unsupported=True)["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "toolu_1",
        "content": "ok",
    }


def test_it_merges_consecutive_same_role_messages():
    messages = [
        {"role": "user", "content": "Hello"},
        {"role": "user", "content": [{"type": "text", "text": "I'm Alice"}]},
        {"role": "assistant", "content": "Hi Alice."},
        {"role": "assistant", "content": [{"type": "text", "text": "How can I help?"}]},
        {"role": "user", "content": "Tell me a joke"},
    ]
    assert _translate(_body(messages=messages))["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "I'm Alice"}]},
        {"role": "assistant", "content": "Hi Alice.\n\nHow can I help?"},
        {"role": "user", "content": "Tell me a joke"},
    ]


def test_it_keeps_a_prefill_and_skips_an_empty_final_assistant_message():
    prefill = _translate(
        _body(messages=[{"role": "user", "content": "Pick"}, {"role": "assistant", "content": "The answer is ("}])
    )
    assert prefill["messages"][-1] == {"role": "assistant", "content": "The answer is ("}
    empty = _translate(_body(messages=[{"role": "user", "content": "Pick"}, {"role": "assistant", "content": ""}]))
    assert empty["messages"] == [{"role": "user", "content": "Pick"}]


@pytest.mark.parametrize(
    "tool_choice, expected",
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}),
    ],
)
def test_it_maps_tool_choice(tool_choice, expected):
    out = _translate(_body(tools=[WEATHER_TOOL], tool_choice=tool_choice))
    assert out["tool_choice"] == expected
    assert "parallel_tool_calls" not in out


@pytest.mark.parametrize("choice_type", ["auto", "any"])
def test_it_maps_disable_parallel_tool_use(choice_type):
    out = _translate(_body(tools=[WEATHER_TOOL], tool_choice={"type": choice_type, "disable_parallel_tool_use": True}))
    assert out["parallel_tool_calls"] is False
    relaxed = _translate(
        _body(tools=[WEATHER_TOOL], tool_choice={"type": choice_type, "disable_parallel_tool_use": False})
    )
    assert "parallel_tool_calls" not in relaxed


def test_it_passes_sampling_stop_user_and_stream():
    out = _translate(
        _body(
            temperature=0.2,
            top_p=0.9,
            stop_sequences=["END", "\n\nHuman:"],
            metadata={"user_id": "alice-7"},
            stream=True,
            service_tier="auto",
            thinking={"type": "disabled"},
        )
    )
    assert out == {
        "model": "gpt-4o-2024-08-06",
        "messages": [{"role": "user", "content": "Hi, I'm Alice"}],
        "max_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END", "\n\nHuman:"],
        "user": "alice-7",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_it_omits_stream_options_when_not_streaming_and_null_user_id():
    out = _translate(_body(stream=False, metadata={"user_id": None}, stop_sequences=[]))
    assert set(out) == {"model", "messages", "max_tokens"}


def test_it_refuses_top_k_naming_it():
    with pytest.raises(GatewayError) as caught:
        _translate(_body(top_k=40))
    err = caught.value
    assert (err.status, err.param, err.code) == (400, "top_k", "unsupported_parameter")
    assert err.message.startswith("top_k: `top_k` is not supported")
    assert err.anthropic_type() == "invalid_request_error"


def test_it_drops_top_k_when_asked():
    assert "top_k" not in _translate(_body(top_k=40), drop_unsupported=True)
    assert _translate(_body(top_k=40), drop_unsupported=True) == _translate(_body())


@pytest.mark.parametrize(
    "overrides, param",
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "thinking"),
        ({"container": "container_1"}, "container"),
        ({"mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "x"}]}, "mcp_servers"),
        ({"not_a_field": 1}, "not_a_field"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [READ_THIS, {"type": "image", "source": {"type": "file", "file_id": "file_1"}}],
                    }
                ]
            },
            "messages[0].content[1].source",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            READ_THIS,
                            {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}},
                        ],
                    }
                ]
            },
            "messages[0].content[1].source",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "Read this"},
                    {
                        "role": "assistant",
                        "content": [{"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}],
                    },
                ]
            },
            "messages[1].content[0].type",
        ),
    ],
)
def test_it_refuses_what_has_no_openai_equivalent_unless_dropping(overrides, param):
    body = _body(**overrides)
    with pytest.raises(GatewayError) as caught:
        _translate(body)
    assert (caught.value.status, caught.value.param) == (400, param)
    dropped = _translate(body, drop_unsupported=True)
    top_level = param.split("[")[0].split(".")[0]
    if top_level != "messages":
        assert top_level not in dropped
        assert dropped == _translate(_body())
    else:
        assert dropped["messages"] == [{"role": "user", "content": "Read this"}]


def test_it_refuses_a_conversation_left_empty_by_dropping():
    body = _body(
        messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "file_1"}}]}]
    )
    with pytest.raises(GatewayError) as caught:
        _translate(body, drop_unsupported=True)
    assert (caught.value.status, caught.value.param) == (400, "messages")


def test_it_drops_a_server_tool_and_its_tool_choice_when_asked():
    body = _body(tools=[{"type": "web_search_20250305", "name": "web_search"}], tool_choice={"type": "auto"})
    out = _translate(body, drop_unsupported=True)
    assert "tools" not in out and "tool_choice" not in out


def test_it_refuses_tool_names_longer_than_openai_allows():
    long_name = "a" * 65
    body = _body(tools=[WEATHER_TOOL, {"name": long_name, "input_schema": {"type": "object"}}])
    with pytest.raises(GatewayError) as caught:
        _translate(body, drop_unsupported=True)
    assert caught.value.param == "tools[1].name"
    assert "at most 64" in caught.value.message
    ok = _translate(_body(tools=[{"name": "a" * 64, "input_schema": {"type": "object"}}]))
    assert ok["tools"][0]["function"]["name"] == "a" * 64


# --- response --------------------------------------------------------------------------------


def _completion(message: dict, finish_reason: str | None = "stop", usage: dict | None = None) -> dict:
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1770933883,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "refusal": None, "annotations": [], **message},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage
        or {
            "prompt_tokens": 16,
            "completion_tokens": 3,
            "total_tokens": 19,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_1",
    }


def test_it_translates_a_text_response():
    out = chat_to_anthropic_response(_completion({"content": "Hello Alice"}), model="gpt-4o")
    assert out == {
        "id": "chatcmpl-abc123",
        "type": "message",
        "role": "assistant",
        "model": "gpt-4o",
        "content": [{"type": "text", "text": "Hello Alice"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 16,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 3,
        },
    }
    Message.model_validate(out)


def test_it_translates_tool_calls_into_tool_use_blocks():
    message = {
        "content": "Checking both.",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
            {"id": "call_3", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"'}},
        ],
    }
    out = chat_to_anthropic_response(_completion(message, "tool_calls"), model="gpt-4o")
    assert out["content"] == [
        {"type": "text", "text": "Checking both."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
        {"type": "tool_use", "id": "call_3", "name": "get_time", "input": {"_raw": '{"tz": "CET"'}},
    ]
    assert out["stop_reason"] == "tool_use"
    Message.model_validate(out)


def test_it_omits_the_text_block_when_content_is_null():
    message = {
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}],
    }
    out = chat_to_anthropic_response(_completion(message, "tool_calls"), model="gpt-4o")
    assert [block["type"] for block in out["content"]] == ["tool_use"]


@pytest.mark.parametrize(
    "finish_reason, stop_reason",
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
        ("something_new", "end_turn"),
        (None, "end_turn"),
    ],
)
def test_it_maps_every_finish_reason(finish_reason, stop_reason):
    out = chat_to_anthropic_response(_completion({"content": "x"}, finish_reason), model="gpt-4o")
    assert out["stop_reason"] == stop_reason
    Message.model_validate(out)


def test_it_reports_tool_use_when_a_stop_finish_carries_tool_calls():
    message = {
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}],
    }
    assert chat_to_anthropic_response(_completion(message, "stop"), model="gpt-4o")["stop_reason"] == "tool_use"


def test_it_turns_a_refusal_into_refusal_text():
    out = chat_to_anthropic_response(
        _completion({"content": None, "refusal": "I can't help with that."}), model="gpt-4o"
    )
    assert out["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert out["stop_reason"] == "refusal"


def test_it_splits_cached_tokens_out_of_input_tokens():
    usage = {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "cache_write_tokens": 50},
    }
    out = chat_to_anthropic_response(_completion({"content": "x"}, usage=usage), model="gpt-4o")
    assert out["usage"] == {
        "input_tokens": 36,
        "cache_creation_input_tokens": 50,
        "cache_read_input_tokens": 1920,
        "output_tokens": 300,
    }
    clamped = chat_to_anthropic_response(
        _completion(
            {"content": "x"},
            usage={"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 12}},
        ),
        model="gpt-4o",
    )
    assert clamped["usage"]["input_tokens"] == 0


def test_it_reads_a_response_through_the_anthropic_client():
    out = chat_to_anthropic_response(_completion({"content": "Hello Alice"}), model="gpt-4o")
    client = _client(lambda request: httpx2.Response(200, json=out, headers={"request-id": "req_1"}))
    message = client.messages.create(model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert message.content[0].text == "Hello Alice"
    assert message.usage.input_tokens == 16


# --- streaming -------------------------------------------------------------------------------


def _chunk(
    delta: dict | None = None, finish_reason: str | None = None, *, usage: dict | None = None, done: bool = False
) -> dict:
    chunk = {
        "id": "chatcmpl-X",
        "object": "chat.completion.chunk",
        "created": 1770933892,
        "model": "gpt-4o-2024-08-06",
        "service_tier": "default",
        "system_fingerprint": "fp_1",
        "choices": []
        if done
        else [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage,
    }
    return chunk


USAGE_CHUNK_USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 9,
    "total_tokens": 1209,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


def _run(chunks: list[dict], **kwargs) -> tuple[ChatStreamToAnthropic, list[tuple[str, dict]]]:
    reframer = ChatStreamToAnthropic(model="gpt-4o", **kwargs)
    events: list[tuple[str, dict]] = []
    for chunk in chunks:
        events.extend(reframer.feed(chunk))
    events.extend(reframer.finish())
    return reframer, events


def _message_start(input_tokens: int = 0) -> tuple[str, dict]:
    return (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "chatcmpl-X",
                "type": "message",
                "role": "assistant",
                "model": "gpt-4o",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": 0},
            },
        },
    )


def _accumulate(events: list[tuple[str, dict]]):
    """Validate each event against the SDK's types and fold them the way MessageStream does."""
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for name, data in events:
        assert name == data["type"]
        if name == "ping":
            continue
        event = STREAM_EVENT.validate_python(data)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
    return Message.model_validate(snapshot.to_dict())


def _assert_order_rules(events: list[tuple[str, dict]]) -> None:
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    open_index = None
    next_index = 0
    for name, data in events:
        if name == "content_block_start":
            assert open_index is None, "a block opened before the previous one closed"
            assert data["index"] == next_index, "block indexes must be contiguous from 0"
            open_index = data["index"]
            next_index += 1
        elif name == "content_block_delta":
            assert data["index"] == open_index
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index = None
        elif name == "message_delta":
            assert open_index is None, "message_delta before the last block closed"


def test_it_reframes_a_text_stream():
    chunks = [
        _chunk({"role": "assistant", "content": "", "refusal": None}),
        _chunk({"content": "Hello"}),
        _chunk({"content": " Alice"}),
        _chunk({}, "stop"),
        _chunk(done=True, usage=USAGE_CHUNK_USAGE),
    ]
    reframer, events = _run(chunks, input_tokens_estimate=1180)
    assert events == [
        _message_start(1180),
        ("ping", {"type": "ping"}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " Alice"}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {
                    "input_tokens": 176,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 1024,
                    "output_tokens": 9,
                },
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    assert reframer.complete is True and reframer.errored is False
    assert reframer.stop_reason == "end_turn"
    assert reframer.text_chars == len("Hello Alice")
    assert reframer.usage == {
        "prompt_tokens": 1200,
        "completion_tokens": 9,
        "cache_read_tokens": 1024,
        "cache_write_tokens": 0,
    }
    message = _accumulate(events)
    assert message.content[0].text == "Hello Alice"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (
        176,
        1024,
        9,
    )
    assert message.stop_reason == "end_turn"


def test_it_waits_for_the_usage_chunk_before_message_delta():
    reframer = ChatStreamToAnthropic(model="gpt-4o", message_id="msg_gateway1")
    first = reframer.feed(_chunk({"role": "assistant", "content": "Hi"}))
    assert first[0][1]["message"]["id"] == "msg_gateway1"
    assert reframer.feed(_chunk({}, "length")) == []
    assert reframer.stop_reason is None
    closing = reframer.feed(_chunk(done=True, usage=USAGE_CHUNK_USAGE))
    assert [name for name, _ in closing] == ["content_block_stop", "message_delta", "message_stop"]
    assert closing[1][1]["delta"]["stop_reason"] == "max_tokens"
    assert reframer.finish() == []
    assert reframer.feed(_chunk({"content": "late"})) == []
    assert reframer.complete is True and reframer.stop_reason == "max_tokens"


def test_it_reframes_text_and_two_parallel_tool_calls_in_fragments():
    chunks = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Checking both."}),
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_w",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]}),
        _chunk(
            {
                "tool_calls": [
                    {"index": 1, "id": "call_t", "type": "function", "function": {"name": "get_time", "arguments": ""}}
                ]
            }
        ),
        _chunk({"tool_calls": [{"index": 1, "function": {"arguments": '{"tz":'}}]}),
        _chunk({"tool_calls": [{"index": 1, "function": {"arguments": ' "CET"}'}}]}),
        _chunk({}, "tool_calls"),
        _chunk(done=True, usage={"prompt_tokens": 80, "completion_tokens": 40, "total_tokens": 120}),
    ]
    reframer, events = _run(chunks)

    def delta(index: int, partial: str) -> tuple[str, dict]:
        return (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": partial},
            },
        )

    assert events == [
        _message_start(),
        ("ping", {"type": "ping"}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking both."}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "call_w", "name": "get_weather", "input": {}},
            },
        ),
        delta(1, '{"ci'),
        delta(1, 'ty": "Paris"}'),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {"type": "tool_use", "id": "call_t", "name": "get_time", "input": {}},
            },
        ),
        delta(2, '{"tz":'),
        delta(2, ' "CET"}'),
        ("content_block_stop", {"type": "content_block_stop", "index": 2}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {
                    "input_tokens": 80,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 40,
                },
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    _assert_order_rules(events)
    message = _accumulate(events)
    assert [(b.type, getattr(b, "input", None)) for b in message.content] == [
        ("text", None),
        ("tool_use", {"city": "Paris"}),
        ("tool_use", {"tz": "CET"}),
    ]
    assert message.stop_reason == "tool_use"


def test_it_opens_a_tool_block_first_when_there_is_no_text():
    chunks = [
        _chunk(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": "{}"},
                    }
                ],
            }
        ),
        _chunk({}, "tool_calls"),
        _chunk(done=True, usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}),
    ]
    _, events = _run(chunks)
    _assert_order_rules(events)
    assert events[2][1]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "get_time", "input": {}}
    assert _accumulate(events).content[0].input == {}


@pytest.mark.parametrize(
    "finish_reason, stop_reason",
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
        ("eos", "end_turn"),
    ],
)
def test_it_maps_finish_reasons_in_streams(finish_reason, stop_reason):
    _, events = _run([_chunk({"content": "x"}), _chunk({}, finish_reason)])
    assert events[-2][1]["delta"]["stop_reason"] == stop_reason
    _accumulate(events)


def test_it_closes_at_done_when_the_upstream_sends_no_usage():
    reframer, events = _run(
        [_chunk({"role": "assistant", "content": "Hello Alice!"}), _chunk({}, "stop")], input_tokens_estimate=12
    )
    _assert_order_rules(events)
    assert reframer.complete is True
    assert reframer.usage is None
    assert events[-2][1]["usage"] == {
        "input_tokens": 12,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 3,
    }


def test_it_flags_a_stream_that_ended_without_a_finish_reason():
    reframer = ChatStreamToAnthropic(model="gpt-4o")
    events = reframer.feed(_chunk({"role": "assistant", "content": "Hel"}))
    assert [name for name, _ in events] == ["message_start", "ping", "content_block_start", "content_block_delta"]
    assert reframer.finish() == []
    assert reframer.complete is False
    assert reframer.stop_reason is None


def test_it_reframes_an_upstream_error_object():
    reframer = ChatStreamToAnthropic(model="gpt-4o")
    reframer.feed(_chunk({"role": "assistant", "content": "Hel"}))
    events = reframer.feed(
        {
            "error": {
                "message": "The server had an error while processing your request.",
                "type": "server_error",
                "code": None,
            }
        }
    )
    assert events == [
        (
            "error",
            {
                "type": "error",
                "error": {"type": "api_error", "message": "The server had an error while processing your request."},
            },
        )
    ]
    assert reframer.errored is True
    assert reframer.finish() == []
    assert reframer.complete is False
    anthropic.types.ErrorResponse.model_validate(events[0][1])


def _client(handler) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key="dm_alice_test_x",
        base_url="http://gateway.test",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        max_retries=0,
    )


def _sse(events: list[tuple[str, dict]]) -> bytes:
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)


def test_it_streams_through_the_anthropic_client():
    chunks = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Sure."}),
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_w",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city"'},
                    }
                ]
            }
        ),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ': "Oslo"}'}}]}),
        _chunk({}, "tool_calls"),
        _chunk(done=True, usage=USAGE_CHUNK_USAGE),
    ]
    _, events = _run(chunks, input_tokens_estimate=1000)
    body = _sse(events)
    client = _client(lambda request: httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"}))
    with client.messages.stream(
        model="gpt-4o", max_tokens=50, messages=[{"role": "user", "content": "Weather in Oslo?"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Sure."
    assert final.content[1].input == {"city": "Oslo"}
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens, final.usage.output_tokens) == (176, 1024, 9)


def test_it_raises_the_stream_error_in_the_anthropic_client():
    reframer = ChatStreamToAnthropic(model="gpt-4o")
    events = reframer.feed(_chunk({"role": "assistant", "content": "Hel"}))
    events += reframer.feed({"error": {"message": "upstream overloaded"}})
    body = _sse(events)
    client = _client(lambda request: httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"}))
    with pytest.raises(anthropic.APIStatusError) as caught:
        with client.messages.stream(
            model="gpt-4o", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
        ) as stream:
            stream.get_final_message()
    assert "upstream overloaded" in str(caught.value)
