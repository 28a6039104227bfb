"""POST /api/ai/chat/completions with the official openai SDK, through the real server, to the fake provider."""

from __future__ import annotations

import base64

import httpx
import openai
import pytest

from tests.fake_provider import (
    ANTHROPIC_MESSAGES,
    OPENAI_CHAT,
    FakeResponse,
    anthropic_message,
    anthropic_stream_events,
    anthropic_usage,
)

pytestmark = pytest.mark.django_db(transaction=True)

PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


def test_it_completes_on_an_openai_route(gateway):
    reply = gateway.openai().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello there"}]
    )
    assert reply.choices[0].message.content == "echo: hello there"
    assert reply.model == "gpt-4o"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens == 5 and reply.usage.completion_tokens == 3 and reply.usage.total_tokens == 8
    assert reply.usage.prompt_tokens_details.cached_tokens == 0
    sent = gateway.fake.requests_to(OPENAI_CHAT)[-1]
    assert sent.json == {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello there"}]}
    assert sent.headers["authorization"] == "Bearer fake-openai-key"
    assert reply._request_id.startswith("req_")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_providers_cookies_are_never_sent_back_to_it(gateway, host):
    # One HTTP client per worker carries every organization's requests: a cookie one answer sets
    # (a load balancer's affinity, a session) must not ride along on the next tenant's request.
    # By a host name too: aiohttp's own cookie jar ignores cookies from IP addresses only.
    from catalog.models import Provider

    provider = Provider.objects.get(name="openai")
    provider.base_url = provider.base_url.replace("127.0.0.1", host)
    provider.save(update_fields=["base_url", "updated_at"])
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(headers={"set-cookie": "affinity=first-caller; Path=/"}))
    client = gateway.openai()
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    first, second = gateway.fake.requests_to(OPENAI_CHAT)[-2:]
    assert "cookie" not in second.headers, second.headers
    # Otherwise the provider sees the same request headers each time.
    assert first.headers.keys() == second.headers.keys()
    assert second.headers["content-type"] == "application/json"
    assert second.headers["accept-encoding"] == "identity"


def test_it_answers_with_the_alias_the_client_asked_for(gateway):
    reply = gateway.openai().chat.completions.create(
        model="gpt-4o-2024-08-06", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.model == "gpt-4o-2024-08-06"
    assert gateway.fake.requests_to(OPENAI_CHAT)[-1].json["model"] == "gpt-4o"


def test_it_streams_without_a_usage_chunk_unless_asked(gateway):
    chunks = list(gateway.openai().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "one two three"}], stream=True
    ))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: one two three"
    assert all(c.choices for c in chunks), "no usage chunk when include_usage was not asked"
    assert all(c.model == "gpt-4o" and c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    # Metering needs usage, so the gateway always asks upstream for it.
    assert gateway.fake.requests_to(OPENAI_CHAT)[-1].json["stream_options"] == {"include_usage": True}


def test_it_streams_a_usage_chunk_when_asked(gateway):
    chunks = list(gateway.openai().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "one two three"}], stream=True,
        stream_options={"include_usage": True},
    ))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert all(c.usage is None for c in chunks[:-1])


def test_it_translates_to_an_anthropic_route_and_back(gateway):
    gateway.fake.enqueue(ANTHROPIC_MESSAGES, FakeResponse(json=anthropic_message(
        id="msg_1", model="claude-sonnet-4-5-20250929", content=[{"type": "text", "text": "Bonjour"}],
        usage=anthropic_usage(10, 2, cache_read=100, cache_write=20))))
    reply = gateway.openai().chat.completions.create(
        model="claude-3-5-sonnet",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi in French"}],
        temperature=0.5, stop="END", user="user-42",
    )
    sent = gateway.fake.requests_to(ANTHROPIC_MESSAGES)[-1]
    assert sent.headers["x-api-key"] == "fake-anthropic-key"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    # The whole body, exactly: max_tokens is the catalog's max output when the client gives none.
    assert sent.json == {
        "model": "claude-sonnet-4-5-20250929",
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hi in French"}]}],
        "max_tokens": 8192,
        "temperature": 0.5,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"},
    }
    assert reply.choices[0].message.content == "Bonjour"
    assert reply.model == "claude-3-5-sonnet"
    assert reply.usage.prompt_tokens == 130 and reply.usage.completion_tokens == 2
    assert reply.usage.prompt_tokens_details.cached_tokens == 100


def test_it_streams_tool_calls_from_an_anthropic_route(gateway):
    gateway.fake.enqueue(ANTHROPIC_MESSAGES, FakeResponse(events=anthropic_stream_events(
        id="msg_2", model="claude-sonnet-4-5-20250929", pieces=["Let me ", "check."], stop_reason="tool_use",
        usage=anthropic_usage(20, 9), tool_uses=[{"id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}])))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    client = gateway.openai()
    with client.chat.completions.stream(
        model="claude-3-5-sonnet", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=tools,
        stream_options={"include_usage": True},
    ) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Let me check."
    assert final.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls[0].id == "toolu_1"
    assert message.tool_calls[0].function.name == "get_weather"
    assert message.tool_calls[0].function.arguments == '{"city":"Paris"}'
    assert final.usage.prompt_tokens == 20 and final.usage.completion_tokens == 9
    sent = gateway.fake.requests_to(ANTHROPIC_MESSAGES)[-1].json
    assert sent["tools"][0]["name"] == "get_weather" and sent["stream"] is True


def test_it_sends_images_to_anthropic_as_sources_without_fetching(gateway):
    gateway.openai().chat.completions.create(model="claude-3-haiku", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what are these"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]}])
    content = gateway.fake.requests_to(ANTHROPIC_MESSAGES)[-1].json["messages"][0]["content"]
    assert {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}} in content
    assert {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}} in content


def test_it_lists_models_with_the_sdk(gateway):
    ids = {m.id for m in gateway.openai().models.list()}
    assert {"claude-3-5-sonnet", "gpt-4o", "grok-beta", "perplexity-sonar-large", "mock-echo"} <= ids


@pytest.mark.parametrize("model", ["claude-3-5-sonnet", "claude-3-opus", "claude-3-haiku", "gpt-4o",
                                   "gpt-4o-mini", "grok-beta", "perplexity-sonar-large", "mock-echo"])
def test_it_serves_every_catalog_model_streaming_or_not(gateway, model):
    client = gateway.openai()
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "ping pong"}])
    assert "ping pong" in reply.choices[0].message.content and reply.usage.total_tokens > 0
    chunks = list(client.chat.completions.create(model=model, messages=[{"role": "user", "content": "ping pong"}],
                                                 stream=True, stream_options={"include_usage": True}))
    assert "ping pong" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage.total_tokens > 0


# --- errors ---------------------------------------------------------------------------------

def test_it_rejects_an_unknown_model_with_404(gateway):
    with pytest.raises(openai.NotFoundError) as exc:
        gateway.openai().chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert exc.value.code == "model_not_found" and exc.value.param == "model"
    assert exc.value.request_id.startswith("req_")


def test_it_rejects_a_model_the_key_may_not_use_with_403(gateway, alice_org):
    from catalog.models import CatalogModel
    from orgs.services import api_key_issue

    limited = api_key_issue(organization=alice_org, models=[CatalogModel.objects.get(public_id="mock-echo")])
    with pytest.raises(openai.PermissionDeniedError) as exc:
        gateway.openai(api_key=limited.plaintext).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert exc.value.code == "model_not_allowed"


def test_it_names_the_missing_secret_with_503(gateway, monkeypatch):
    monkeypatch.delenv("XAI_API_KEY")
    with pytest.raises(openai.InternalServerError) as exc:
        gateway.openai().chat.completions.create(model="grok-beta", messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == 503
    assert "XAI_API_KEY" in exc.value.message


@pytest.mark.parametrize("kwargs,param", [
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": 3}, "temperature"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
])
def test_it_validates_before_sending_upstream(gateway, kwargs, param):
    with pytest.raises(openai.BadRequestError) as exc:
        gateway.openai().chat.completions.create(model="gpt-4o", **kwargs)
    assert exc.value.param == param
    assert gateway.fake.requests_to(OPENAI_CHAT) == []


def test_it_refuses_unsupported_parameters_for_anthropic_routes(gateway):
    with pytest.raises(openai.BadRequestError) as exc:
        gateway.openai().chat.completions.create(
            model="claude-3-haiku", messages=[{"role": "user", "content": "x"}], seed=7)
    assert exc.value.param == "seed" and "seed" in exc.value.message
    assert gateway.fake.requests_to(ANTHROPIC_MESSAGES) == []


@pytest.mark.parametrize("content,headers,status,code", [
    (b"{not json", {"content-type": "application/json"}, 400, "invalid_json"),
    (b'{"model": "gpt-4o"}', {"content-type": "text/plain"}, 400, "invalid_content_type"),
    (b"[1, 2]", {"content-type": "application/json"}, 400, "invalid_json"),
])
def test_it_answers_malformed_requests_with_400(gateway, content, headers, status, code):
    response = httpx.post(f"{gateway.url}/api/ai/chat/completions", content=content,
                          headers={**headers, "authorization": f"Bearer {gateway.key}"})
    assert response.status_code == status
    body = response.json()
    assert body["error"]["code"] == code and body["detail"] == body["error"]["message"]
    assert response.headers["x-request-id"] == body["request_id"]


def test_it_answers_an_oversized_body_with_413(gateway, settings):
    settings.GATEWAY_MAX_BODY_BYTES = 1000
    response = httpx.post(f"{gateway.url}/api/ai/chat/completions",
                          json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 5000}]},
                          headers={"authorization": f"Bearer {gateway.key}"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_it_passes_a_provider_400_back_without_retrying(gateway):
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(status=400, json={"error": {
        "message": "Invalid 'messages[0].content': too long.", "type": "invalid_request_error",
        "param": None, "code": None}}))
    with pytest.raises(openai.BadRequestError) as exc:
        gateway.openai().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert "too long" in exc.value.message
    assert len(gateway.fake.requests_to(OPENAI_CHAT)) == 1


def test_it_rejects_a_bad_key_in_openai_format(gateway):
    with pytest.raises(openai.AuthenticationError) as exc:
        gateway.openai(api_key="dm_alice_prod_" + "A" * 40).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert exc.value.code == "invalid_api_key"


def test_it_never_leaks_provider_secrets_in_errors(gateway):
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(status=500), FakeResponse(status=500))
    with pytest.raises(openai.APIStatusError) as exc:
        gateway.openai().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == 502
    assert "fake-openai-key" not in exc.value.response.text
    assert "gpt-4o" in exc.value.message


@pytest.mark.parametrize("path,shape", [
    ("/api/ai/assistants", "openai"), ("/api/ai/chat/completions/", "openai"), ("/api/ai/anthropic/v2/messages", "anthropic"),
])
def test_it_answers_unknown_api_paths_with_a_json_404(gateway, path, shape):
    response = httpx.post(f"{gateway.url}{path}", json={}, headers={"authorization": f"Bearer {gateway.key}"})
    assert response.status_code == 404
    body = response.json()
    assert (body["type"] == "error") if shape == "anthropic" else ("message" in body["error"])
    assert body["detail"]


def test_it_answers_an_oversized_chunked_body_with_413(gateway, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    payload = ('{"model": "gpt-4o", "messages": [{"role": "user", "content": "' + "x" * 5000 + '"}]}').encode()

    def chunks():  # no Content-Length: sent with Transfer-Encoding: chunked
        for i in range(0, len(payload), 1000):
            yield payload[i:i + 1000]

    response = httpx.post(f"{gateway.url}/api/ai/chat/completions", content=chunks(),
                          headers={"authorization": f"Bearer {gateway.key}", "content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
