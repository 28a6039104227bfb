"""Per-key RPM and TPM limits: 429 in each format with retry-after and rate-limit headers."""

from __future__ import annotations

import time

import anthropic
import openai
import pytest


pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _away_from_the_window_edge():
    # Windows are calendar minutes: don't let one roll over in the middle of a test.
    into = time.time() % 60
    if into > 54:
        time.sleep(60 - into + 0.2)


def _limited_key(alice_org, **limits) -> str:
    from orgs.services import api_key_issue

    return api_key_issue(organization=alice_org, label="limited", **limits).plaintext


def _ask(client, content="hello"):
    return client.chat.completions.with_raw_response.create(
        model="mock-echo", messages=[{"role": "user", "content": content}])


def test_it_refuses_requests_over_the_keys_rpm(gateway, alice_org):
    client = gateway.openai(api_key=_limited_key(alice_org, rpm_limit=2))
    first = _ask(client)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    _ask(client)
    with pytest.raises(openai.RateLimitError) as exc:
        _ask(client)
    assert exc.value.code == "rate_limit_exceeded"
    assert "2 requests per minute" in exc.value.message
    retry_after = int(exc.value.response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert exc.value.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_other_keys_are_not_limited_by_it(gateway, alice_org):
    limited = gateway.openai(api_key=_limited_key(alice_org, rpm_limit=1))
    _ask(limited)
    with pytest.raises(openai.RateLimitError):
        _ask(limited)
    assert _ask(gateway.openai()).http_response.status_code == 200
    assert "x-ratelimit-limit-requests" not in _ask(gateway.openai()).headers


def test_it_answers_in_anthropic_format_on_the_messages_route(gateway, alice_org):
    client = gateway.anthropic(api_key=_limited_key(alice_org, rpm_limit=1))
    ok = client.messages.with_raw_response.create(
        model="mock-echo", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    assert ok.headers["anthropic-ratelimit-requests-limit"] == "1"
    with pytest.raises(anthropic.RateLimitError) as exc:
        client.messages.create(model="mock-echo", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    assert exc.value.body["error"]["type"] == "rate_limit_error"
    assert exc.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert exc.value.response.headers["anthropic-ratelimit-requests-reset"].endswith("Z")


def test_it_refuses_requests_over_the_keys_tpm_once_tokens_are_used(gateway, alice_org):
    from ai_proxy.tokens import IMAGE_TOKENS_MAX, tokens_upper_bound
    from billing.ratelimit import rate_limit_key
    from billing.scopes import Scope
    from core.shared_state import shared_state
    from orgs.models import ApiKey

    words = "one two three four five six seven eight"
    # Admission counts an upper bound on the prompt: the limit lets one request in, and after it
    # settles to its real usage, not a second one.
    bound = tokens_upper_bound({"model": "mock-echo", "messages": [{"role": "user", "content": words}]},
                               image_tokens=IMAGE_TOKENS_MAX, unbounded_tokens=1)
    tpm = bound + 10
    plaintext = _limited_key(alice_org, tpm_limit=tpm)
    key_id = ApiKey.objects.get(label="limited").pk
    client = gateway.openai(api_key=plaintext)
    reply = _ask(client, words).parse()
    used = reply.usage.total_tokens
    counter = rate_limit_key(Scope.key(key_id, alice_org.pk), "tokens", int(time.time() // 60))
    deadline = time.monotonic() + 5
    while int(shared_state().get_sync(counter) or 0) != used and time.monotonic() < deadline:
        time.sleep(0.02)
    assert int(shared_state().get_sync(counter)) == used
    assert used < tpm < used + bound, "the next prompt's bound no longer overflows this minute"
    with pytest.raises(openai.RateLimitError) as exc:
        _ask(client, words)
    assert f"{tpm} tokens per minute and has used {used}" in exc.value.message


def test_a_prompt_larger_than_the_tpm_is_refused_outright(gateway, alice_org):
    client = gateway.openai(api_key=_limited_key(alice_org, tpm_limit=10))
    with pytest.raises(openai.RateLimitError) as exc:
        _ask(client, "word " * 200)
    assert "can never be admitted" in exc.value.message


def test_a_rate_limited_request_leaves_a_ledger_row(gateway, alice_org):
    from tests.helpers import ledger_rows

    client = gateway.openai(api_key=_limited_key(alice_org, rpm_limit=1))
    _ask(client)
    with pytest.raises(openai.RateLimitError):
        _ask(client)
    rows = ledger_rows(2)
    assert [r.status for r in rows] == [200, 429]
    assert rows[1].error_type == "rate_limit_exceeded" and rows[1].cost == 0


def _count(client, model="claude-3-5-sonnet"):
    return client.messages.with_raw_response.count_tokens(
        model=model, messages=[{"role": "user", "content": "one two three"}])


def test_count_tokens_counts_against_the_keys_rpm(gateway, alice_org):
    client = gateway.anthropic(api_key=_limited_key(alice_org, rpm_limit=2))
    first = _count(client)
    assert first.headers["anthropic-ratelimit-requests-remaining"] == "1"
    client.messages.create(model="mock-echo", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.RateLimitError) as exc:
        _count(client)
    assert exc.value.body["error"]["type"] == "rate_limit_error"
    assert "2 requests per minute" in exc.value.message
    assert 1 <= int(exc.value.response.headers["retry-after"]) <= 60
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="mock-echo", max_tokens=5, messages=[{"role": "user", "content": "hi"}])


def test_count_tokens_leaves_a_zero_cost_ledger_row(gateway):
    from decimal import Decimal

    from tests.helpers import ledger_rows

    native = _count(gateway.anthropic())
    estimate = _count(gateway.anthropic(), model="gpt-4o")
    rows = ledger_rows(2)
    assert [r.request_id for r in rows] == [native.headers["request-id"], estimate.headers["request-id"]]
    for row in rows:
        assert row.endpoint == "count_tokens" and row.status == 200
        assert row.cost == Decimal(0) and row.prompt_tokens == row.completion_tokens == 0
        assert row.organization.slug == "alice"
    assert rows[0].provider == "anthropic" and rows[0].model_name == "claude-3-5-sonnet"
    assert rows[1].model_name == "gpt-4o"
