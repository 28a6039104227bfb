"""POST /api/ai/responses with the official openai SDK (`client.responses`), through the real server,
to the fake provider over loopback: an OpenAI-dialect route (gpt-4o) and an Anthropic one
(claude-3-5-sonnet). Bodies sent upstream, typed results, stream events, ledger rows and money."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.fake_provider import (
    ANTHROPIC_MESSAGES,
    OPENAI_CHAT,
    FakeResponse,
    anthropic_message,
    anthropic_usage,
    openai_completion,
    openai_usage,
)
from tests.helpers import ledger_rows
from tests.proxy_helpers import set_budget

pytestmark = pytest.mark.django_db(transaction=True)

PIXEL = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False},
           "strict": True}
GPT4O_PRICES = ("2.50", "10", "1.25", "2.50")
SONNET_PRICES = ("3", "15", "0.30", "3.75")


class Person(BaseModel):
    name: str
    age: int


def _cost(prompt: int, completion: int, prices: tuple[str, ...], cache_read: int = 0, cache_write: int = 0):
    inp, out, cr, cw = (Decimal(p) for p in prices)
    total = (prompt - cache_read - cache_write) * inp + completion * out + cache_read * cr + cache_write * cw
    return (total / Decimal(1_000_000)).quantize(Decimal("1e-10"))


# --- text ----------------------------------------------------------------------------------------


def test_it_answers_text_on_an_openai_route_and_meters_it(gateway):
    raw = gateway.openai().responses.with_raw_response.create(model="gpt-4o", input="hello there")
    reply = raw.parse()
    assert reply.output_text == "echo: hello there"
    assert reply.id.startswith("resp_") and reply.object == "response" and reply.status == "completed"
    assert reply.model == "gpt-4o" and reply.error is None and reply.incomplete_details is None
    assert reply.output[0].type == "message" and reply.output[0].role == "assistant"
    assert (reply.usage.input_tokens, reply.usage.output_tokens, reply.usage.total_tokens) == (5, 3, 8)
    assert reply.usage.input_tokens_details.cached_tokens == 0
    assert reply.usage.output_tokens_details.reasoning_tokens == 0
    assert raw.http_response.json()["store"] is False
    sent = gateway.fake.requests_to(OPENAI_CHAT)[-1]
    assert sent.json == {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello there"}]}
    [row] = ledger_rows(1)
    assert row.endpoint == "responses" and row.status == 200 and row.streamed is False
    assert (row.prompt_tokens, row.completion_tokens, row.tokens_estimated) == (5, 3, False)
    assert row.cost == _cost(5, 3, GPT4O_PRICES) > 0
    assert Decimal(raw.headers["x-gateway-cost-usd"]) == row.cost
    assert row.request_id == raw.headers["x-request-id"] and reply.id == "resp_" + row.request_id[4:]
    assert row.model_name == "gpt-4o" and row.provider == "openai"


def test_it_serves_the_v1_path_too(gateway):
    response = httpx.post(f"{gateway.url}/api/ai/v1/responses", json={"model": "gpt-4o", "input": "hi"},
                          headers={"authorization": f"Bearer {gateway.key}"})
    assert response.status_code == 200
    assert response.json()["output"][0]["content"][0]["text"] == "echo: hi"


def test_it_sends_instructions_to_an_anthropic_route_and_meters_its_usage(gateway):
    gateway.fake.enqueue(ANTHROPIC_MESSAGES, FakeResponse(json=anthropic_message(
        id="msg_1", model="claude-sonnet-4-5-20250929", content=[{"type": "text", "text": "Bonjour"}],
        usage=anthropic_usage(10, 2, cache_read=100, cache_write=20))))
    reply = gateway.openai().responses.create(
        model="claude-3-5-sonnet", instructions="Be brief.", input="Say hi in French", temperature=0.5,
        metadata={"ticket": "42"}, user="user-42")
    assert reply.output_text == "Bonjour"
    assert (reply.instructions, reply.temperature, reply.metadata) == ("Be brief.", 0.5, {"ticket": "42"})
    assert reply.model == "claude-3-5-sonnet"
    assert reply.usage.input_tokens == 130 and reply.usage.input_tokens_details.cached_tokens == 100
    sent = gateway.fake.requests_to(ANTHROPIC_MESSAGES)[-1].json
    assert sent["system"] == [{"type": "text", "text": "Be brief."}]
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hi in French"}]}]
    assert sent["model"] == "claude-sonnet-4-5-20250929" and sent["max_tokens"] == 8192
    assert sent["temperature"] == 0.5 and sent["metadata"] == {"user_id": "user-42"}
    [row] = ledger_rows(1)
    assert row.endpoint == "responses" and row.provider == "anthropic"
    assert (row.prompt_tokens, row.completion_tokens, row.cache_read_tokens, row.cache_write_tokens) == (130, 2, 100, 20)
    assert row.cost == _cost(130, 2, SONNET_PRICES, cache_read=100, cache_write=20)


@pytest.mark.parametrize("model,path,finish,upstream_key,upstream_value", [
    ("gpt-4o", OPENAI_CHAT, "length", "max_completion_tokens", 16),
    ("claude-3-5-sonnet", ANTHROPIC_MESSAGES, "max_tokens", "max_tokens", 16),
])
def test_max_output_tokens_cuts_the_answer_as_incomplete(gateway, model, path, finish, upstream_key, upstream_value):
    gateway.fake.enqueue(path, FakeResponse(text="a b c d", finish_reason=finish))
    reply = gateway.openai().responses.create(model=model, input="count", max_output_tokens=16)
    assert reply.status == "incomplete"
    assert reply.incomplete_details.reason == "max_output_tokens"
    assert reply.max_output_tokens == 16 and reply.output_text == "a b c d"
    assert gateway.fake.requests_to(path)[-1].json[upstream_key] == upstream_value


@pytest.mark.parametrize("model,path", [("gpt-4o", OPENAI_CHAT), ("claude-3-5-sonnet", ANTHROPIC_MESSAGES)])
def test_it_sends_image_input(gateway, model, path):
    reply = gateway.openai().responses.create(model=model, input=[{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": PIXEL, "detail": "low"},
    ]}])
    assert reply.status == "completed"
    sent = gateway.fake.requests_to(path)[-1].json["messages"][0]["content"]
    if path == OPENAI_CHAT:
        assert sent[1] == {"type": "image_url", "image_url": {"url": PIXEL, "detail": "low"}}
    else:
        assert sent[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                       "data": PIXEL.split(",", 1)[1]}}


# --- tools ---------------------------------------------------------------------------------------


def _tool_call_answer(path: str) -> FakeResponse:
    if path == OPENAI_CHAT:
        return FakeResponse(json=openai_completion(
            id="chatcmpl-t", model="gpt-4o", text=None, finish_reason="tool_calls", usage=openai_usage(40, 12),
            tool_calls=[{"id": "call_oslo", "type": "function",
                         "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]))
    return FakeResponse(json=anthropic_message(
        id="msg_t", model="claude-sonnet-4-5-20250929", stop_reason="tool_use", usage=anthropic_usage(40, 12),
        content=[{"type": "text", "text": "Checking."},
                 {"type": "tool_use", "id": "toolu_oslo", "name": "get_weather", "input": {"city": "Oslo"}}]))


@pytest.mark.parametrize("model,path", [("gpt-4o", OPENAI_CHAT), ("claude-3-5-sonnet", ANTHROPIC_MESSAGES)])
def test_function_tools_and_their_results_round_trip(gateway, model, path):
    client = gateway.openai()
    gateway.fake.enqueue(path, _tool_call_answer(path))
    conversation: list = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.responses.create(model=model, input=conversation, tools=[WEATHER], tool_choice="auto")
    [call] = [item for item in first.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments), call.status) == ("get_weather", {"city": "Oslo"}, "completed")
    assert call.call_id == ("call_oslo" if path == OPENAI_CHAT else "toolu_oslo")
    assert first.tools[0].name == "get_weather" and first.tool_choice == "auto"

    conversation += first.output  # the SDK's own output items, sent back as they are
    conversation.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"})
    second = client.responses.create(model=model, input=conversation, tools=[WEATHER])
    assert second.status == "completed" and second.output_text.startswith("echo:")
    sent = gateway.fake.requests_to(path)[-1].json
    if path == OPENAI_CHAT:
        assert sent["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_oslo", "type": "function", "function": {"name": "get_weather",
                                                                 "arguments": "{\"city\":\"Oslo\"}"}}]}
        assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_oslo", "content": "sunny, 21 C"}
        assert sent["tools"] == [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather for a city", "parameters": WEATHER["parameters"],
            "strict": True}}]
    else:
        assert sent["messages"][1] == {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_oslo", "name": "get_weather", "input": {"city": "Oslo"}}]}
        assert sent["messages"][2] == {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_oslo", "content": "sunny, 21 C"}]}
        assert sent["tools"][0]["input_schema"] == WEATHER["parameters"]


@pytest.mark.parametrize("model,path", [("gpt-4o", OPENAI_CHAT), ("claude-3-5-sonnet", ANTHROPIC_MESSAGES)])
def test_text_format_json_schema_is_parsed_by_the_sdk(gateway, model, path):
    if path == OPENAI_CHAT:
        gateway.fake.enqueue(path, FakeResponse(text="{\"name\":\"Alice\",\"age\":30}"))
    else:
        gateway.fake.enqueue(path, FakeResponse(json=anthropic_message(
            id="msg_j", model="claude-sonnet-4-5-20250929", stop_reason="tool_use", usage=anthropic_usage(30, 9),
            content=[{"type": "tool_use", "id": "toolu_j", "name": "json_tool_call",
                      "input": {"name": "Alice", "age": 30}}])))
    parsed = gateway.openai().responses.parse(model=model, input="Alice is 30.", text_format=Person)
    assert parsed.output_parsed == Person(name="Alice", age=30)
    assert parsed.text.format.type == "json_schema" and parsed.text.format.name == "Person"
    sent = gateway.fake.requests_to(path)[-1].json
    if path == OPENAI_CHAT:
        assert sent["response_format"]["type"] == "json_schema"
        assert sent["response_format"]["json_schema"]["name"] == "Person"
        assert sent["response_format"]["json_schema"]["strict"] is True
    else:
        assert sent["tool_choice"] == {"type": "tool", "name": "json_tool_call"}


# --- streaming -----------------------------------------------------------------------------------

TEXT_EVENTS = [
    "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
    # one delta per word of "echo: one two three", as the fake streams it
    "response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
    "response.output_text.delta", "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed",
]


@pytest.mark.parametrize("model,path,prices", [
    ("gpt-4o", OPENAI_CHAT, GPT4O_PRICES), ("claude-3-5-sonnet", ANTHROPIC_MESSAGES, SONNET_PRICES)])
def test_it_streams_typed_events_in_the_documented_order(gateway, model, path, prices):
    events = list(gateway.openai().responses.create(model=model, input="one two three", stream=True))
    assert [e.type for e in events] == TEXT_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert type(events[0]).__name__ == "ResponseCreatedEvent" and events[0].response.status == "in_progress"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "echo: one two three"
    final = events[-1].response
    assert final.status == "completed" and final.output_text == "echo: one two three" and final.model == model
    assert final.usage.input_tokens == 6 and final.usage.output_tokens == 4  # the fake's counts
    if path == OPENAI_CHAT:  # metering needs usage, so the gateway asks for it
        assert gateway.fake.requests_to(path)[-1].json["stream_options"] == {"include_usage": True}
    [row] = ledger_rows(1)
    assert row.endpoint == "responses" and row.streamed and row.status == 200
    assert (row.prompt_tokens, row.completion_tokens, row.tokens_estimated) == (6, 4, False)
    assert row.cost == _cost(6, 4, prices) and row.ttft_ms is not None


@pytest.mark.parametrize("model,path", [("gpt-4o", OPENAI_CHAT), ("claude-3-5-sonnet", ANTHROPIC_MESSAGES)])
def test_the_stream_helper_gives_the_final_response(gateway, model, path):
    with gateway.openai().responses.stream(model=model, input="one two three") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == final.output_text == "echo: one two three"
    assert final.usage.total_tokens == 10


def test_it_streams_function_calls(gateway):
    calls = [{"id": "call_s", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]
    from tests.fake_provider import openai_stream_events

    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(events=openai_stream_events(
        id="chatcmpl-s", model="gpt-4o", pieces=[], tool_calls=calls, finish_reason="tool_calls",
        usage=openai_usage(30, 9))))
    with gateway.openai().responses.stream(model="gpt-4o", input="Weather?", tools=[WEATHER]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert "response.function_call_arguments.done" in [e.type for e in events]
    [call] = final.output
    assert (call.type, call.call_id, json.loads(call.arguments)) == ("function_call", "call_s", {"city": "Oslo"})


def test_a_stream_cut_at_max_output_tokens_ends_incomplete(gateway):
    gateway.fake.enqueue(ANTHROPIC_MESSAGES, FakeResponse(text="a b c", finish_reason="max_tokens"))
    events = list(gateway.openai().responses.create(model="claude-3-5-sonnet", input="count", stream=True,
                                                    max_output_tokens=16))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"


def test_a_client_that_leaves_mid_stream_is_metered_499(gateway):
    words = " ".join(f"word{i}" for i in range(60))
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(text=words, event_delay=0.05))
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", f"{gateway.url}/api/ai/responses",
                           json={"model": "gpt-4o", "input": "count", "stream": True},
                           headers={"authorization": f"Bearer {gateway.key}"}) as response:
            assert response.status_code == 200
            for received, _ in enumerate(response.iter_raw()):
                if received >= 3:
                    break
    [row] = ledger_rows(1)
    assert (row.endpoint, row.status, row.error_type) == ("responses", 499, "client_disconnected")
    assert row.client_disconnected and row.tokens_estimated and row.prompt_tokens > 0 and row.cost > 0


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,param", [
    ({"store": True}, "store"),
    ({"previous_response_id": "resp_123"}, "previous_response_id"),
])
def test_stored_responses_are_refused_naming_the_field(gateway, kwargs, param):
    with pytest.raises(openai.BadRequestError) as info:
        gateway.openai().responses.create(model="gpt-4o", input="hi", **kwargs)
    assert info.value.param == param and info.value.code == "unsupported_parameter"
    assert "does not keep responses" in info.value.message
    [row] = ledger_rows(1)
    assert (row.endpoint, row.status, row.cost) == ("responses", 400, Decimal(0))
    assert row.request_id == info.value.request_id
    assert not gateway.fake.requests_to(OPENAI_CHAT)


@pytest.mark.parametrize("kwargs,param", [
    ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "ftp://x"}]}]},
     "input[0].content[0].image_url"),
    ({"input": "hi", "max_output_tokens": 1}, "max_output_tokens"),
    ({"input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
])
def test_bad_bodies_get_a_400_naming_the_param(gateway, kwargs, param):
    with pytest.raises(openai.BadRequestError) as info:
        gateway.openai().responses.create(model="gpt-4o", **kwargs)
    assert info.value.param == param
    assert info.value.body["type"] == "invalid_request_error"
    [row] = ledger_rows(1)
    assert row.status == 400 and row.endpoint == "responses"


def test_a_translation_refusal_names_the_responses_field(gateway):
    with pytest.raises(openai.BadRequestError) as info:
        gateway.openai().responses.create(model="claude-3-5-sonnet", input="hi", temperature=1.5)
    assert info.value.param == "temperature" and "Anthropic" in info.value.message
    [row] = ledger_rows(1)
    assert row.status == 400 and row.endpoint == "responses"


def test_an_unknown_model_is_a_404_in_openai_format(gateway):
    with pytest.raises(openai.NotFoundError) as info:
        gateway.openai().responses.create(model="gpt-9", input="hi")
    assert info.value.code == "model_not_found" and info.value.param == "model"


def test_a_budget_refusal_is_an_openai_429(gateway, alice_org):
    set_budget(alice_org, "0.00")
    with pytest.raises(openai.RateLimitError) as info:
        gateway.openai().responses.create(model="gpt-4o", input="hi")
    assert info.value.code == "budget_exceeded" and info.value.type == "insufficient_quota"
    assert info.value.response.headers["x-should-retry"] == "false"
    [row] = ledger_rows(1)
    assert (row.endpoint, row.status, row.error_type, row.cost) == ("responses", 429, "budget_exceeded", Decimal(0))
    assert not gateway.fake.requests_to(OPENAI_CHAT)


def test_it_stores_content_only_when_the_org_turns_it_on(gateway, alice_org):
    gateway.openai().responses.create(model="gpt-4o", input="not kept")
    alice_org.store_content = True
    alice_org.save()
    gateway.openai().responses.create(model="gpt-4o", instructions="Be brief.", input="remember me")
    list(gateway.openai().responses.create(model="claude-3-5-sonnet", input="stream me", stream=True))
    rows = ledger_rows(3)
    assert rows[0].prompt_text is None and rows[0].completion_text is None
    assert json.loads(rows[1].prompt_text) == {"instructions": "Be brief.", "input": "remember me"}
    assert rows[1].completion_text == "echo: remember me"
    assert rows[2].completion_text == "echo: stream me"


@pytest.mark.parametrize("model,path", [("gpt-4o", OPENAI_CHAT), ("claude-3-5-sonnet", ANTHROPIC_MESSAGES)])
def test_a_stream_that_breaks_midway_ends_failed(gateway, model, path):
    gateway.fake.enqueue(path, FakeResponse(text="one two three four five six", drop_after=4))
    received = []
    with pytest.raises(openai.APIError) as info:
        for event in gateway.openai().responses.create(model=model, input="count", stream=True):
            received.append(event.type)
    assert received[:2] == ["response.created", "response.in_progress"]
    assert "failed mid-stream" in str(info.value) and "incomplete" in str(info.value)
    [row] = ledger_rows(1)
    assert (row.endpoint, row.status, row.error_type) == ("responses", 502, "upstream_stream_error")
    assert row.tokens_estimated and row.completion_tokens > 0


def test_the_failed_stream_is_typed_events_ending_in_response_failed(gateway):
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(text="one two three four five six", drop_after=4))
    with httpx.stream("POST", f"{gateway.url}/api/ai/responses", json={"model": "gpt-4o", "input": "x", "stream": True},
                      headers={"authorization": f"Bearer {gateway.key}"}, timeout=10) as response:
        lines = [line for line in response.iter_lines() if line.startswith(("event:", "data:"))]
    names = [line.split(": ", 1)[1] for line in lines if line.startswith("event:")]
    data = [json.loads(line.split(": ", 1)[1]) for line in lines if line.startswith("data:")]
    assert names == [d["type"] for d in data]
    assert names[-2:] == ["error", "response.failed"]
    assert [d["sequence_number"] for d in data] == list(range(len(data)))
    assert data[-1]["response"]["status"] == "failed"
    assert data[-1]["response"]["error"]["code"] == "server_error"


def test_the_operator_console_filters_the_ledger_by_the_responses_endpoint(gateway, django_user_model):
    from django.test import Client
    from django.urls import reverse

    gateway.openai().responses.create(model="gpt-4o", input="hi")
    gateway.openai().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert [row.endpoint for row in ledger_rows(2)] == ["responses", "openai"]
    console = Client()
    console.force_login(django_user_model.objects.create_superuser("alice", "alice@example.com", "x" * 20))
    page = console.get(reverse("admin:billing_usagerecord_changelist"), {"endpoint": "responses"})
    assert page.status_code == 200
    assert [row.endpoint for row in page.context["cl"].result_list] == ["responses"]
    assert "OpenAI Responses" in page.content.decode()  # the filter's choice
