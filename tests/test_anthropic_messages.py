"""The Anthropic Messages endpoint with the official anthropic SDK: native Claude routes and
GPT routes translated to and from OpenAI's format."""

from __future__ import annotations

import base64

import anthropic
import httpx
import pytest

from tests.fake_provider import (
    ANTHROPIC_COUNT_TOKENS,
    ANTHROPIC_MESSAGES,
    OPENAI_CHAT,
    FakeResponse,
    anthropic_message,
    anthropic_usage,
    openai_completion,
    openai_stream_events,
    openai_usage,
)
from tests.helpers import ledger_rows

pytestmark = pytest.mark.django_db(transaction=True)

PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
WEATHER_TOOL = {"name": "get_weather", "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def test_it_passes_claude_requests_through_natively(gateway):
    client = gateway.anthropic(default_headers={"anthropic-beta": "prompt-caching-2024-07-31"})
    message = client.messages.create(model="claude-3-5-sonnet", max_tokens=100, extra_body={"top_k": 5},
                                     messages=[{"role": "user", "content": "hello claude"}])
    sent = gateway.fake.requests_to(ANTHROPIC_MESSAGES)[-1]
    assert sent.json == {"model": "claude-sonnet-4-5-20250929", "max_tokens": 100, "top_k": 5,
                         "messages": [{"role": "user", "content": "hello claude"}]}
    assert sent.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert sent.headers["x-api-key"] == "fake-anthropic-key"
    assert message.content[0].text == "echo: hello claude"
    assert message.model == "claude-3-5-sonnet"
    assert message.usage.input_tokens == 5 and message.usage.output_tokens == 3
    assert message._request_id.startswith("req_")


def test_it_streams_with_the_sdk_helper(gateway):
    with gateway.anthropic().messages.stream(model="claude-3-haiku", max_tokens=50,
                                             messages=[{"role": "user", "content": "stream me"}]) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "echo: stream me"
    assert final.model == "claude-3-haiku" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 3 and final.usage.input_tokens == 5


def test_it_translates_to_an_openai_route_and_back(gateway):
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(json=openai_completion(
        id="chatcmpl-1", model="gpt-4o", text="Salut", usage=openai_usage(130, 2, cached=100))))
    message = gateway.anthropic().messages.create(
        model="gpt-4o", max_tokens=64, system="Be brief.", stop_sequences=["END"], extra_body={"temperature": 0.2},
        metadata={"user_id": "user-42"}, messages=[{"role": "user", "content": "Say hi in French"}])
    assert gateway.fake.requests_to(OPENAI_CHAT)[-1].json == {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi in French"}],
        "max_tokens": 64,
        "stop": ["END"],
        "temperature": 0.2,
        "user": "user-42",
    }
    assert message.content[0].text == "Salut"
    assert message.model == "gpt-4o" and message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 30 and message.usage.cache_read_input_tokens == 100
    assert message.usage.output_tokens == 2


def test_it_streams_a_translated_tool_call_with_the_sdk(gateway):
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(events=openai_stream_events(
        id="chatcmpl-2", model="gpt-4o", pieces=["Checking."], finish_reason="tool_calls",
        usage=openai_usage(40, 12),
        tool_calls=[{"id": "call_9", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}])))
    with gateway.anthropic().messages.stream(model="gpt-4o", max_tokens=100, tools=[WEATHER_TOOL],
                                             messages=[{"role": "user", "content": "Weather?"}]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].text == "Checking."
    tool_use = final.content[1]
    assert tool_use.type == "tool_use" and tool_use.id == "call_9" and tool_use.input == {"city": "Paris"}
    assert final.usage.input_tokens == 40 and final.usage.output_tokens == 12
    sent = gateway.fake.requests_to(OPENAI_CHAT)[-1].json
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["tools"][0]["function"]["name"] == "get_weather"


def test_it_round_trips_tool_results_to_an_openai_route(gateway):
    gateway.anthropic().messages.create(model="gpt-4o-mini", max_tokens=100, tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C and sunny"},
                                     {"type": "text", "text": "Thanks"}]},
    ])
    messages = gateway.fake.requests_to(OPENAI_CHAT)[-1].json["messages"]
    assert messages[1]["tool_calls"][0]["id"] == "toolu_1"
    assert messages[2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "18C and sunny"}
    assert messages[3]["role"] == "user"


def test_it_sends_images_both_ways(gateway):
    image_blocks = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                    {"type": "text", "text": "what are these"}]
    gateway.anthropic().messages.create(model="gpt-4o", max_tokens=10,
                                        messages=[{"role": "user", "content": image_blocks}])
    parts = gateway.fake.requests_to(OPENAI_CHAT)[-1].json["messages"][0]["content"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert urls == [f"data:image/png;base64,{PIXEL}", "https://example.com/cat.jpg"]
    gateway.anthropic().messages.create(model="claude-3-haiku", max_tokens=10,
                                        messages=[{"role": "user", "content": image_blocks}])
    assert gateway.fake.requests_to(ANTHROPIC_MESSAGES)[-1].json["messages"][0]["content"] == image_blocks


def test_it_refuses_top_k_for_openai_routes_naming_it(gateway):
    with pytest.raises(anthropic.BadRequestError) as exc:
        gateway.anthropic().messages.create(model="gpt-4o", max_tokens=10, extra_body={"top_k": 3},
                                            messages=[{"role": "user", "content": "x"}])
    assert "top_k" in exc.value.message
    assert gateway.fake.requests_to(OPENAI_CHAT) == []


def test_it_drops_top_k_when_the_route_is_marked_to(gateway):
    from tests.proxy_helpers import set_route

    set_route("gpt-4o", drop_unsupported_params=True)
    gateway.anthropic().messages.create(model="gpt-4o", max_tokens=10, extra_body={"top_k": 3},
                                        messages=[{"role": "user", "content": "x"}])
    assert "top_k" not in gateway.fake.requests_to(OPENAI_CHAT)[-1].json


def test_it_counts_tokens_natively_and_by_estimate(gateway):
    client = gateway.anthropic()
    native = client.messages.count_tokens(model="claude-3-5-sonnet",
                                          messages=[{"role": "user", "content": "one two three"}])
    assert native.input_tokens == 6  # the fake's own count: 3 words + 3 per message
    assert gateway.fake.requests_to(ANTHROPIC_COUNT_TOKENS)[-1].json["model"] == "claude-sonnet-4-5-20250929"
    estimate = client.messages.with_raw_response.count_tokens(
        model="gpt-4o", messages=[{"role": "user", "content": "one two three"}])
    assert estimate.headers["x-gateway-token-count"] == "estimate"
    assert estimate.parse().input_tokens > 0


def test_it_lists_models_in_anthropic_format(gateway):
    models = list(gateway.anthropic().models.list())
    ids = [m.id for m in models]
    assert "claude-3-5-sonnet" in ids and "gpt-4o" in ids
    assert all(m.type == "model" and m.display_name for m in models)


def test_the_short_path_is_the_same_view(gateway):
    response = httpx.post(f"{gateway.url}/api/ai/anthropic/messages",
                          headers={"authorization": f"Bearer {gateway.key}", "anthropic-version": "2023-06-01"},
                          json={"model": "mock-echo", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    assert response.json()["content"][0]["text"] == "Mock reply: hi"
    assert response.headers["request-id"].startswith("req_")


@pytest.mark.parametrize("model", ["claude-3-5-sonnet", "claude-3-opus", "claude-3-haiku", "gpt-4o",
                                   "gpt-4o-mini", "grok-beta", "perplexity-sonar-large", "mock-echo"])
def test_it_serves_every_catalog_model_streaming_or_not(gateway, model):
    client = gateway.anthropic()
    message = client.messages.create(model=model, max_tokens=50, messages=[{"role": "user", "content": "ping pong"}])
    assert "ping pong" in message.content[0].text and message.usage.output_tokens > 0
    with client.messages.stream(model=model, max_tokens=50,
                                messages=[{"role": "user", "content": "ping pong"}]) as stream:
        final = stream.get_final_message()
    assert "ping pong" in final.content[0].text
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0


def test_it_round_trips_a_native_tool_use_with_the_exact_bodies(gateway):
    gateway.fake.enqueue(ANTHROPIC_MESSAGES, FakeResponse(json=anthropic_message(
        id="msg_t1", model="claude-3-haiku-20240307", stop_reason="tool_use", usage=anthropic_usage(50, 12),
        content=[{"type": "text", "text": "Let me check."},
                 {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}])))
    client = gateway.anthropic()
    question = {"role": "user", "content": "Weather in Paris?"}
    first = client.messages.create(model="claude-3-haiku", max_tokens=100, tools=[WEATHER_TOOL],
                                   tool_choice={"type": "auto"}, messages=[question])
    assert first.stop_reason == "tool_use" and first.model == "claude-3-haiku"
    tool_use = first.content[1]
    assert (tool_use.type, tool_use.id, tool_use.name, tool_use.input) == (
        "tool_use", "toolu_01", "get_weather", {"city": "Paris"})
    follow_up = [
        question,
        {"role": "assistant", "content": [{"type": "text", "text": "Let me check."},
                                          {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C and sunny"}]},
    ]
    second = client.messages.create(model="claude-3-haiku", max_tokens=100, tools=[WEATHER_TOOL], messages=follow_up)
    assert second.content[0].text == "echo: "  # the fake echoes text blocks only; a tool_result has none
    first_sent, second_sent = (r.json for r in gateway.fake.requests_to(ANTHROPIC_MESSAGES))
    assert first_sent == {"model": "claude-3-haiku-20240307", "max_tokens": 100, "tools": [WEATHER_TOOL],
                          "tool_choice": {"type": "auto"}, "messages": [question]}
    assert second_sent == {"model": "claude-3-haiku-20240307", "max_tokens": 100, "tools": [WEATHER_TOOL],
                           "messages": follow_up}
    assert [row.completion_tokens for row in ledger_rows(2)] == [12, 1]


def test_it_forwards_the_clients_anthropic_version(gateway):
    # A version the gateway knows (issue 8: unknown versions are refused, tests/test_priced_options.py).
    client = gateway.anthropic(default_headers={"anthropic-version": "2023-01-01"})
    client.messages.create(model="claude-3-haiku", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert gateway.fake.requests_to(ANTHROPIC_MESSAGES)[-1].headers["anthropic-version"] == "2023-01-01"
    assert ledger_rows(1)[0].status == 200


# --- errors in Anthropic's format -----------------------------------------------------------

def test_it_requires_max_tokens(gateway):
    response = httpx.post(f"{gateway.url}/api/ai/anthropic/v1/messages", headers={"x-api-key": gateway.key},
                          json={"model": "claude-3-haiku", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"] and body["detail"]


# The fake's path and scripted failure statuses per route kind: Anthropic's own 429/529 on a
# native route, OpenAI's 429/503 on a translated one.
UPSTREAM = {"claude-3-haiku": (ANTHROPIC_MESSAGES, 529), "gpt-4o": (OPENAI_CHAT, 503)}


@pytest.mark.parametrize("model", ["claude-3-haiku", "gpt-4o"])
@pytest.mark.parametrize("case,exception,error_type", [
    ("bad_key", anthropic.AuthenticationError, "authentication_error"),
    ("not_allowed", anthropic.PermissionDeniedError, "permission_error"),
    ("unknown_model", anthropic.NotFoundError, "not_found_error"),
    ("bad_request", anthropic.BadRequestError, "invalid_request_error"),
    ("too_large", anthropic.RequestTooLargeError, "request_too_large"),
    ("rate_limited", anthropic.RateLimitError, "rate_limit_error"),
    ("overloaded", anthropic.InternalServerError, "api_error"),
])
def test_it_maps_each_error_to_the_sdk_exception(gateway, alice_org, settings, model, case, exception, error_type):
    from catalog.models import CatalogModel
    from orgs.services import api_key_issue

    path, overloaded_status = UPSTREAM[model]
    kwargs = {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    client = gateway.anthropic()
    if case == "bad_key":
        client = gateway.anthropic(api_key="dm_alice_prod_" + "B" * 40)
    elif case == "not_allowed":
        limited = api_key_issue(organization=alice_org, models=[CatalogModel.objects.get(public_id="mock-echo")])
        client = gateway.anthropic(api_key=limited.plaintext)
    elif case == "unknown_model":
        kwargs["model"] = model + "-nonexistent"
    elif case == "bad_request":
        kwargs["extra_body"] = {"temperature": 1.5}
    elif case == "too_large":
        settings.GATEWAY_MAX_BODY_BYTES = 2_000
        kwargs["messages"] = [{"role": "user", "content": "x" * 3_000}]
    elif case == "rate_limited":
        gateway.fake.enqueue(path, FakeResponse(status=429, headers={"retry-after": "7"}))
    elif case == "overloaded":
        gateway.fake.enqueue(path, FakeResponse(status=overloaded_status))
    with pytest.raises(exception) as exc:
        client.messages.create(**kwargs)
    assert exc.value.body["type"] == "error"
    assert exc.value.body["error"]["type"] == error_type
    assert exc.value.request_id.startswith("req_")
    if case == "rate_limited":
        assert exc.value.response.headers["retry-after"] == "7"
    if case in ("rate_limited", "overloaded"):
        assert len(gateway.fake.requests_to(path)) == 1
    else:
        assert gateway.fake.requests_to(path) == []  # refused by the gateway itself
    if case == "bad_key":
        # Refused before a key was accepted: counted per process, never a ledger row (issue 8).
        assert ledger_rows(1, timeout=0.5) == []
        return
    # Waiting for the ledger row also keeps the server's background ledger flush from racing
    # the database flush at teardown.
    [row] = ledger_rows(1)
    assert row.status == exc.value.status_code and row.request_id == exc.value.request_id


def test_it_passes_a_provider_400_back_in_anthropic_format(gateway):
    gateway.fake.enqueue(ANTHROPIC_MESSAGES, FakeResponse(status=400, json={
        "type": "error", "error": {"type": "invalid_request_error", "message": "messages: roles must alternate"}}))
    with pytest.raises(anthropic.BadRequestError) as exc:
        gateway.anthropic().messages.create(model="claude-3-haiku", max_tokens=10,
                                            messages=[{"role": "user", "content": "x"}])
    assert "roles must alternate" in exc.value.message


def test_it_ends_a_broken_translated_stream_with_an_error_event(gateway):
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(text="one two three four five", drop_after=3))
    with pytest.raises(anthropic.APIStatusError):
        with gateway.anthropic().messages.stream(model="gpt-4o", max_tokens=50,
                                                 messages=[{"role": "user", "content": "x"}]) as stream:
            stream.get_final_message()
