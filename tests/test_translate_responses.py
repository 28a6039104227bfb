"""OpenAI Responses <-> Chat Completions translation (ai_proxy.translations.responses_to_chat, responses_to_anthropic).

Request bodies are asserted exactly (and composed with the chat -> Anthropic translation); every
Response object and stream event is validated with the official `openai` SDK's own pydantic types,
and streams are read by a real `openai` client (its typed events, `responses.stream()` and
`get_final_response()`) through an in-memory httpx2 transport, the SDK's HTTP library.
"""

from __future__ import annotations

import json

import httpx2
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from core.errors import GatewayError
from ai_proxy.responses_format import responses_request_validate
from ai_proxy.sse import SSEDecoder
from ai_proxy.translations.chat_to_anthropic import anthropic_to_chat_response, chat_to_anthropic_request
from ai_proxy.translations.responses_to_anthropic import ResponsesFromAnthropic
from ai_proxy.translations.responses_to_chat import (
    ResponsesFromChat,
    chat_to_responses_response,
    responses_error_param,
    responses_output_text,
    responses_to_chat_request,
)
from ai_proxy.usage import usage_from_anthropic, usage_from_openai
from tests.fake_provider import (
    _frame,
    anthropic_message,
    anthropic_stream_events,
    anthropic_usage,
    openai_completion,
    openai_stream_events,
    openai_usage,
)

EVENT = TypeAdapter(ResponseStreamEvent)
PNG = "data:image/png;base64,iVBORw0KGgo="
TOOL = {"type": "function", "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": True}
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}
REQUEST_ID = "req_0123456789abcdef"


def _body(**extra) -> dict:
    return responses_request_validate({"model": "gpt-4o", "input": "Hi, I'm Alice", **extra})


def _chat(body: dict) -> dict:
    return responses_to_chat_request(body).body


# --- requests ----------------------------------------------------------------------------------


def test_it_turns_a_string_input_and_instructions_into_chat_messages():
    chat = _chat(_body(instructions="Answer briefly.", max_output_tokens=64, temperature=0.5, top_p=0.9,
                       user="alice-1", metadata={"k": "v"}, store=False, stream=True,
                       reasoning={"effort": "low", "summary": "auto"}, include=["reasoning.encrypted_content"]))
    assert chat == {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Hi, I'm Alice"}],
        "max_completion_tokens": 64, "temperature": 0.5, "top_p": 0.9, "user": "alice-1",
        "reasoning_effort": "low", "stream": True,
    }


def test_it_translates_parts_images_files_and_history():
    body = _body(input=[
        {"role": "developer", "content": [{"type": "input_text", "text": "In French."}]},
        {"role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": PNG, "detail": "high"},
            {"type": "input_image", "image_url": "https://example.com/a.png"},
            {"type": "input_file", "file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
        ]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "Un chat.", "annotations": []}]},
        {"role": "user", "content": "Merci"},
    ])
    assert _chat(body)["messages"] == [
        {"role": "developer", "content": [{"type": "text", "text": "In French."}]},
        {"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": PNG, "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}},
        ]},
        {"role": "assistant", "content": "Un chat."},
        {"role": "user", "content": "Merci"},
    ]


def test_function_calls_join_the_assistant_turn_and_outputs_become_tool_messages():
    body = _body(tools=[TOOL], tool_choice="required", parallel_tool_calls=False, input=[
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"},
        {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": "{\"city\":\"Rome\"}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "rain"}]},
        {"type": "function_call", "call_id": "call_3", "name": "get_weather", "arguments": "{}"},
    ])
    chat = _chat(body)
    assert chat["messages"] == [
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_3", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
    ]
    assert chat["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city", "parameters": TOOL["parameters"], "strict": True}}]
    assert chat["tool_choice"] == "required"
    assert chat["parallel_tool_calls"] is False
    # and the Anthropic translation pairs them up in one assistant turn
    anthropic = chat_to_anthropic_request(chat, upstream_model="claude-x", default_max_tokens=4096)
    assistant = anthropic["messages"][1]
    assert [b["type"] for b in assistant["content"]] == ["text", "tool_use", "tool_use"]
    assert [b["type"] for b in anthropic["messages"][2]["content"]] == ["tool_result", "tool_result"]
    assert anthropic["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


@pytest.mark.parametrize("choice,expected", [
    ("auto", "auto"),
    ({"type": "function", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}),
    ({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "get_weather"}]},
     {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [
         {"type": "function", "function": {"name": "get_weather"}}]}}),
])
def test_it_translates_tool_choice(choice, expected):
    assert _chat(_body(tools=[TOOL], tool_choice=choice))["tool_choice"] == expected


def test_tool_options_without_tools_are_not_sent():
    chat = _chat(_body(tool_choice="auto", parallel_tool_calls=True, tools=[]))
    assert "tool_choice" not in chat and "parallel_tool_calls" not in chat and "tools" not in chat


def test_text_format_becomes_response_format():
    fmt = {"type": "json_schema", "name": "person", "schema": SCHEMA, "strict": True, "description": "A person"}
    assert _chat(_body(text={"format": fmt}))["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": SCHEMA, "description": "A person", "strict": True}}
    assert _chat(_body(text={"format": {"type": "json_object"}}))["response_format"] == {"type": "json_object"}
    assert "response_format" not in _chat(_body(text={"format": {"type": "text"}}))
    anthropic = chat_to_anthropic_request(_chat(_body(text={"format": fmt})), upstream_model="c", default_max_tokens=9)
    assert anthropic["tool_choice"] == {"type": "tool", "name": "json_tool_call"}
    assert anthropic["tools"][0]["input_schema"] == SCHEMA


@pytest.mark.parametrize("body,param", [
    ({"temperature": 1.5}, "temperature"),
    ({"input": [{"type": "function_call", "call_id": "c1", "name": "f", "arguments": "not json"}]},
     "input[0].arguments"),
    ({"input": [{"role": "user", "content": [{"type": "input_text", "text": "x"},
                                             {"type": "input_image", "image_url": "data:image/bmp;base64,AA"}]}]},
     "input[0].content[1].image_url"),
    ({"tools": [TOOL], "text": {"format": {"type": "json_object"}}}, "text.format"),
    ({"input": [{"role": "system", "content": "Only instructions"}]}, "input"),
])
def test_errors_from_the_chat_translations_name_the_responses_field(body, param):
    validated = _body(**body)
    with pytest.raises(GatewayError) as info:
        request = responses_to_chat_request(validated)
        try:
            chat_to_anthropic_request(request.body, upstream_model="c", default_max_tokens=9)
        except GatewayError as exc:
            raise responses_error_param(exc, request) from None
    assert info.value.status == 400
    assert info.value.param == param
    assert "messages" not in info.value.message and "response_format" not in info.value.message


# --- responses ---------------------------------------------------------------------------------


def _response(chat: dict, body: dict | None = None, model: str = "gpt-4o") -> dict:
    out = chat_to_responses_response(chat, body=body or _body(), model=model, request_id=REQUEST_ID,
                                     created_at=1770933883, usage=usage_from_openai(chat["usage"]))
    Response.model_validate(out)  # the SDK's own type accepts it
    return out


def test_it_builds_a_completed_text_response():
    body = _body(instructions="Be brief.", max_output_tokens=64, temperature=0.2, metadata={"k": "v"})
    chat = openai_completion(id="chatcmpl-1", model="gpt-4o-2024-08-06", text="Hello Alice",
                             usage=openai_usage(12, 2, cached=4))
    out = _response(chat, body, model="gpt-4o")
    assert out["id"] == "resp_0123456789abcdef" and out["object"] == "response"
    assert (out["status"], out["incomplete_details"], out["error"], out["model"]) == ("completed", None, None, "gpt-4o")
    assert out["output"] == [{"id": "msg_0123456789abcdef", "type": "message", "status": "completed",
                              "role": "assistant",
                              "content": [{"type": "output_text", "text": "Hello Alice", "annotations": [],
                                           "logprobs": []}]}]
    assert out["usage"] == {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
                            "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 14}
    assert (out["instructions"], out["max_output_tokens"], out["temperature"], out["top_p"]) == ("Be brief.", 64, 0.2, 1.0)
    assert (out["store"], out["metadata"], out["tool_choice"], out["tools"]) == (False, {"k": "v"}, "auto", [])
    assert out["text"] == {"format": {"type": "text"}}
    assert Response.model_validate(out).output_text == "Hello Alice"
    assert responses_output_text(out) == "Hello Alice"


@pytest.mark.parametrize("finish,reason", [("length", "max_output_tokens"), ("content_filter", "content_filter")])
def test_a_cut_answer_is_incomplete_with_the_reason(finish, reason):
    chat = openai_completion(id="c", model="m", text="Hello", finish_reason=finish, usage=openai_usage(5, 16))
    out = _response(chat)
    assert (out["status"], out["incomplete_details"], out["completed_at"]) == ("incomplete", {"reason": reason}, None)
    assert out["output"][0]["status"] == "incomplete"


def test_tool_calls_become_function_call_items():
    body = _body(tools=[TOOL])
    calls = [{"id": "call_w1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}},
             {"id": "call_w2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]
    chat = openai_completion(id="c", model="m", text=None, finish_reason="tool_calls", usage=openai_usage(30, 20),
                             tool_calls=calls)
    out = _response(chat, body)
    assert out["status"] == "completed"
    assert out["output"] == [
        {"id": "fc_0123456789abcdef_0", "type": "function_call", "status": "completed",
         "arguments": "{\"city\":\"Oslo\"}", "call_id": "call_w1", "name": "get_weather"},
        {"id": "fc_0123456789abcdef_1", "type": "function_call", "status": "completed",
         "arguments": "{\"city\":\"Rome\"}", "call_id": "call_w2", "name": "get_weather"},
    ]
    assert out["tools"] == [{"type": "function", "name": "get_weather", "description": "Weather for a city",
                             "parameters": TOOL["parameters"], "strict": True}]


def test_an_anthropic_answer_composes_through_chat():
    body = _body(text={"format": {"type": "json_schema", "name": "person", "schema": SCHEMA}})
    message = anthropic_message(id="msg_x", model="claude-x", stop_reason="tool_use",
                                usage=anthropic_usage(40, 10, cache_read=8, cache_write=2),
                                content=[{"type": "tool_use", "id": "toolu_1", "name": "json_tool_call",
                                          "input": {"name": "Alice", "age": 30}}])
    chat = anthropic_to_chat_response(message, model="claude-3-5-sonnet", json_tool=True)
    out = chat_to_responses_response(chat, body=body, model="claude-3-5-sonnet", request_id=REQUEST_ID,
                                     created_at=1, usage=usage_from_anthropic(message["usage"]))
    parsed = Response.model_validate(out)
    assert json.loads(parsed.output_text) == {"name": "Alice", "age": 30}
    assert out["usage"]["input_tokens"] == 50 and out["usage"]["input_tokens_details"] == {
        "cached_tokens": 8, "cache_write_tokens": 2}
    assert out["text"]["format"]["name"] == "person"


# --- streams -----------------------------------------------------------------------------------


def _sse_events(events) -> list:
    decoder = SSEDecoder()
    out = []
    for event in events:
        out += decoder.feed(_frame(event))
    return out + decoder.flush()


def _run(framer, upstream_events) -> tuple[bytes, list[dict]]:
    raw = b"".join(framer.feed(event) for event in _sse_events(upstream_events)) + framer.end()
    decoded = SSEDecoder().feed(raw)
    events = []
    for n, event in enumerate(decoded):
        data = json.loads(event.data)
        assert event.event == data["type"]  # the SSE name is the event type
        assert data["sequence_number"] == n
        EVENT.validate_python(data)
        events.append(data)
    return raw, events


def _chat_framer(body: dict | None = None) -> ResponsesFromChat:
    return ResponsesFromChat(body=body or _body(stream=True), model="gpt-4o", request_id=REQUEST_ID,
                             input_tokens_estimate=99)


def test_a_chat_text_stream_becomes_the_documented_event_sequence():
    framer = _chat_framer()
    upstream = openai_stream_events(id="c", model="gpt-4o-2024", pieces=["Hello ", "Alice"],
                                    usage=openai_usage(12, 2))
    _, events = _run(framer, upstream)
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ["Hello ", "Alice"]
    assert events[6]["text"] == "Hello Alice"
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["model"] == "gpt-4o"
    assert final["usage"]["input_tokens"] == 12 and final["usage"]["output_tokens"] == 2
    assert final["output"][0]["content"][0]["text"] == "Hello Alice"
    assert {e["response"]["id"] for e in events if "response" in e} == {"resp_0123456789abcdef"}
    assert framer.complete and framer.usage["prompt_tokens"] == 12 and framer.text_chars == 11


def test_a_tool_call_stream_sends_argument_deltas():
    framer = _chat_framer(_body(stream=True, tools=[TOOL]))
    calls = [{"id": "call_1", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]
    upstream = openai_stream_events(id="c", model="m", pieces=[], tool_calls=calls, finish_reason="tool_calls",
                                    usage=openai_usage(30, 9))
    _, events = _run(framer, upstream)
    types = [e["type"] for e in events]
    # the fake sends an empty role chunk and no text: no message item, just the call
    assert types == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.function_call_arguments.delta", "response.function_call_arguments.done",
                     "response.output_item.done", "response.completed"]
    assert events[2]["item"] == {"id": "fc_0123456789abcdef_0", "type": "function_call", "status": "in_progress",
                                 "arguments": "", "call_id": "call_1", "name": "get_weather"}
    assert events[4]["arguments"] == "{\"city\":\"Oslo\"}"
    assert events[5]["item"]["status"] == "completed"
    assert events[-1]["response"]["output"] == [events[5]["item"]]


def test_a_stream_cut_at_max_tokens_ends_incomplete():
    framer = _chat_framer(_body(stream=True, max_output_tokens=16))
    upstream = openai_stream_events(id="c", model="m", pieces=["a ", "b"], finish_reason="length",
                                    usage=openai_usage(5, 16))
    _, events = _run(framer, upstream)
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-1]["response"]["output"][0]["status"] == "incomplete"
    assert framer.complete


def test_without_provider_usage_the_final_event_carries_the_estimate_and_metering_sees_none():
    framer = _chat_framer()
    upstream = openai_stream_events(id="c", model="m", pieces=["Hello ", "there"], usage=None)
    _, events = _run(framer, upstream)
    assert events[-1]["response"]["usage"]["input_tokens"] == 99
    assert events[-1]["response"]["usage"]["output_tokens"] == 3  # 11 characters at ~4 a token
    assert framer.usage is None and framer.complete


def test_a_stream_that_stops_early_fails():
    framer = _chat_framer()
    upstream = openai_stream_events(id="c", model="m", pieces=["Hel"], usage=None)[:2]
    _, events = _run(framer, upstream)
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["output"][0]["status"] == "incomplete"
    assert not framer.complete


def test_an_upstream_error_chunk_ends_the_stream_failed():
    framer = _chat_framer()
    upstream = openai_stream_events(id="c", model="m", pieces=["Hel"], usage=None)[:2]
    upstream.append((None, {"error": {"message": "overloaded", "type": "server_error"}}))
    _, events = _run(framer, upstream)
    assert events[-2]["type"] == "error" and "overloaded" in events[-2]["message"]
    assert events[-1]["type"] == "response.failed"
    assert framer.upstream_error == "overloaded" and not framer.complete
    assert framer.error("again") == b""  # one terminal event per stream


def test_an_anthropic_stream_composes_through_chat():
    body = _body(stream=True, tools=[TOOL])
    framer = ResponsesFromAnthropic(body=body, model="claude-3-5-sonnet", request_id=REQUEST_ID,
                                    input_tokens_estimate=7, json_tool=False)
    upstream = anthropic_stream_events(id="msg_1", model="claude-x", pieces=["Let me ", "check."],
                                       stop_reason="tool_use", usage=anthropic_usage(40, 12, cache_read=5),
                                       tool_uses=[{"id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}])
    _, events = _run(framer, upstream)
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.output_item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed"]
    final = events[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["message", "function_call"]
    assert final["output"][1]["call_id"] == "toolu_1"
    assert json.loads(final["output"][1]["arguments"]) == {"city": "Oslo"}
    assert final["usage"]["input_tokens"] == 45 and final["usage"]["input_tokens_details"]["cached_tokens"] == 5
    assert framer.complete and framer.usage["completion_tokens"] == 12


def _client(body: bytes) -> openai.OpenAI:
    def handler(request):
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    return openai.OpenAI(api_key="dm_alice_test_x", base_url="http://gateway.test/api/ai",
                         http_client=httpx2.Client(transport=httpx2.MockTransport(handler)), max_retries=0)


def test_the_openai_client_reads_the_stream_and_its_final_response():
    upstream = openai_stream_events(id="c", model="m", pieces=["Hello ", "Alice"], usage=openai_usage(12, 2))
    raw, _ = _run(_chat_framer(), upstream)
    client = _client(raw)
    events = list(client.responses.create(model="gpt-4o", input="Hi", stream=True))
    assert type(events[0]).__name__ == "ResponseCreatedEvent"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Hello Alice"
    with client.responses.stream(model="gpt-4o", input="Hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == ["Hello ", "Alice"]
    assert final.output_text == "Hello Alice" and final.usage.total_tokens == 14


def test_the_openai_client_raises_on_a_failed_stream():
    upstream = openai_stream_events(id="c", model="m", pieces=["Hel"], usage=None)[:2]
    raw, _ = _run(_chat_framer(), upstream)
    with pytest.raises(openai.APIError) as info:
        list(_client(raw).responses.create(model="gpt-4o", input="Hi", stream=True))
    assert "ended before the response was complete" in str(info.value)


def test_reasoning_tokens_the_provider_reports_are_shown():
    usage = openai_usage(10, 20)
    usage["completion_tokens_details"]["reasoning_tokens"] = 12
    out = _response(openai_completion(id="c", model="o4-mini", text="42", usage=usage))
    assert out["usage"]["output_tokens_details"] == {"reasoning_tokens": 12}
    assert out["usage"]["output_tokens"] == 20
    framer = _chat_framer()
    _, events = _run(framer, openai_stream_events(id="c", model="m", pieces=["42"], usage=usage))
    assert events[-1]["response"]["usage"]["output_tokens_details"] == {"reasoning_tokens": 12}


def test_an_empty_answer_is_one_empty_message():
    out = _response(openai_completion(id="c", model="m", text="", usage=openai_usage(3, 0)))
    assert [part["text"] for part in out["output"][0]["content"]] == [""]
    framer = _chat_framer()
    _, events = _run(framer, openai_stream_events(id="c", model="m", pieces=[], usage=openai_usage(3, 0)))
    assert [e["type"] for e in events][2:] == [
        "response.output_item.added", "response.content_part.added", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    assert Response.model_validate(events[-1]["response"]).output_text == ""


def test_a_refusal_is_a_refusal_part():
    chat = openai_completion(id="c", model="m", text=None, usage=openai_usage(3, 4))
    chat["choices"][0]["message"]["refusal"] = "I can't help with that."
    out = _response(chat)
    assert out["output"][0]["content"] == [{"type": "refusal", "refusal": "I can't help with that."}]


@pytest.mark.parametrize("chat", [
    {"choices": {"0": "x"}}, {"choices": ["x"]}, {"choices": [{"message": "x"}]},
    {"choices": [{"message": {"content": 3, "tool_calls": [7, {"function": "f", "id": 9}]}}]},
    {"choices": [{"message": {"content": [{"text": 5}, "x"], "refusal": 4}}]},
])
def test_a_malformed_provider_answer_is_still_a_valid_response(chat):
    out = chat_to_responses_response({**chat, "usage": None}, body=_body(), model="gpt-4o", request_id=REQUEST_ID,
                                     created_at=1, usage={"prompt_tokens": 1, "completion_tokens": 0})
    Response.model_validate(out)


def test_malformed_chunks_are_skipped():
    framer = _chat_framer()
    bad = [(None, {"choices": {"a": 1}}), (None, {"choices": ["x", {"delta": "y"}]}),
           (None, {"choices": [{"index": 0, "delta": {"content": 5, "tool_calls": ["x", {"index": "a"}]}}]})]
    upstream = openai_stream_events(id="c", model="m", pieces=["ok"], usage=openai_usage(1, 1))
    _, events = _run(framer, bad + upstream)
    assert events[-1]["type"] == "response.completed"
