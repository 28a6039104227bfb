"""Routing: failover before the first byte, error events after it, cool-downs."""

from __future__ import annotations

import socket

import openai
import pytest

from tests.fake_provider import OPENAI_CHAT, FakeResponse
from tests.proxy_helpers import add_route

pytestmark = pytest.mark.django_db(transaction=True)


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connections are refused
    return port


def _backup_route(gateway, **kwargs):
    """gpt-4o gets a second route (priority 1) on the same fake, told apart by its upstream name."""
    return add_route("gpt-4o", "openai-backup", base_url=f"{gateway.fake.url}/v1", upstream_model="gpt-4o-backup",
                     priority=1, **kwargs)


def _ask(gateway, **kwargs):
    return gateway.openai().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}], **kwargs)


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_it_fails_over_when_the_first_route_errors(gateway, status):
    _backup_route(gateway)
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(status=status))
    reply = _ask(gateway)
    assert reply.choices[0].message.content == "echo: hello"
    assert [r.json["model"] for r in gateway.fake.requests_to(OPENAI_CHAT)] == ["gpt-4o", "gpt-4o-backup"]


def test_it_fails_over_when_the_first_route_times_out(gateway):
    from tests.proxy_helpers import set_provider

    set_provider("openai", timeout_seconds=0.3)
    _backup_route(gateway)
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(delay=2.0))
    assert _ask(gateway).choices[0].message.content == "echo: hello"
    assert gateway.fake.requests_to(OPENAI_CHAT)[-1].json["model"] == "gpt-4o-backup"


def test_it_fails_over_when_the_first_route_refuses_connections(gateway):
    from tests.proxy_helpers import set_provider

    set_provider("openai", base_url=f"http://127.0.0.1:{_closed_port()}/v1")
    _backup_route(gateway)
    assert _ask(gateway).choices[0].message.content == "echo: hello"


def test_it_fails_over_a_stream_that_breaks_before_the_first_byte(gateway):
    _backup_route(gateway)
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(drop_after=0))
    chunks = list(_ask(gateway, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello"


def test_it_ends_a_stream_that_breaks_midway_with_an_error_event(gateway):
    _backup_route(gateway)
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(text="one two three four five six", drop_after=3))
    received = []
    with pytest.raises(openai.APIError) as exc:
        for chunk in _ask(gateway, stream=True):
            received.append(chunk)
    assert received, "the first chunks reached the client before the failure"
    assert "failed mid-stream" in str(exc.value) and "incomplete" in str(exc.value)
    # After the first byte there is no failover: the backup was never asked.
    assert [r.json["model"] for r in gateway.fake.requests_to(OPENAI_CHAT)] == ["gpt-4o"]


def test_it_answers_502_naming_the_model_when_every_route_fails(gateway):
    _backup_route(gateway)
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(status=500), FakeResponse(status=503))
    with pytest.raises(openai.InternalServerError) as exc:
        _ask(gateway)
    assert exc.value.status_code == 502
    assert "gpt-4o" in exc.value.message and "HTTP 500" in exc.value.message


def test_it_cools_down_a_route_that_keeps_failing(gateway, settings):
    settings.GATEWAY_COOLDOWN_FAILURES = 2
    _backup_route(gateway)
    for _ in range(2):
        gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(status=500))
        _ask(gateway)
    gateway.fake.clear()
    # The primary is cooling down now: the backup is tried first.
    _ask(gateway)
    assert [r.json["model"] for r in gateway.fake.requests_to(OPENAI_CHAT)] == ["gpt-4o-backup"]


def test_it_probes_a_cooled_route_again_after_the_cooldown(gateway, settings):
    from core.shared_state import shared_state

    settings.GATEWAY_COOLDOWN_FAILURES = 1
    route = _backup_route(gateway)
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(status=500))
    _ask(gateway)
    from catalog.models import Route

    primary_id = Route.objects.get(model__public_id="gpt-4o", provider__name="openai").pk
    assert shared_state().get_sync(f"route:cool:{primary_id}") == "1"
    shared_state().delete_sync(f"route:cool:{primary_id}")  # the cool-down's expiry, without waiting
    import ai_proxy.routing as routing

    routing._cooldown_seen.clear()
    gateway.fake.clear()
    _ask(gateway)
    assert [r.json["model"] for r in gateway.fake.requests_to(OPENAI_CHAT)] == ["gpt-4o"]
    assert route.pk != primary_id


def test_it_spreads_load_by_weight_within_a_priority(gateway):
    from catalog.models import Route

    Route.objects.filter(model__public_id="gpt-4o").update(weight=3)
    add_route("gpt-4o", "openai-heavy", base_url=f"{gateway.fake.url}/v1", upstream_model="gpt-4o-heavy",
              priority=0, weight=7)
    for _ in range(60):
        _ask(gateway)
    upstream = [r.json["model"] for r in gateway.fake.requests_to(OPENAI_CHAT)]
    assert upstream.count("gpt-4o-heavy") > upstream.count("gpt-4o")
    assert upstream.count("gpt-4o") >= 1


@pytest.mark.parametrize("status", [401, 403, 404])
def test_it_fails_over_when_a_provider_refuses_the_gateways_credentials(gateway, status):
    _backup_route(gateway)
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(status=status, json={"error": {
        "message": "Incorrect API key provided: sk-proj-****wxyz.", "type": "invalid_request_error",
        "param": None, "code": "invalid_api_key"}}))
    assert _ask(gateway).choices[0].message.content == "echo: hello"


def test_it_answers_502_without_the_providers_words_when_credentials_fail_everywhere(gateway):
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(status=401, json={"error": {
        "message": "Incorrect API key provided: sk-proj-****wxyz.", "type": "invalid_request_error",
        "param": None, "code": "invalid_api_key"}}))
    with pytest.raises(openai.InternalServerError) as exc:
        _ask(gateway)
    assert exc.value.status_code == 502, "the client's own key is fine: not a 401"
    assert "sk-proj" not in exc.value.response.text


@pytest.mark.parametrize("status", [501, 520, 524])
def test_it_fails_over_on_any_5xx(gateway, status):
    _backup_route(gateway)
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(status=status))
    assert _ask(gateway).choices[0].message.content == "echo: hello"


def test_it_fails_over_a_stream_that_opens_with_an_error_event(gateway):
    from tests.fake_provider import ANTHROPIC_MESSAGES

    add_route("claude-3-haiku", "anthropic-backup", kind="anthropic", base_url=gateway.fake.url,
              upstream_model="claude-backup", priority=1, api_key_env="ANTHROPIC_API_KEY")
    gateway.fake.enqueue(ANTHROPIC_MESSAGES, FakeResponse(events=[
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})]))
    with gateway.anthropic().messages.stream(model="claude-3-haiku", max_tokens=20,
                                             messages=[{"role": "user", "content": "hi"}]) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "echo: hi"
    assert [r.json["model"] for r in gateway.fake.requests_to(ANTHROPIC_MESSAGES)] == [
        "claude-3-haiku-20240307", "claude-backup"]


def test_it_keeps_serving_and_metering_while_redis_is_down(gateway, settings):
    from billing.models import UsageRecord
    from tests.helpers import ledger_rows

    real_redis = settings.REDIS_URL
    _ask(gateway)  # key and catalog now cached in this process
    settings.REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    reply = _ask(gateway)
    assert reply.choices[0].message.content == "echo: hello"
    settings.REDIS_URL = real_redis
    rows = ledger_rows(2)
    assert len(rows) == 2 and UsageRecord.objects.filter(status=200).count() == 2
