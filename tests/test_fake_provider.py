"""The fake provider speaks the real wire formats: plain HTTP checks plus both official SDKs
pointed straight at it (if the SDKs parse it, the gateway's adapters are tested against the truth)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.fake_fixtures import point_catalog_at
from tests.fake_provider import (
    ANTHROPIC_MESSAGES,
    OPENAI_CHAT,
    FakeProvider,
    FakeResponse,
    anthropic_stream_events,
    anthropic_usage,
    openai_completion,
    openai_stream_events,
    openai_usage,
)

OPENAI_HEADERS = {"Authorization": "Bearer sk-test"}
ANTHROPIC_HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
HELLO = [{"role": "user", "content": "hello big world"}]


def sse_data(text: str) -> list[str]:
    return [line[len("data: "):] for line in text.split("\n") if line.startswith("data: ")]


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for frame in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.split("\n") if ": " in line)
        if lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_it_echoes_the_last_user_text_with_deterministic_usage(fake_provider):
    body = {"model": "gpt-4o", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "first part"}, {"type": "text", "text": "second"}]},
    ]}
    r = httpx.post(fake_provider.url + OPENAI_CHAT, json=body, headers=OPENAI_HEADERS)

    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["x-request-id"].startswith("req_")
    data = r.json()
    assert data["object"] == "chat.completion"
    assert data["model"] == "gpt-4o"
    assert data["choices"][0]["message"] == {
        "role": "assistant", "content": "echo: first part second", "refusal": None, "annotations": []}
    assert data["choices"][0]["finish_reason"] == "stop"
    # 5 words in the messages + 3 per message; 4 words in the reply.
    assert data["usage"]["prompt_tokens"] == 11
    assert data["usage"]["completion_tokens"] == 4
    assert data["usage"]["total_tokens"] == 15


def test_it_streams_openai_one_word_per_chunk_and_usage_only_when_asked(fake_provider):
    url = fake_provider.url + OPENAI_CHAT
    with_usage = httpx.post(url, headers=OPENAI_HEADERS, json={
        "model": "gpt-4o", "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}})
    without = httpx.post(url, headers=OPENAI_HEADERS, json={"model": "gpt-4o", "messages": HELLO, "stream": True})

    assert with_usage.headers["content-type"].startswith("text/event-stream")
    data = sse_data(with_usage.text)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]] == ["echo: ", "hello ", "big ", "world"]
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4

    plain = [json.loads(d) for d in sse_data(without.text)[:-1]]
    assert all(c["choices"] and "usage" not in c for c in plain)


def test_it_answers_anthropic_messages_and_streams_the_full_event_sequence(fake_provider):
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "system": "be brief", "messages": HELLO}
    r = httpx.post(fake_provider.url + ANTHROPIC_MESSAGES, json=body, headers=ANTHROPIC_HEADERS)
    streamed = httpx.post(fake_provider.url + ANTHROPIC_MESSAGES, json={**body, "stream": True},
                          headers=ANTHROPIC_HEADERS)

    assert r.status_code == 200
    assert r.headers["request-id"].startswith("req_")
    message = r.json()
    assert message["type"] == "message" and message["id"].startswith("msg_")
    assert message["content"] == [{"type": "text", "text": "echo: hello big world"}]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] == 3 + 2 + 3  # message words + system words + 3 per message
    assert message["usage"]["output_tokens"] == 4

    events = sse_events(streamed.text)
    names = [name for name, _ in events]
    assert names == ["message_start", "content_block_start", "ping"] + ["content_block_delta"] * 4 + [
        "content_block_stop", "message_delta", "message_stop"]
    assert all(data["type"] == name for name, data in events)
    assert "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta") == "echo: hello big world"
    assert events[0][1]["message"]["usage"]["input_tokens"] == 8
    assert events[-2][1]["usage"] == {"output_tokens": 4}


def test_it_counts_tokens_and_lists_models_in_both_formats(fake_provider):
    count = httpx.post(fake_provider.url + "/v1/messages/count_tokens", headers=ANTHROPIC_HEADERS,
                       json={"model": "claude-sonnet-4-5", "messages": HELLO})
    openai_models = httpx.get(fake_provider.url + "/v1/models", headers=OPENAI_HEADERS).json()
    anthropic_models = httpx.get(fake_provider.url + "/v1/models", headers=ANTHROPIC_HEADERS).json()

    assert count.json() == {"input_tokens": 6}
    assert openai_models["object"] == "list" and openai_models["data"][0]["object"] == "model"
    assert anthropic_models["has_more"] is False and anthropic_models["data"][0]["type"] == "model"


def test_it_refuses_requests_a_real_provider_would_refuse(fake_provider):
    url = fake_provider.url
    no_key = httpx.post(url + OPENAI_CHAT, json={"model": "gpt-4o", "messages": HELLO})
    no_version = httpx.post(url + ANTHROPIC_MESSAGES, headers={"x-api-key": "k"},
                            json={"model": "c", "max_tokens": 5, "messages": HELLO})
    no_max_tokens = httpx.post(url + ANTHROPIC_MESSAGES, headers=ANTHROPIC_HEADERS, json={"model": "c", "messages": HELLO})

    assert no_key.status_code == 401 and no_key.json()["error"]["type"] == "invalid_request_error"
    assert no_version.status_code == 400 and "anthropic-version" in no_version.json()["error"]["message"]
    assert no_max_tokens.status_code == 400
    assert no_max_tokens.json()["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}


def test_it_logs_requests_with_lowercased_headers_and_parsed_json(fake_provider):
    httpx.post(fake_provider.url + OPENAI_CHAT, json={"model": "gpt-4o", "messages": HELLO},
               headers={"Authorization": "Bearer sk-test", "X-Custom": "Yes"})

    [record] = fake_provider.requests
    assert (record.method, record.path) == ("POST", OPENAI_CHAT)
    assert record.headers["authorization"] == "Bearer sk-test"
    assert record.headers["x-custom"] == "Yes"
    assert record.json == {"model": "gpt-4o", "messages": HELLO}
    assert record.disconnected is False
    fake_provider.clear()
    assert fake_provider.requests == []


def test_it_consumes_queued_responses_in_order_then_falls_back_to_the_default(fake_provider):
    fake_provider.enqueue(OPENAI_CHAT, FakeResponse(status=429, headers={"retry-after": "7"}),
                          FakeResponse(status=503, json={"error": {"message": "busy", "type": "server_error"}}))

    def post() -> httpx.Response:
        return httpx.post(fake_provider.url + OPENAI_CHAT, json={"model": "gpt-4o", "messages": HELLO},
                          headers=OPENAI_HEADERS)

    first, second, third = post(), post(), post()
    assert first.status_code == 429 and first.headers["retry-after"] == "7"
    assert first.json()["error"]["type"] == "rate_limit_exceeded"
    assert second.status_code == 503 and second.json() == {"error": {"message": "busy", "type": "server_error"}}
    assert third.status_code == 200 and third.json()["choices"][0]["message"]["content"] == "echo: hello big world"


def test_it_overrides_text_finish_reason_and_usage_in_the_default_reply(fake_provider):
    fake_provider.enqueue(OPENAI_CHAT, FakeResponse(text="cut short", finish_reason="length",
                                                    usage={"prompt_tokens_details": {"cached_tokens": 2}}))
    fake_provider.enqueue(ANTHROPIC_MESSAGES, FakeResponse(finish_reason="max_tokens",
                                                           usage={"cache_read_input_tokens": 40}))

    chat = httpx.post(fake_provider.url + OPENAI_CHAT, json={"model": "gpt-4o", "messages": HELLO},
                      headers=OPENAI_HEADERS).json()
    message = httpx.post(fake_provider.url + ANTHROPIC_MESSAGES, headers=ANTHROPIC_HEADERS,
                         json={"model": "c", "max_tokens": 5, "messages": HELLO, "stream": True}).text

    assert chat["choices"][0]["message"]["content"] == "cut short"
    assert chat["choices"][0]["finish_reason"] == "length"
    assert chat["usage"]["completion_tokens"] == 2
    assert chat["usage"]["prompt_tokens_details"] == {"cached_tokens": 2}
    events = dict(sse_events(message))
    assert events["message_start"]["message"]["usage"]["cache_read_input_tokens"] == 40
    assert events["message_delta"]["delta"]["stop_reason"] == "max_tokens"


def test_it_drops_the_connection_mid_stream(fake_provider):
    fake_provider.enqueue(OPENAI_CHAT, FakeResponse(drop_after=2))
    received = []
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream("POST", fake_provider.url + OPENAI_CHAT, headers=OPENAI_HEADERS,
                          json={"model": "gpt-4o", "messages": HELLO, "stream": True}) as r:
            received.extend(line for line in r.iter_lines() if line.startswith("data: "))

    assert len(received) == 2
    assert fake_provider.requests[0].disconnected is True


def test_it_records_a_client_that_goes_away_mid_stream(fake_provider):
    fake_provider.stream_delay = 0.05
    with httpx.stream("POST", fake_provider.url + OPENAI_CHAT, headers=OPENAI_HEADERS,
                      json={"model": "gpt-4o", "messages": HELLO, "stream": True}) as r:
        next(r.iter_lines())
    # The server notices on its next write, one stream_delay later.
    deadline = time.monotonic() + 3
    while not fake_provider.requests[0].disconnected and time.monotonic() < deadline:
        time.sleep(0.01)

    assert fake_provider.requests[0].disconnected is True


def test_it_closes_without_answering_on_drop_after_zero(fake_provider):
    fake_provider.enqueue(OPENAI_CHAT, FakeResponse(drop_after=0))
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(fake_provider.url + OPENAI_CHAT, json={"model": "gpt-4o", "messages": HELLO}, headers=OPENAI_HEADERS)


def test_it_delays_and_hangs_until_cleared(fake_provider):
    fake_provider.enqueue(OPENAI_CHAT, FakeResponse(delay=0.3), FakeResponse(hang=True))
    body = {"model": "gpt-4o", "messages": HELLO}

    started = time.monotonic()
    assert httpx.post(fake_provider.url + OPENAI_CHAT, json=body, headers=OPENAI_HEADERS).status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(fake_provider.url + OPENAI_CHAT, json=body, headers=OPENAI_HEADERS, timeout=0.3)


def test_it_paces_streams_by_setting_header_and_scripted_delay(fake_provider):
    body = {"model": "gpt-4o", "messages": HELLO, "stream": True}  # 7 events: role, 4 words, finish, [DONE]
    url = fake_provider.url + OPENAI_CHAT

    def timed(**kwargs) -> float:
        started = time.monotonic()
        httpx.post(url, json=body, **kwargs)
        return time.monotonic() - started

    fake_provider.stream_delay = 0.03
    assert timed(headers=OPENAI_HEADERS) >= 7 * 0.03
    fake_provider.stream_delay = 0.0
    assert timed(headers={**OPENAI_HEADERS, "x-fake-stream-delay-ms": "30"}) >= 7 * 0.03
    fake_provider.enqueue(OPENAI_CHAT, FakeResponse(event_delay=0.03))
    assert timed(headers=OPENAI_HEADERS) >= 7 * 0.03
    fake_provider.clear()
    assert fake_provider.stream_delay == 0.0


def test_it_sends_scripted_raw_and_named_events(fake_provider):
    fake_provider.enqueue(OPENAI_CHAT, FakeResponse(events=[": keepalive\n\n", (None, {"a": 1}), ("custom", "x")]))
    r = httpx.post(fake_provider.url + OPENAI_CHAT, json={"model": "gpt-4o", "messages": HELLO},
                   headers=OPENAI_HEADERS)

    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.text == ': keepalive\n\ndata: {"a":1}\n\nevent: custom\ndata: x\n\n'


# --- the official SDKs, pointed straight at the fake ------------------------------------------


def test_it_is_parsed_by_the_openai_sdk(fake_provider):
    client = openai.OpenAI(base_url=fake_provider.url + "/v1", api_key="x", max_retries=0)

    completion = client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert completion.choices[0].message.content == "echo: hello big world"
    assert completion.usage.prompt_tokens == 6 and completion.usage.completion_tokens == 4

    chunks = list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True,
                                                 stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello big world"
    assert chunks[-1].usage.total_tokens == 10

    with client.chat.completions.stream(model="gpt-4o", messages=HELLO) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "echo: hello big world"
    assert [m.id for m in client.models.list()] == ["gpt-4o", "gpt-4o-mini"]


def test_it_feeds_scripted_tool_calls_and_errors_to_the_openai_sdk(fake_provider):
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Riga"}'}}
    fake_provider.enqueue(OPENAI_CHAT, FakeResponse(json=openai_completion(
        id="chatcmpl-t", model="gpt-4o", text=None, finish_reason="tool_calls", usage=openai_usage(9, 5),
        tool_calls=[call])))
    fake_provider.enqueue(OPENAI_CHAT, FakeResponse(events=openai_stream_events(
        id="chatcmpl-s", model="gpt-4o", pieces=[], finish_reason="tool_calls", usage=openai_usage(9, 5),
        tool_calls=[call])))
    fake_provider.enqueue(OPENAI_CHAT, FakeResponse(status=429))
    client = openai.OpenAI(base_url=fake_provider.url + "/v1", api_key="x", max_retries=0)

    message = client.chat.completions.create(model="gpt-4o", messages=HELLO).choices[0].message
    assert message.tool_calls[0].function.arguments == '{"city":"Riga"}'
    with client.chat.completions.stream(model="gpt-4o", messages=HELLO,
                                        stream_options={"include_usage": True}) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.choices[0].message.tool_calls[0].id == "call_1"  # sent once, so not "call_1call_1"
    assert final.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert final.usage.completion_tokens == 5
    with pytest.raises(openai.RateLimitError) as error:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert error.value.request_id.startswith("req_")


def test_it_is_parsed_by_the_anthropic_sdk(fake_provider):
    client = anthropic.Anthropic(base_url=fake_provider.url, api_key="x", max_retries=0)

    message = client.messages.create(model="fake-claude", max_tokens=50, messages=HELLO)
    assert message.content[0].text == "echo: hello big world"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (6, 4)

    with client.messages.stream(model="fake-claude", max_tokens=50, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: hello big world"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 4

    assert client.messages.count_tokens(model="fake-claude", messages=HELLO).input_tokens == 6
    assert [m.id for m in client.models.list()][0] == "claude-sonnet-4-5-20250929"
    # This SDK version authenticates with a bearer token rather than x-api-key; the fake takes both.
    headers = fake_provider.requests[0].headers
    assert headers.get("x-api-key") == "x" or headers.get("authorization") == "Bearer x"
    assert headers["anthropic-version"]


def test_it_feeds_scripted_tool_use_and_errors_to_the_anthropic_sdk(fake_provider):
    fake_provider.enqueue(ANTHROPIC_MESSAGES, FakeResponse(events=anthropic_stream_events(
        id="msg_t", model="fake-claude", pieces=["Let me ", "check."], stop_reason="tool_use",
        usage=anthropic_usage(20, 7, cache_read=100),
        tool_uses=[{"id": "toolu_1", "name": "get_weather", "input": {"city": "Riga"}}])))
    fake_provider.enqueue(ANTHROPIC_MESSAGES, FakeResponse(status=529))
    client = anthropic.Anthropic(base_url=fake_provider.url, api_key="x", max_retries=0)

    with client.messages.stream(model="fake-claude", max_tokens=50, messages=HELLO) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].text == "Let me check."
    assert final.content[1].input == {"city": "Riga"}
    assert final.usage.cache_read_input_tokens == 100 and final.usage.output_tokens == 7
    with pytest.raises(anthropic.APIStatusError) as error:
        client.messages.create(model="fake-claude", max_tokens=50, messages=HELLO)
    assert error.value.status_code == 529
    assert error.value.body["error"]["type"] == "overloaded_error"


# --- standalone mode and the catalog helper ---------------------------------------------------


def test_it_runs_standalone_for_the_benchmark():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen([sys.executable, "-m", "tests.fake_provider", "--port", str(port)], cwd=root,
                               stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(root)})
    try:
        assert b"fake provider on" in process.stdout.readline()
        url = f"http://127.0.0.1:{port}"
        r = httpx.post(url + OPENAI_CHAT, json={"model": "gpt-4o", "messages": HELLO}, headers=OPENAI_HEADERS)
        assert r.json()["choices"][0]["message"]["content"] == "echo: hello big world"
        assert httpx.post(url + "/_fake/config", json={"stream_delay_ms": 5}).json() == {"stream_delay_ms": 5.0}
    finally:
        process.kill()
        process.wait(timeout=5)


def test_it_works_as_a_context_manager_on_a_free_port():
    with FakeProvider() as fake:
        assert fake.port > 0
        assert httpx.get(fake.url + "/v1/models", headers=OPENAI_HEADERS).status_code == 200


def test_it_points_the_seeded_catalog_at_the_fake(db, fake_provider, monkeypatch):
    from catalog.selectors import catalog_get_sync

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    point_catalog_at(fake_provider.url, monkeypatch)

    catalog = catalog_get_sync()
    gpt = catalog.resolve("gpt-4o").routes[0].provider
    claude = catalog.resolve("claude-3-5-sonnet").routes[0].provider
    assert gpt.base_url == fake_provider.url + "/v1"
    assert claude.base_url == fake_provider.url
    assert gpt.secret() == "fake-openai-key"
    assert claude.secret() == "fake-anthropic-key"
