"""Zero overshoot across instances: two `manage.py serve` processes sharing Redis and PostgreSQL,
hundreds of concurrent requests against a hard key budget and a hard organization budget at once.

The fake provider answers every admitted request slowly (so the whole burst is in flight together)
with a scripted usage, so the ledger holds realistic costs; the test then reads the ledger.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx
import openai
import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum

from tests.fake_fixtures import point_catalog_at
from tests.fake_provider import OPENAI_CHAT, FakeResponse
from tests.proxy_helpers import set_budget
from tests.server_helpers import process_env, process_stop, serve_start

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL or connection.vendor != "postgresql",
                       reason="two server processes share Redis and PostgreSQL"),
]

PER_KEY = 120  # requests on each of two keys: 240 in flight at once over two servers


@pytest.fixture
def two_servers(fake_provider, monkeypatch, alice_key):
    point_catalog_at(fake_provider.url, monkeypatch)
    started = []
    try:
        for _ in range(2):
            started.append(serve_start(process_env(REDIS_URL=settings.REDIS_URL)))
        yield [url for url, _ in started], fake_provider
    finally:
        for _, proc in started:
            process_stop(proc)


async def _burst(urls: list[str], keys: list[str]) -> list[list[str]]:
    """Each key's outcomes, in the order its requests were made."""
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=400), timeout=60) as http:
        clients = [[openai.AsyncOpenAI(base_url=f"{url}/api/ai", api_key=key, max_retries=0, http_client=http)
                    for url in urls] for key in keys]

        async def one(client) -> str:
            try:
                await client.chat.completions.create(model="gpt-4o", max_tokens=1000,
                                                     messages=[{"role": "user", "content": "hello"}])
                return "ok"
            except openai.RateLimitError as exc:
                if exc.code != "budget_exceeded":
                    return exc.code or "429"
                # Which budget refused it: the two share the organization's money, so which one
                # runs out first depends on how the burst interleaves.
                return "key_budget" if "This key's" in exc.message or "the key's" in exc.message else "org_budget"

        calls = [one(clients[k][i % len(urls)]) for i in range(PER_KEY) for k in range(len(keys))]
        outcomes = await asyncio.gather(*calls)
        return [outcomes[k::len(keys)] for k in range(len(keys))]


def test_concurrent_requests_over_two_servers_never_overshoot_a_key_or_an_org_budget(two_servers, alice_org,
                                                                                       alice_key):
    from billing.models import UsageRecord
    from orgs.models import ApiKey
    from orgs.services import api_key_issue

    urls, fake = two_servers
    first_key = ApiKey.objects.get(organization=alice_org)
    second = api_key_issue(organization=alice_org, label="second", actor="test")
    # gpt-4o: $2.50 in, $10 out per million; each request's worst case is ~$0.0101, its real cost
    # ~$0.0100 (1,000 output tokens). The key can afford about 40, the organization about 100.
    set_budget(alice_org, "1.00")
    set_budget(alice_org, "0.40", key=first_key)
    fake.enqueue(OPENAI_CHAT, *[FakeResponse(delay=0.5, usage={"completion_tokens": 1000, "total_tokens": 1005})
                                for _ in range(2 * PER_KEY)])

    first, second_outcomes = asyncio.run(_burst(urls, [alice_key, second.plaintext]))
    outcomes = first + second_outcomes

    assert set(outcomes) <= {"ok", "key_budget", "org_budget"}, outcomes
    assert outcomes.count("ok") > 0 and outcomes.count("ok") < len(outcomes), outcomes
    # The second key has no budget of its own: only the organization's can refuse it.
    assert "key_budget" not in second_outcomes, second_outcomes
    deadline = time.monotonic() + 30
    while UsageRecord.objects.count() < 2 * PER_KEY and time.monotonic() < deadline:
        time.sleep(0.2)
    assert UsageRecord.objects.count() == 2 * PER_KEY
    served = UsageRecord.objects.filter(status=200)
    assert served.count() == outcomes.count("ok")
    key_spent = served.filter(api_key=first_key).aggregate(total=Sum("cost"))["total"] or Decimal(0)
    org_spent = UsageRecord.objects.filter(organization=alice_org).aggregate(total=Sum("cost"))["total"]
    assert key_spent <= Decimal("0.40"), f"the key spent ${key_spent} of $0.40"
    assert org_spent <= Decimal("1.00"), f"the organization spent ${org_spent} of $1.00"
    # Nothing was refused far too early: the burst asks for $2.40, so the organization's budget is
    # nearly used up, and the key's budget refused only once nearly all of it was spent. (Whether
    # the key reaches its own budget at all depends on how the two keys' requests interleave: the
    # second key may take the organization's money first, and then the key is refused for that.)
    assert org_spent > Decimal("0.85"), org_spent
    if "key_budget" in first:
        assert key_spent > Decimal("0.30"), (key_spent, first)
