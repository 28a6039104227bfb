"""Client options that change what the provider charges (issue 8): refused with a 400 naming them
unless the route allows them, forwarded exactly when it does, and web searches billed per search.

The real gateway on loopback, the fake provider, the official SDKs.
"""

from __future__ import annotations

from decimal import Decimal as D

import anthropic
import httpx
import openai
import pytest
from django.core.exceptions import ValidationError

from tests.fake_provider import (
    ANTHROPIC_MESSAGES,
    OPENAI_CHAT,
    FakeResponse,
    anthropic_message,
    anthropic_usage,
    openai_completion,
    openai_usage,
)
from tests.proxy_helpers import add_route, set_route
from tests.helpers import ledger_rows

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "hello"}]
LONG_CONTEXT = "context-1m-2025-08-07"
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 50}


def _set_web_search_price(model_id: str, price: D | None) -> None:
    from catalog.models import CatalogModel

    model = CatalogModel.objects.get(public_id=model_id)
    model.web_search_price_per_1k = price
    model.save()  # the signal drops the cached catalog


# --- anthropic-beta ------------------------------------------------------------------------

def test_a_beta_the_route_does_not_allow_is_refused_before_any_provider_call(gateway):
    client = gateway.anthropic(default_headers={"anthropic-beta": f"prompt-caching-2024-07-31,{LONG_CONTEXT}"})
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="claude-3-5-sonnet", max_tokens=10, messages=HELLO)
    body = caught.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert f"anthropic-beta:{LONG_CONTEXT}" in body["error"]["message"]
    assert "allowed options" in body["error"]["message"] and body["detail"] == body["error"]["message"]
    assert gateway.fake.requests_to(ANTHROPIC_MESSAGES) == []
    row = ledger_rows(1)[0]
    assert row.status == 400 and row.error_type == "option_not_allowed"


def test_a_beta_the_route_allows_is_forwarded_exactly(gateway):
    set_route("claude-3-5-sonnet", allowed_options=f"anthropic-beta:{LONG_CONTEXT}")
    betas = f"prompt-caching-2024-07-31,{LONG_CONTEXT}"
    client = gateway.anthropic(default_headers={"anthropic-beta": betas})
    message = client.messages.create(model="claude-3-5-sonnet", max_tokens=10, messages=HELLO)
    assert message.content[0].text == "echo: hello"
    assert gateway.fake.requests_to(ANTHROPIC_MESSAGES)[-1].headers["anthropic-beta"] == betas


def test_a_beta_is_never_sent_to_an_openai_format_route(gateway):
    # Even an operator's allow-list cannot apply to a provider that does not speak Anthropic's format.
    client = gateway.anthropic(default_headers={"anthropic-beta": LONG_CONTEXT})
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="gpt-4o", max_tokens=10, messages=HELLO)
    assert "does not speak the Anthropic format" in caught.value.response.json()["error"]["message"]
    assert gateway.fake.requests_to(OPENAI_CHAT) == []
    # The prompt-caching beta is harmless there (its cache prices are exact): accepted, not forwarded.
    client = gateway.anthropic(default_headers={"anthropic-beta": "prompt-caching-2024-07-31"})
    client.messages.create(model="gpt-4o", max_tokens=10, messages=HELLO)
    assert "anthropic-beta" not in gateway.fake.requests_to(OPENAI_CHAT)[-1].headers


def test_chat_completions_refuses_anthropic_beta_and_sends_its_own_version(gateway):
    client = gateway.openai(default_headers={"anthropic-beta": LONG_CONTEXT})
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="claude-3-5-sonnet", messages=HELLO)
    error = caught.value.response.json()["error"]
    assert error["param"] == "anthropic-beta" and "/api/ai/anthropic/v1/messages" in error["message"]
    assert gateway.fake.requests_to(ANTHROPIC_MESSAGES) == []
    # anthropic-version on /chat/completions is not the client's to set: the gateway sends its own.
    gateway.openai(default_headers={"anthropic-version": "1999-01-01"}).chat.completions.create(
        model="claude-3-5-sonnet", messages=HELLO)
    assert gateway.fake.requests_to(ANTHROPIC_MESSAGES)[-1].headers["anthropic-version"] == "2023-06-01"


# --- anthropic-version ---------------------------------------------------------------------

def test_an_unknown_anthropic_version_is_refused(gateway):
    client = gateway.anthropic(default_headers={"anthropic-version": "1999-01-01"})
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="claude-3-haiku", max_tokens=10, messages=HELLO)
    message = caught.value.response.json()["error"]["message"]
    assert "anthropic-version" in message and "1999-01-01" in message and "2023-06-01" in message
    assert gateway.fake.requests_to(ANTHROPIC_MESSAGES) == []


# --- service_tier --------------------------------------------------------------------------

def test_priority_service_tier_is_refused_unless_the_route_allows_it(gateway):
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.openai().chat.completions.create(model="gpt-4o", messages=HELLO, service_tier="priority")
    error = caught.value.response.json()["error"]
    assert error["param"] == "service_tier" and error["code"] == "option_not_allowed"
    assert "service_tier:priority" in error["message"]
    assert gateway.fake.requests_to(OPENAI_CHAT) == []
    # The standard tiers need nothing.
    gateway.openai().chat.completions.create(model="gpt-4o", messages=HELLO, service_tier="default")
    assert gateway.fake.requests_to(OPENAI_CHAT)[-1].json["service_tier"] == "default"

    set_route("gpt-4o", allowed_options="service_tier:priority")
    gateway.openai().chat.completions.create(model="gpt-4o", messages=HELLO, service_tier="priority")
    assert gateway.fake.requests_to(OPENAI_CHAT)[-1].json["service_tier"] == "priority"


def test_a_route_that_does_not_allow_an_option_is_skipped_for_one_that_does(gateway, fake_provider):
    # Failover keeps working: the allowing route (tried second by priority) serves the request.
    route = add_route("gpt-4o", "openai-priority", base_url=f"{fake_provider.url}/v1",
                      upstream_model="gpt-4o-priority", priority=5)
    route.allowed_options = "service_tier:priority"
    route.save()
    gateway.openai().chat.completions.create(model="gpt-4o", messages=HELLO, service_tier="priority")
    sent = gateway.fake.requests_to(OPENAI_CHAT)
    assert [r.json["model"] for r in sent] == ["gpt-4o-priority"]
    assert ledger_rows(1)[0].provider == "openai-priority"


# --- server tools --------------------------------------------------------------------------

def test_web_search_is_refused_unless_allowed(gateway):
    with pytest.raises(anthropic.BadRequestError) as caught:
        gateway.anthropic().messages.create(model="claude-3-haiku", max_tokens=10, messages=HELLO, tools=[WEB_SEARCH])
    message = caught.value.response.json()["error"]["message"]
    assert "server_tool:web_search" in message and "tools[0]" in message
    assert gateway.fake.requests_to(ANTHROPIC_MESSAGES) == []


def test_web_search_without_a_price_cannot_be_allowed(gateway):
    from catalog.models import Route

    route = Route.objects.get(model__public_id="claude-3-haiku")
    route.allowed_options = "server_tool:web_search"
    with pytest.raises(ValidationError) as caught:
        route.full_clean()
    assert "web search price" in str(caught.value)
    route.save()  # saved anyway (bypassing the form): still refused at request time, never unbilled
    with pytest.raises(anthropic.BadRequestError) as refused:
        gateway.anthropic().messages.create(model="claude-3-haiku", max_tokens=10, messages=HELLO, tools=[WEB_SEARCH])
    assert "no web search price" in refused.value.response.json()["error"]["message"]
    assert gateway.fake.requests_to(ANTHROPIC_MESSAGES) == []


def test_allowed_web_searches_are_billed_per_search(gateway):
    _set_web_search_price("claude-3-haiku", D("10"))
    set_route("claude-3-haiku", allowed_options="server_tool:web_search")
    usage = anthropic_usage(100, 20) | {"server_tool_use": {"web_search_requests": 3}}
    gateway.fake.enqueue(ANTHROPIC_MESSAGES, FakeResponse(json=anthropic_message(
        id="msg_s1", model="claude-3-haiku-20240307", content=[{"type": "text", "text": "found"}], usage=usage)))
    raw = gateway.anthropic().messages.with_raw_response.create(
        model="claude-3-haiku", max_tokens=10, messages=HELLO, tools=[WEB_SEARCH])
    assert gateway.fake.requests_to(ANTHROPIC_MESSAGES)[-1].json["tools"] == [WEB_SEARCH]
    # 100 x $0.25/M + 20 x $1.25/M + 3 searches x $10/1,000
    expected = D("0.000025") + D("0.000025") + D("0.03")
    assert D(raw.headers["x-gateway-cost-usd"]) == expected
    row = ledger_rows(1)[0]
    assert row.status == 200 and row.cost == expected


def test_streamed_web_searches_are_billed_from_the_final_usage(gateway):
    _set_web_search_price("claude-3-haiku", D("10"))
    set_route("claude-3-haiku", allowed_options="server_tool:web_search")
    start = {"input_tokens": 100, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
             "server_tool_use": {"web_search_requests": 0}}
    events = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_s2", "type": "message", "role": "assistant", "content": [], "model": "claude-3-haiku-20240307",
            "stop_reason": None, "stop_sequence": None, "usage": start}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 20, "server_tool_use": {"web_search_requests": 2}}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    gateway.fake.enqueue(ANTHROPIC_MESSAGES, FakeResponse(events=events))
    with gateway.anthropic().messages.stream(model="claude-3-haiku", max_tokens=10, messages=HELLO,
                                             tools=[WEB_SEARCH]) as stream:
        assert stream.get_final_message().content[0].text == "ok"
    row = ledger_rows(1)[0]
    assert row.cost == D("0.000025") + D("0.000025") + D("0.02")


def test_a_server_tool_the_gateway_cannot_meter_is_always_refused(gateway):
    set_route("claude-3-haiku", allowed_options="server_tool:web_search")
    tool = {"type": "code_execution_20250825", "name": "code_execution"}
    with pytest.raises(anthropic.BadRequestError) as caught:
        gateway.anthropic().messages.create(model="claude-3-haiku", max_tokens=10, messages=HELLO, tools=[tool])
    error = caught.value.response.json()["error"]
    assert "code_execution_20250825" in error["message"] and "cannot meter" in error["message"]
    assert gateway.fake.requests_to(ANTHROPIC_MESSAGES) == []


def test_openai_web_search_options_are_refused_or_billed_one_search_per_request(gateway):
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.openai().chat.completions.create(model="gpt-4o", messages=HELLO, web_search_options={})
    assert caught.value.response.json()["error"]["param"] == "web_search_options"
    assert gateway.fake.requests_to(OPENAI_CHAT) == []

    _set_web_search_price("gpt-4o", D("25"))
    set_route("gpt-4o", allowed_options="web_search_options")
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(json=openai_completion(
        id="chatcmpl-s", model="gpt-4o", text="found", usage=openai_usage(1000, 100))))
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HELLO, web_search_options={"search_context_size": "low"})
    assert gateway.fake.requests_to(OPENAI_CHAT)[-1].json["web_search_options"] == {"search_context_size": "low"}
    # 1,000 x $2.50/M + 100 x $10/M + one search at $25/1,000
    expected = D("0.0025") + D("0.001") + D("0.025")
    assert D(raw.headers["x-gateway-cost-usd"]) == expected
    assert ledger_rows(2)[-1].cost == expected


# --- other Anthropic price options ----------------------------------------------------------

@pytest.mark.parametrize("extra, option", [
    ({"inference_geo": "us"}, "inference_geo:us"),
    ({"speed": "fast"}, "speed:fast"),
    ({"system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}, "cache_ttl:1h"),
])
def test_other_anthropic_price_options_need_the_route(gateway, extra, option):
    with pytest.raises(anthropic.BadRequestError) as caught:
        gateway.anthropic().messages.create(model="claude-3-haiku", max_tokens=10, messages=HELLO, extra_body=extra)
    assert option in caught.value.response.json()["error"]["message"]
    set_route("claude-3-haiku", allowed_options=option)
    gateway.anthropic().messages.create(model="claude-3-haiku", max_tokens=10, messages=HELLO, extra_body=extra)
    sent = gateway.fake.requests_to(ANTHROPIC_MESSAGES)
    assert len(sent) == 1 and all(sent[0].json[k] == v for k, v in extra.items())


def test_the_admin_refuses_unknown_option_names(catalog):
    from catalog.models import Route

    route = Route.objects.get(model__public_id="gpt-4o")
    route.allowed_options = "service_tier:priority, turbo-mode"
    with pytest.raises(ValidationError) as caught:
        route.full_clean()
    assert "turbo-mode" in str(caught.value)
    route.allowed_options = "anthropic-beta:context-1m-2025-08-07"
    with pytest.raises(ValidationError) as caught:
        route.full_clean()
    assert "Anthropic format" in str(caught.value)


def test_raw_http_errors_have_the_native_shape(gateway):
    response = httpx.post(f"{gateway.url}/api/ai/anthropic/v1/messages",
                          headers={"x-api-key": gateway.key, "anthropic-beta": LONG_CONTEXT},
                          json={"model": "claude-3-haiku", "max_tokens": 5, "messages": HELLO})
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error" and LONG_CONTEXT in body["error"]["message"] and body["detail"]
