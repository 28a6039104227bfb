"""OpenAI chat-completions → Anthropic Messages and back (WIRE.md §1, §2, §5), exact bodies."""

from __future__ import annotations

import copy
import json
import time

import pytest
from openai.lib.streaming._deltas import accumulate_delta
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from ai_proxy.chat_format import chat_request_validate
from ai_proxy.translations.chat_to_anthropic import (
    AnthropicStreamToChat,
    anthropic_to_chat_response,
    chat_to_anthropic_request,
    chat_wants_json_tool,
)
from core.errors import GatewayError

UPSTREAM = "claude-sonnet-4-5-20250929"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
TIME = {"type": "function", "function": {"name": "get_time"}}


def translate(drop_unsupported: bool = False, **fields) -> dict:
    body = {"model": "claude-sonnet", "messages": [{"role": "user", "content": "Hi"}], **fields}
    chat_request_validate(body)  # every case here is a body OpenAI itself would accept
    original = copy.deepcopy(body)
    out = chat_to_anthropic_request(body, upstream_model=UPSTREAM, default_max_tokens=4096,
                                    drop_unsupported=drop_unsupported)
    assert body == original, "the client's body must not be mutated"
    return out


def rejected(drop_unsupported: bool = False, **fields) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        translate(drop_unsupported=drop_unsupported, **fields)
    assert info.value.status == 400
    return info.value


def user(text: str) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


# --- requests --------------------------------------------------------------------------------


def test_it_translates_the_minimal_request():
    assert translate() == {"model": UPSTREAM, "max_tokens": 4096, "messages": [user("Hi")]}


def test_it_moves_system_and_developer_messages_into_system_blocks():
    out = translate(messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "developer", "content": [
            {"type": "text", "text": "Long reference text", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": ""},
        ]},
        {"role": "system", "content": ""},
        {"role": "system", "content": "Use French.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ])
    assert out["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Long reference text", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Use French.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ]
    assert out["messages"] == [user("Hi")]


def test_it_rejects_a_conversation_with_only_system_messages():
    err = rejected(messages=[{"role": "system", "content": "Be brief."}, {"role": "developer", "content": "x"}])
    assert (err.param, err.code) == ("messages", "invalid_value")


def test_it_merges_consecutive_turns_and_tool_results():
    out = translate(tools=[WEATHER], messages=[
        {"role": "user", "content": "Weather in Paris"},
        {"role": "user", "content": [{"type": "text", "text": "and Rome?"}, {"type": "text", "text": ""}]},
        {"role": "assistant", "content": "Checking."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"location":"Rome"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "25C"}]},
        {"role": "user", "content": "Thanks"},
    ])
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris"}, {"type": "text", "text": "and Rome?"}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"location": "Rome"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "25C"}]},
            {"type": "text", "text": "Thanks"},
        ]},
    ]
    assert out["tools"] == [{"name": "get_weather", "description": "Current weather",
                             "input_schema": WEATHER["function"]["parameters"]}]
    assert "tool_choice" not in out


def test_it_puts_tool_results_first_in_a_merged_user_turn():
    out = translate(tools=[WEATHER], messages=[
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
        {"role": "user", "content": "Also, hurry."},
        {"role": "tool", "tool_call_id": "call_1", "content": ""},
    ])
    assert out["messages"][1]["content"] == [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}}]
    assert out["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_1"}, {"type": "text", "text": "Also, hurry."}]}


def test_it_makes_tool_call_ids_acceptable_to_anthropic_on_both_sides():
    out = translate(tools=[WEATHER], messages=[
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "tool_calls": [
            {"id": "call.1:x", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call.1:x", "content": "ok"},
    ])
    assert out["messages"][1]["content"][0]["id"] == "call_1_x"
    assert out["messages"][2]["content"][0]["tool_use_id"] == "call_1_x"


@pytest.mark.parametrize("arguments", ['{"location": ', "[1, 2]"])
def test_it_rejects_tool_call_arguments_that_are_not_a_json_object(arguments):
    err = rejected(messages=[
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "call_2", "type": "function", "function": {"name": "f", "arguments": arguments}}]},
    ])
    assert (err.param, err.code) == ("messages[1].tool_calls[1].function.arguments", "invalid_value")


def test_it_rstrips_the_final_assistant_prefill():
    out = translate(messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "The answer is \n"}])
    assert out["messages"][-1] == {"role": "assistant", "content": [{"type": "text", "text": "The answer is"}]}
    out = translate(messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "  "}])
    assert out["messages"] == [user("Hi")]
    # Earlier assistant turns keep their text exactly.
    out = translate(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b "},
                              {"role": "user", "content": "c"}])
    assert out["messages"][1]["content"] == [{"type": "text", "text": "b "}]


def test_it_keeps_assistant_refusal_parts_as_text():
    out = translate(messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": [
        {"type": "refusal", "refusal": "I can't."}]}, {"role": "user", "content": "ok"}])
    assert out["messages"][1] == {"role": "assistant", "content": [{"type": "text", "text": "I can't."}]}


def test_it_translates_images_from_data_and_http_urls_without_fetching():
    out = translate(messages=[{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"},
         "cache_control": {"type": "ephemeral"}},
    ]}])
    assert out["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"},
         "cache_control": {"type": "ephemeral"}},
    ]}]


@pytest.mark.parametrize("url", ["data:image/bmp;base64,Qk0=", "data:image/png,notbase64", "ftp://x/a.png",
                                 "file:///etc/passwd"])
def test_it_rejects_images_anthropic_cannot_take(url):
    err = rejected(messages=[{"role": "user", "content": [
        {"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": url}}]}])
    assert (err.param, err.code) == ("messages[0].content[1].image_url.url", "invalid_value")


def test_it_translates_pdf_files_to_documents():
    out = translate(messages=[{"role": "user", "content": [
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "cv.pdf"}},
        {"type": "file", "file": {"file_data": "JVBERi0="}},
    ]}])
    assert out["messages"][0]["content"] == [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
         "title": "cv.pdf"},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
    ]


def test_it_rejects_content_anthropic_cannot_read_unless_told_to_drop_it():
    content = [{"type": "text", "text": "Transcribe"},
               {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}},
               {"type": "file", "file": {"file_id": "file-abc"}}]
    err = rejected(messages=[{"role": "user", "content": content}])
    assert (err.param, err.code) == ("messages[0].content[1].type", "unsupported_parameter")
    assert err.message == "`input_audio` content (`messages[0].content[1].type`) is not supported by Anthropic models."
    err = rejected(messages=[{"role": "user", "content": [content[0], content[2]]}])
    assert (err.param, err.code) == ("messages[0].content[1].file.file_id", "unsupported_parameter")
    out = translate(drop_unsupported=True, messages=[{"role": "user", "content": content}])
    assert out["messages"] == [user("Transcribe")]


def test_it_maps_stop_string_and_list_to_stop_sequences():
    assert translate(stop="END")["stop_sequences"] == ["END"]
    assert translate(stop=["END", "STOP"])["stop_sequences"] == ["END", "STOP"]
    assert "stop_sequences" not in translate(stop=[])


def test_it_rejects_whitespace_only_stop_sequences_unless_dropping():
    err = rejected(stop=["END", "\n"])
    assert (err.param, err.code) == ("stop[1]", "unsupported_parameter")
    assert translate(drop_unsupported=True, stop=["END", "\n"])["stop_sequences"] == ["END"]
    assert "stop_sequences" not in translate(drop_unsupported=True, stop="\n")


def test_it_maps_max_tokens_with_a_default():
    assert translate()["max_tokens"] == 4096
    assert translate(max_tokens=100)["max_tokens"] == 100
    assert translate(max_completion_tokens=50)["max_tokens"] == 50
    assert translate(max_tokens=100, max_completion_tokens=50)["max_tokens"] == 50


def test_it_passes_sampling_parameters():
    out = translate(temperature=0.7, top_p=0.9, top_k=40)
    assert (out["temperature"], out["top_p"], out["top_k"]) == (0.7, 0.9, 40)
    assert translate(temperature=1)["temperature"] == 1
    assert translate(temperature=0)["temperature"] == 0


def test_it_rejects_a_malformed_top_k():
    assert rejected(top_k=-1).param == "top_k"
    assert rejected(top_k=True).param == "top_k"


def test_it_keeps_cache_control_on_user_and_tool_messages():
    cache = {"type": "ephemeral"}
    out = translate(tools=[WEATHER], messages=[
        {"role": "user", "content": "Long document", "cache_control": cache},
        {"role": "assistant", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "18C"}], "cache_control": cache},
    ])
    assert out["messages"][0]["content"] == [{"type": "text", "text": "Long document", "cache_control": cache}]
    assert out["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "call_1",
                                              "content": [{"type": "text", "text": "18C"}], "cache_control": cache}]


def test_it_rejects_temperature_above_one_unless_clamping():
    err = rejected(temperature=1.5)
    assert err.param == "temperature"
    assert "Anthropic models accept temperature between 0 and 1" in err.message
    assert translate(drop_unsupported=True, temperature=1.5)["temperature"] == 1


def test_it_maps_user_to_metadata_and_passes_stream():
    out = translate(user="alice-42", stream=True, stream_options={"include_usage": True})
    assert out["metadata"] == {"user_id": "alice-42"}
    assert out["stream"] is True
    assert "stream" not in translate(stream=False)


@pytest.mark.parametrize("choice, parallel, expected", [
    (None, None, None),
    (None, True, None),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("auto", None, {"type": "auto"}),
    ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", None, {"type": "any"}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ("none", None, {"type": "none"}),
    ("none", False, {"type": "none"}),
    ({"type": "function", "function": {"name": "get_time"}}, None, {"type": "tool", "name": "get_time"}),
    ({"type": "function", "function": {"name": "get_time"}}, False,
     {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True}),
])
def test_it_maps_tool_choice_and_parallel_tool_calls(choice, parallel, expected):
    fields = {"tools": [WEATHER, TIME]}
    if choice is not None:
        fields["tool_choice"] = choice
    if parallel is not None:
        fields["parallel_tool_calls"] = parallel
    out = translate(**fields)
    assert out["tools"] == [
        {"name": "get_weather", "description": "Current weather", "input_schema": WEATHER["function"]["parameters"]},
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert out.get("tool_choice") == expected


def test_it_sends_only_the_allowed_tools():
    out = translate(tools=[WEATHER, TIME], tool_choice={"type": "allowed_tools", "allowed_tools": {
        "mode": "required", "tools": [{"type": "function", "function": {"name": "get_time"}}]}})
    assert out["tools"] == [{"name": "get_time", "input_schema": {"type": "object", "properties": {}}}]
    assert out["tool_choice"] == {"type": "any"}


def test_it_rejects_custom_tools():
    err = rejected(tools=[{"type": "custom", "custom": {"name": "grammar"}}])
    assert (err.param, err.code) == ("tools[0].type", "unsupported_parameter")


def test_it_turns_a_json_schema_response_format_into_a_forced_tool():
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    fields = {"response_format": {"type": "json_schema", "json_schema": {
        "name": "place", "description": "A place", "schema": schema, "strict": True}}}
    out = translate(**fields)
    assert out["tools"] == [{"name": "json_tool_call", "description": "A place", "input_schema": schema}]
    assert out["tool_choice"] == {"type": "tool", "name": "json_tool_call"}
    assert chat_wants_json_tool(fields)


def test_it_turns_json_object_into_a_permissive_forced_tool_and_ignores_text():
    out = translate(response_format={"type": "json_object"})
    assert out["tools"] == [{"name": "json_tool_call", "input_schema": {"type": "object"}}]
    assert out["tool_choice"] == {"type": "tool", "name": "json_tool_call"}
    out = translate(response_format={"type": "text"})
    assert "tools" not in out and "tool_choice" not in out
    assert not chat_wants_json_tool({"response_format": {"type": "text"}})


def test_it_rejects_json_response_format_combined_with_tools():
    err = rejected(tools=[WEATHER], response_format={"type": "json_object"})
    assert (err.param, err.code) == ("response_format", "unsupported_parameter")


@pytest.mark.parametrize("param, value", [
    ("seed", 7), ("n", 2), ("logprobs", True), ("top_logprobs", 3), ("logit_bias", {"50256": -100}),
    ("presence_penalty", 0.5), ("frequency_penalty", -1), ("audio", {"voice": "alloy", "format": "wav"}),
    ("modalities", ["text", "audio"]), ("prediction", {"type": "content", "content": "x"}),
    ("verbosity", "low"), ("web_search_options", {}), ("functions", [{"name": "f"}]), ("thinking", {}),
])
def test_it_rejects_parameters_anthropic_has_no_equivalent_for(param, value):
    err = rejected(**{param: value})
    assert (err.param, err.code) == (param, "unsupported_parameter")
    assert err.message == f"`{param}` is not supported by Anthropic models."
    assert translate(drop_unsupported=True, **{param: value}) == translate()


def test_it_drops_harmless_parameters_silently():
    out = translate(stream=True, stream_options={"include_usage": True}, store=True, metadata={"app": "cv"},
                    service_tier="auto", reasoning_effort="high", n=1, presence_penalty=0, frequency_penalty=0,
                    logprobs=False, logit_bias={}, modalities=["text"], prompt_cache_key="k",
                    safety_identifier="hash", seed=None)
    assert out == {"model": UPSTREAM, "max_tokens": 4096, "messages": [user("Hi")], "stream": True}
    out = translate(tools=[WEATHER], parallel_tool_calls=True)
    assert "tool_choice" not in out


def test_it_rejects_deprecated_function_messages():
    err = rejected(messages=[{"role": "user", "content": "Hi"}, {"role": "function", "name": "f", "content": "1"}])
    assert (err.param, err.code) == ("messages[1].role", "unsupported_parameter")


# --- responses -------------------------------------------------------------------------------

TEXT_RESPONSE = {
    "id": "msg_01VdEjxAP5ahtHKrrRdNBteQ", "type": "message", "role": "assistant", "model": UPSTREAM,
    "content": [{"type": "text", "text": "Hello!"}, {"type": "text", "text": " Bye."}],
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
              "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
              "output_tokens": 29, "service_tier": "standard"},
}


def usage(prompt, completion, cached=0, written=0):
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0, "cache_write_tokens": written},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


def test_it_translates_a_text_response():
    before = int(time.time())
    out = anthropic_to_chat_response(TEXT_RESPONSE, model="claude-sonnet", request_id="req_1")
    assert before <= out.pop("created") <= int(time.time())
    assert out == {
        "id": "msg_01VdEjxAP5ahtHKrrRdNBteQ", "object": "chat.completion", "model": "claude-sonnet",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! Bye.", "refusal": None,
                                             "annotations": []},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": usage(12, 29), "service_tier": "default", "system_fingerprint": None,
    }
    ChatCompletion.model_validate(out | {"created": before})


def test_it_translates_tool_use_and_skips_thinking():
    resp = dict(TEXT_RESPONSE, stop_reason="tool_use", content=[
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"location": "Paris", "unit": "°C"}},
        {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}},
    ])
    out = anthropic_to_chat_response(resp, model="claude-sonnet")
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {"role": "assistant", "content": None, "refusal": None, "annotations": [],
                                 "tool_calls": [
        {"id": "toolu_01", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"location":"Paris","unit":"°C"}'}},
        {"id": "toolu_02", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]}
    parsed = ChatCompletion.model_validate(out)
    assert json.loads(parsed.choices[0].message.tool_calls[0].function.arguments) == {"location": "Paris", "unit": "°C"}


@pytest.mark.parametrize("stop_reason, finish_reason", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"), ("pause_turn", "stop"), ("model_context_window_exceeded", "length"),
    ("something_new", "stop"), (None, "stop"),
])
def test_it_maps_every_stop_reason(stop_reason, finish_reason):
    out = anthropic_to_chat_response(dict(TEXT_RESPONSE, stop_reason=stop_reason), model="m")
    assert out["choices"][0]["finish_reason"] == finish_reason
    ChatCompletion.model_validate(out)


def test_it_counts_cache_tokens_in_the_prompt():
    resp = dict(TEXT_RESPONSE, usage={"input_tokens": 10, "cache_creation_input_tokens": 200,
                                      "cache_read_input_tokens": 3000, "output_tokens": 7})
    out = anthropic_to_chat_response(resp, model="m")
    assert out["usage"] == usage(3210, 7, cached=3000, written=200)
    parsed = ChatCompletion.model_validate(out)
    assert parsed.usage.prompt_tokens_details.cache_write_tokens == 200
    resp = dict(TEXT_RESPONSE, usage={"input_tokens": 5, "cache_creation_input_tokens": None, "output_tokens": 1})
    assert anthropic_to_chat_response(resp, model="m")["usage"] == usage(5, 1)


def test_it_returns_the_json_tool_input_as_content():
    resp = dict(TEXT_RESPONSE, stop_reason="tool_use", content=[
        {"type": "tool_use", "id": "toolu_01", "name": "json_tool_call", "input": {"city": "Paris"}}])
    out = anthropic_to_chat_response(resp, model="m", json_tool=True)
    assert out["choices"][0]["message"] == {"role": "assistant", "content": '{"city":"Paris"}', "refusal": None,
                                            "annotations": []}
    assert out["choices"][0]["finish_reason"] == "stop"
    # Without the flag a tool that happens to share the name is an ordinary tool call.
    assert anthropic_to_chat_response(resp, model="m")["choices"][0]["finish_reason"] == "tool_calls"


def test_it_returns_an_empty_string_for_an_empty_answer():
    out = anthropic_to_chat_response(dict(TEXT_RESPONSE, content=[], stop_reason="max_tokens"), model="m")
    assert out["choices"][0]["message"]["content"] == ""
    assert out["choices"][0]["finish_reason"] == "length"


# --- streaming -------------------------------------------------------------------------------

# ANT:tests/lib/streaming/fixtures/basic_response.txt
BASIC_STREAM = """event: message_start
data: {"type":"message_start","message":{"id":"msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK","type":"message","role":"assistant","content":[],"model":"claude-3-opus-latest","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":11,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" there"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":6}}

event: message_stop
data: {"type":"message_stop"}
"""

# ANT:tests/lib/streaming/fixtures/tool_use_response.txt, with a second tool call and cache usage added.
TOOL_STREAM = r"""event: message_start
data: {"type":"message_start","message":{"id":"msg_019Q1hrJbZG26Fb9BQhrkHEr","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":377,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"output_tokens":1,"service_tier":"standard"}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"I"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"'ll check the current weather in Paris for you."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01NRLabsLyVHZPKxbKvkfSMn","name":"get_weather","caller":{"type":"direct"},"input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"locati"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"on\": \"P"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ar"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"is\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_02","name":"get_time","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":65}}

event: message_stop
data: {"type":"message_stop"}
"""


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for raw in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in raw.strip().splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def run(text: str, **options) -> tuple[AnthropicStreamToChat, list[dict]]:
    reframer = AnthropicStreamToChat(model="claude-sonnet", created=1770933892, **options)
    chunks = []
    for event, data in sse_events(text):
        chunks.extend(reframer.feed(event, data))
    chunks.extend(reframer.finish())
    for chunk in chunks:
        if "error" not in chunk:
            ChatCompletionChunk.model_validate(chunk)
    return reframer, chunks


def chunk(delta, finish_reason=None, *, id="msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK", **extra):
    return {"id": id, "object": "chat.completion.chunk", "created": 1770933892, "model": "claude-sonnet",
            "service_tier": "default", "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}], **extra}


def accumulate(chunks: list[dict]) -> dict:
    """What the openai SDK's stream helper builds from the deltas."""
    acc: dict = {}
    for item in chunks:
        for choice in item["choices"]:
            acc = accumulate_delta(acc, copy.deepcopy(choice["delta"]))
    return acc


def test_it_streams_text_without_usage():
    reframer, chunks = run(BASIC_STREAM, include_usage=False)
    assert chunks == [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hello"}),
        chunk({"content": " there"}),
        chunk({"content": "!"}),
        chunk({}, "stop"),
    ]
    assert reframer.complete is True
    assert reframer.finish_reason == "stop"
    assert reframer.usage == {"prompt_tokens": 11, "completion_tokens": 6, "cache_read_tokens": 0,
                              "cache_write_tokens": 0}
    assert reframer.text_chars == len("Hello there!")
    assert accumulate(chunks) == {"role": "assistant", "content": "Hello there!"}


def test_it_streams_text_with_usage():
    _, chunks = run(BASIC_STREAM, include_usage=True)
    assert chunks == [
        chunk({"role": "assistant", "content": ""}, usage=None),
        chunk({"content": "Hello"}, usage=None),
        chunk({"content": " there"}, usage=None),
        chunk({"content": "!"}, usage=None),
        chunk({}, "stop", usage=None),
        {"id": "msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK", "object": "chat.completion.chunk", "created": 1770933892,
         "model": "claude-sonnet", "service_tier": "default", "system_fingerprint": None, "choices": [],
         "usage": usage(11, 6)},
    ]


def test_it_streams_tool_calls_with_id_and_name_once():
    reframer, chunks = run(TOOL_STREAM, include_usage=True)
    tool_id = "msg_019Q1hrJbZG26Fb9BQhrkHEr"
    assert chunks == [
        chunk({"role": "assistant", "content": ""}, id=tool_id, usage=None),
        chunk({"content": "I"}, id=tool_id, usage=None),
        chunk({"content": "'ll check the current weather in Paris for you."}, id=tool_id, usage=None),
        chunk({"tool_calls": [{"index": 0, "id": "toolu_01NRLabsLyVHZPKxbKvkfSMn", "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]}, id=tool_id, usage=None),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"locati'}}]}, id=tool_id, usage=None),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'on": "P'}}]}, id=tool_id, usage=None),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "ar"}}]}, id=tool_id, usage=None),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'is"}'}}]}, id=tool_id, usage=None),
        chunk({"tool_calls": [{"index": 1, "id": "toolu_02", "type": "function",
                               "function": {"name": "get_time", "arguments": ""}}]}, id=tool_id, usage=None),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}, id=tool_id, usage=None),
        chunk({}, "tool_calls", id=tool_id, usage=None),
        {"id": tool_id, "object": "chat.completion.chunk", "created": 1770933892, "model": "claude-sonnet",
         "service_tier": "default", "system_fingerprint": None, "choices": [],
         "usage": usage(2477, 65, cached=2000, written=100)},
    ]
    assert reframer.usage == {"prompt_tokens": 2477, "completion_tokens": 65, "cache_read_tokens": 2000,
                              "cache_write_tokens": 100}
    assert reframer.finish_reason == "tool_calls"
    acc = accumulate(chunks)
    assert acc["content"] == "I'll check the current weather in Paris for you."
    assert acc["tool_calls"] == [
        {"index": 0, "id": "toolu_01NRLabsLyVHZPKxbKvkfSMn", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}},
        {"index": 1, "id": "toolu_02", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]


def test_it_lets_message_delta_overwrite_input_usage():
    reframer = AnthropicStreamToChat(model="m", include_usage=True, created=1)
    reframer.feed("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "usage": {"input_tokens": 0, "output_tokens": 1}}})
    chunks = reframer.feed("message_delta", {"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
                                             "usage": {"input_tokens": 40, "cache_read_input_tokens": 8,
                                                       "output_tokens": 16}})
    assert chunks[0]["choices"][0]["finish_reason"] == "length"
    final = reframer.feed("message_stop", {"type": "message_stop"})
    assert final[-1]["usage"] == usage(48, 16, cached=8)
    assert reframer.finish() == []
    assert reframer.complete is True


def test_it_marks_a_stream_cut_short_as_incomplete():
    reframer = AnthropicStreamToChat(model="m", include_usage=True, created=1)
    events = sse_events(BASIC_STREAM)[:5]  # up to " there"
    for event, data in events:
        reframer.feed(event, data)
    assert reframer.finish() == []
    assert reframer.complete is False
    assert reframer.usage_known is True
    assert reframer.finish_reason is None
    assert reframer.text_chars == len("Hello there")
    assert reframer.usage["prompt_tokens"] == 11


def test_it_turns_an_upstream_error_event_into_an_error_data_line():
    reframer = AnthropicStreamToChat(model="m", include_usage=False, created=1)
    reframer.feed("message_start", {"type": "message_start", "message": {"id": "msg_1", "usage": {}}})
    assert reframer.usage_known is False
    assert reframer.feed("ping", {"type": "ping"}) == []
    out = reframer.feed("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert out == [{"error": {"message": "Overloaded", "type": "overloaded_error", "code": "overloaded_error"}}]
    assert reframer.finish() == []
    assert reframer.complete is False


def test_it_skips_thinking_blocks_and_counts_tool_calls_from_zero():
    reframer = AnthropicStreamToChat(model="m", include_usage=False, created=1)
    out = []
    for event, data in [
        ("message_start", {"type": "message_start", "message": {"id": "msg_t", "usage": {"input_tokens": 3}}}),
        ("content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "thinking_delta", "thinking": "Let me see"}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "signature_delta", "signature": "abc"}}),
        ("content_block_stop", {"index": 0}),
        ("content_block_start", {"index": 1, "content_block": {"type": "tool_use", "id": "toolu_9", "name": "f",
                                                               "input": {}}}),
        ("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}}),
        ("message_stop", {}),
    ]:
        out.extend(reframer.feed(event, data))
    assert [c["choices"][0]["delta"] for c in out] == [
        {"role": "assistant", "content": ""},
        {"tool_calls": [{"index": 0, "id": "toolu_9", "type": "function", "function": {"name": "f", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
        {},
    ]
    assert reframer.text_chars == 2


def test_it_streams_the_json_tool_as_content():
    reframer = AnthropicStreamToChat(model="m", include_usage=False, created=1, json_tool=True)
    out = []
    for event, data in [
        ("message_start", {"type": "message_start", "message": {"id": "msg_j", "usage": {"input_tokens": 3}}}),
        ("content_block_start", {"index": 0, "content_block": {"type": "tool_use", "id": "toolu_1",
                                                               "name": "json_tool_call", "input": {}}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"city"'}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": ': "Paris"}'}}),
        ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        ("message_stop", {}),
    ]:
        out.extend(reframer.feed(event, data))
    assert [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) for c in out] == [
        ({"role": "assistant", "content": ""}, None),
        ({"content": '{"city"'}, None),
        ({"content": ': "Paris"}'}, None),
        ({}, "stop"),
    ]
    assert json.loads(accumulate(out)["content"]) == {"city": "Paris"}


def test_it_round_trips_a_json_schema_request():
    fields = {"response_format": {"type": "json_schema", "json_schema": {"name": "place", "schema": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}}
    request = translate(**fields)
    assert request["tool_choice"]["name"] == "json_tool_call"
    response = {"id": "msg_r", "type": "message", "role": "assistant", "stop_reason": "tool_use",
                 "content": [{"type": "tool_use", "id": "toolu_1", "name": request["tool_choice"]["name"],
                              "input": {"city": "Paris"}}],
                 "usage": {"input_tokens": 20, "output_tokens": 10}}
    out = anthropic_to_chat_response(response, model="claude-sonnet",
                                     json_tool=chat_wants_json_tool({"model": "x", **fields}))
    parsed = ChatCompletion.model_validate(out)
    assert json.loads(parsed.choices[0].message.content) == {"city": "Paris"}
    assert parsed.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("include_usage", [True, False])
def test_it_feeds_the_openai_sdk_stream_helper(include_usage):
    from openai.lib.streaming.chat import ChatCompletionStreamState

    state = ChatCompletionStreamState()
    for item in run(TOOL_STREAM, include_usage=include_usage)[1]:
        state.handle_chunk(ChatCompletionChunk.model_validate(item))
    final = state.get_final_completion()
    message = final.choices[0].message
    assert message.content == "I'll check the current weather in Paris for you."
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather", '{"location": "Paris"}'), ("toolu_02", "get_time", "{}")]
    assert final.choices[0].finish_reason == "tool_calls"
    assert (final.usage.prompt_tokens if final.usage else None) == (2477 if include_usage else None)


@pytest.mark.parametrize("stop_reason, finish_reason", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"), ("pause_turn", "stop"), ("model_context_window_exceeded", "length"),
    ("something_new", "stop"),
])
def test_it_maps_every_stop_reason_in_streams(stop_reason, finish_reason):
    stream = BASIC_STREAM.replace('"stop_reason":"end_turn"', f'"stop_reason":"{stop_reason}"')
    assert f'"stop_reason":"{stop_reason}"' in stream
    reframer, chunks = run(stream, include_usage=False)
    assert chunks[-1] == chunk({}, finish_reason)
    assert reframer.finish_reason == finish_reason and reframer.complete is True
