"""Done when: after any mix of requests through the real gateway, /usage totals equal the sum of
what each request cost at the catalog price, to the last decimal, and no request is missing."""

from __future__ import annotations

import json
import time
from decimal import Decimal as D

import httpx
import openai
import pytest

from catalog.selectors import catalog_get_sync
from billing.metering import ledger_flush_sync
from billing.models import UsageRecord
from billing.pricing import cost_compute, prices_from_model

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("empty_ledger_buffer")]


def catalog_cost(model: str, prompt: int, completion: int, cache_read: int = 0, cache_write: int = 0) -> D:
    prices = prices_from_model(catalog_get_sync().resolve(model))
    return cost_compute(prompt_tokens=prompt, completion_tokens=completion, cache_read_tokens=cache_read,
                        cache_write_tokens=cache_write, prices=prices)


def wait_for_rows(org, count: int) -> None:
    # The gateway records on its own loop; flush until every request has its row.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ledger_flush_sync()
        if UsageRecord.objects.filter(organization=org).count() >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"expected {count} ledger rows, found {UsageRecord.objects.filter(organization=org).count()}")


def usage(gateway, key=None) -> dict:
    response = httpx.get(f"{gateway.url}/api/ai/usage", headers={"Authorization": f"Bearer {key or gateway.key}"})
    assert response.status_code == 200
    return json.loads(response.content, parse_float=D)


def test_it_bills_every_request_at_the_catalog_price(gateway, alice_org, charlie_key):
    client = gateway.openai()
    expected = D(0)
    requests = 0
    for text in ("hello", "a somewhat longer message to count", "x " * 50):
        raw = client.chat.completions.with_raw_response.create(model="mock-echo", messages=[{"role": "user", "content": text}])
        reply = raw.parse()
        cost = catalog_cost("mock-echo", reply.usage.prompt_tokens, reply.usage.completion_tokens)
        assert D(raw.headers["x-gateway-cost-usd"]) == cost
        expected += cost
        requests += 1
    reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "via the fake provider"}])
    expected += catalog_cost("gpt-4o", reply.usage.prompt_tokens, reply.usage.completion_tokens,
                             reply.usage.prompt_tokens_details.cached_tokens or 0)
    requests += 1
    chunks = list(client.chat.completions.create(
        model="mock-echo", messages=[{"role": "user", "content": "stream me please"}], stream=True,
        stream_options={"include_usage": True},
    ))
    final = chunks[-1].usage
    assert final.completion_tokens > 0
    expected += catalog_cost("mock-echo", final.prompt_tokens, final.completion_tokens)
    requests += 1
    message = gateway.anthropic().messages.create(
        model="mock-echo", max_tokens=50, messages=[{"role": "user", "content": "anthropic format"}]
    )
    u = message.usage
    expected += catalog_cost(
        "mock-echo",
        u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0),
        u.output_tokens, u.cache_read_input_tokens or 0, u.cache_creation_input_tokens or 0,
    )
    requests += 1
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    requests += 1

    wait_for_rows(alice_org, requests)
    body = usage(gateway)
    assert body["total_requests"] == requests
    assert body["error_requests"] == 1
    assert body["total_cost"] == expected
    assert body["total_cost"] == sum((r.cost for r in UsageRecord.objects.filter(organization=alice_org)), D(0))
    assert usage(gateway, charlie_key)["total_requests"] == 0
