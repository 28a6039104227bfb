"""Every request through either endpoint leaves exactly one ledger row, whatever its outcome,
with the provider's tokens and the exact cost."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import openai
import pytest

from tests.helpers import ledger_rows
from tests.fake_provider import (
    ANTHROPIC_MESSAGES,
    OPENAI_CHAT,
    FakeResponse,
    anthropic_message,
    anthropic_usage,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _cost(prompt: int, completion: int, cache_read: int, cache_write: int, prices: tuple[str, str, str, str]):
    inp, out, cr, cw = (Decimal(p) for p in prices)
    total = ((prompt - cache_read - cache_write) * inp + completion * out + cache_read * cr + cache_write * cw)
    return (total / Decimal(1_000_000)).quantize(Decimal("1e-10"))


def test_it_meters_a_completion_with_the_providers_tokens_and_exact_cost(gateway):
    gateway.fake.enqueue(ANTHROPIC_MESSAGES, FakeResponse(json=anthropic_message(
        id="msg_1", model="claude-sonnet-4-5-20250929", content=[{"type": "text", "text": "hi"}],
        usage=anthropic_usage(1000, 500, cache_read=2000, cache_write=300))))
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="claude-3-5-sonnet", messages=[{"role": "user", "content": "hello"}])
    [row] = ledger_rows(1)
    assert (row.prompt_tokens, row.completion_tokens, row.cache_read_tokens, row.cache_write_tokens) == (
        3300, 500, 2000, 300)
    expected = _cost(3300, 500, 2000, 300, ("3", "15", "0.30", "3.75"))
    assert row.cost == expected == Decimal("0.0122250000")
    assert Decimal(raw.headers["x-gateway-cost-usd"]) == expected
    assert row.request_id == raw.headers["x-request-id"]
    assert row.status == 200 and row.tokens_estimated is False and row.streamed is False
    assert row.provider == "anthropic" and row.upstream_model == "claude-sonnet-4-5-20250929"
    assert row.input_price == Decimal("3") and row.output_price == Decimal("15")
    assert row.organization.slug == "alice" and row.api_key is not None
    assert row.prompt_text is None and row.completion_text is None  # content is off by default


def test_it_meters_a_stream_from_the_final_usage(gateway):
    chunks = list(gateway.openai().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "one two three"}], stream=True))
    assert chunks
    [row] = ledger_rows(1)
    assert row.streamed and row.status == 200
    assert (row.prompt_tokens, row.completion_tokens) == (6, 4)  # the fake's own counts
    assert row.cost == _cost(6, 4, 0, 0, ("2.50", "10", "1.25", "2.50")) > 0
    assert row.ttft_ms is not None and row.tokens_estimated is False


@pytest.mark.parametrize("case,status,error_type", [
    ("bad_input", 400, "empty_array"),
    ("unknown_model", 404, "model_not_found"),
    ("provider_down", 502, "upstream_unavailable"),
])
def test_it_leaves_a_row_for_every_failure(gateway, case, status, error_type):
    client = gateway.openai()
    kwargs = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
    if case == "bad_input":
        kwargs["messages"] = []
    elif case == "unknown_model":
        kwargs["model"] = "gpt-9"
    elif case == "provider_down":
        gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(status=500))
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(**kwargs)
    assert exc.value.status_code == status
    [row] = ledger_rows(1)
    assert row.status == status and row.cost == Decimal(0)
    assert row.error_type == error_type
    assert row.request_id == exc.value.request_id
    assert row.organization.slug == "alice"
    # A bad key leaves no row at all (tests/test_unauthenticated.py).


def _disconnect_midway(url: str, key: str, path: str, body: dict) -> None:
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", f"{url}{path}", json=body,
                           headers={"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"}) as response:
            assert response.status_code == 200
            received = 0
            for _ in response.iter_raw():
                received += 1
                if received >= 3:
                    break  # leave with the stream still running


@pytest.mark.parametrize("path,model,body_extra", [
    ("/api/ai/chat/completions", "gpt-4o", {}),
    ("/api/ai/chat/completions", "claude-3-haiku", {}),
    ("/api/ai/anthropic/v1/messages", "claude-3-haiku", {"max_tokens": 500}),
    ("/api/ai/anthropic/v1/messages", "gpt-4o", {"max_tokens": 500}),
])
def test_it_meters_a_client_that_disconnects_mid_stream(gateway, path, model, body_extra):
    words = " ".join(f"word{i}" for i in range(60))
    gateway.fake.enqueue(OPENAI_CHAT if model == "gpt-4o" else ANTHROPIC_MESSAGES,
                         FakeResponse(text=words, event_delay=0.05))
    _disconnect_midway(gateway.url, gateway.key, path, {
        "model": model, "stream": True, "messages": [{"role": "user", "content": "count for me"}], **body_extra})
    [row] = ledger_rows(1)
    assert row.client_disconnected is True and row.streamed is True
    assert row.status == 499 and row.error_type == "client_disconnected", "as the README says"
    assert row.prompt_tokens > 0 and row.completion_tokens > 0, "never a zero-token row"
    assert row.cost > 0
    assert row.tokens_estimated is True  # the provider never sent its final usage


def test_it_meters_the_same_tokens_in_both_formats(gateway):
    messages = [{"role": "user", "content": "the same question"}]
    gateway.openai().chat.completions.create(model="claude-3-haiku", messages=messages, max_tokens=100)
    gateway.anthropic().messages.create(model="claude-3-haiku", messages=messages, max_tokens=100)
    gateway.openai().chat.completions.create(model="gpt-4o", messages=messages, max_tokens=100)
    gateway.anthropic().messages.create(model="gpt-4o", messages=messages, max_tokens=100)
    rows = ledger_rows(4)
    assert [r.endpoint for r in rows] == ["openai", "anthropic", "openai", "anthropic"]
    for first, second in (rows[0:2], rows[2:4]):
        assert (first.prompt_tokens, first.completion_tokens) == (second.prompt_tokens, second.completion_tokens)
        assert first.cost == second.cost > 0


def test_it_stores_content_only_when_the_org_turns_it_on(gateway, alice_org):
    alice_org.store_content = True
    alice_org.save()
    gateway.openai().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "remember me"}])
    list(gateway.openai().chat.completions.create(model="gpt-4o", stream=True,
                                                  messages=[{"role": "user", "content": "stream me"}]))
    rows = ledger_rows(2)
    assert "remember me" in rows[0].prompt_text and rows[0].completion_text == "echo: remember me"
    assert rows[1].completion_text == "echo: stream me"


def test_concurrent_requests_are_all_recorded(gateway):
    import concurrent.futures

    client = gateway.openai()

    def one(i: int) -> str:
        return client.chat.completions.with_raw_response.create(
            model="mock-echo", messages=[{"role": "user", "content": f"n{i}"}]).headers["x-request-id"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(one, range(40)))
    rows = ledger_rows(40)
    assert {r.request_id for r in rows} == ids and len(rows) == 40


def test_it_meters_a_client_that_gives_up_before_the_response(gateway):
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(delay=2.0))
    with pytest.raises(openai.APITimeoutError):
        gateway.openai(timeout=0.5).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "slow one"}])
    [row] = ledger_rows(1)
    assert row.client_disconnected is True and row.status == 499
    assert row.prompt_tokens > 0 and row.tokens_estimated is True and row.cost > 0


def test_a_nul_byte_in_a_request_costs_no_ledger_rows(gateway):
    response = httpx.post(f"{gateway.url}/api/ai/chat/completions",
                          json={"model": "x\u0000y", "messages": [{"role": "user", "content": "a"}]},
                          headers={"authorization": f"Bearer {gateway.key}"})
    assert response.status_code == 404
    for _ in range(3):
        gateway.openai().chat.completions.create(model="mock-echo", messages=[{"role": "user", "content": "b"}])
    rows = ledger_rows(4)
    assert len(rows) == 4
    assert rows[0].requested_model == "xy"


def test_a_row_the_database_refuses_is_set_aside_not_blocking_the_rest(gateway):
    from django.db import connection
    from django.utils import timezone

    from billing import metering

    if connection.vendor != "postgresql":
        pytest.skip("SQLite stores any integer; PostgreSQL refuses this one")
    for _ in range(2):
        gateway.openai().chat.completions.create(model="mock-echo", messages=[{"role": "user", "content": "b"}])
    event = metering.UsageEvent(
        request_id="req_too_big", started_at=timezone.now(),
        endpoint="openai", organization_id=None, api_key_id=None, public_model="mock-echo", model_id=None,
        provider="mock", upstream_model="mock-echo", route_id=None, streamed=False, status=200, error_type="",
        prompt_tokens=2**40)
    metering.usage_record_sync(event)
    rows = ledger_rows(2)
    assert len(rows) == 2 and all(r.request_id != "req_too_big" for r in rows)
    from billing.metering import ledger_flush_sync
    from billing.models import UsageRecord

    ledger_flush_sync()
    assert UsageRecord.objects.count() == 2
    assert metering.ledger_pending_sync() == 0, "nothing stuck in the buffer"


def test_the_usage_endpoint_includes_a_request_made_a_moment_ago(gateway):
    reply = gateway.openai().chat.completions.with_raw_response.create(
        model="mock-echo", messages=[{"role": "user", "content": "count me"}])
    cost = Decimal(reply.headers["x-gateway-cost-usd"])
    for _ in range(3):  # metering runs just after the response; far less than the 0.5 s flush interval
        usage = httpx.get(f"{gateway.url}/api/ai/usage", headers={"authorization": f"Bearer {gateway.key}"},
                          ).json(parse_float=Decimal)
        if usage["total_requests"]:
            break
        time.sleep(0.01)
    assert usage["total_requests"] == 1 and usage["total_cost"] == cost


def test_it_meters_a_stream_whose_client_left_before_the_first_chunk(gateway):
    """Driven at the ASGI level to hit the one window a socket test can't: the client is gone
    while the response headers are being sent, so the body generator never starts."""
    import asyncio
    import json

    from ai_proxy.metering import metering_drain
    from ai_proxy.upstream import upstream_close
    from billing.metering import ledger_flush
    from gateway_site.asgi import application

    async def drive() -> None:
        requests = [{"type": "http.request", "more_body": False, "body": json.dumps({
            "model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hello"}]}).encode()}]
        gone = asyncio.Event()

        async def receive():
            if requests:
                return requests.pop(0)
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                gone.set()
                await asyncio.sleep(30)  # the headers never make it out

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": "/api/ai/chat/completions", "raw_path": b"/api/ai/chat/completions",
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
            "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                        (b"authorization", f"Bearer {gateway.key}".encode())],
        }
        await asyncio.wait_for(application(scope, receive, send), 20)
        await metering_drain()
        await ledger_flush()
        await upstream_close()

    asyncio.run(drive())
    [row] = ledger_rows(1)
    assert row.client_disconnected is True and row.status == 499 and row.streamed is True
    assert row.tokens_estimated is True and row.prompt_tokens > 0
