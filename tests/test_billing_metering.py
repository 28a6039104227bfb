"""The ledger write path: one row per request, every outcome, exactly once, never lost."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from decimal import Decimal as D

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import OperationalError, connection, connections

from catalog.selectors import catalog_get_sync
from catalog.models import CatalogModel
from billing import metering
from billing.metering import ledger_flush, ledger_flush_sync, ledger_pending_sync, usage_record, usage_record_sync
from billing.models import UsageRecord
from billing.pricing import prices_from_model
from orgs.models import ApiKey
from tests.helpers import MOCK_PRICES, usage_event

pytestmark = pytest.mark.usefixtures("empty_ledger_buffer")


OUTCOMES = {
    "success": dict(status=200, prompt_tokens=100, completion_tokens=20),
    "streamed success": dict(status=200, streamed=True, prompt_tokens=50, completion_tokens=70, ttft_ms=3),
    "client error": dict(status=400, error_type="invalid_request_error", prompt_tokens=0, completion_tokens=0),
    "provider failed on every route": dict(status=502, error_type="api_error", provider="", prompt_tokens=0, completion_tokens=0),
    "rate limited": dict(status=429, error_type="rate_limit_error", prompt_tokens=0, completion_tokens=0),
    "over budget": dict(status=402, error_type="budget_exceeded", prompt_tokens=0, completion_tokens=0),
    "client disconnected mid-stream": dict(
        status=200, streamed=True, client_disconnected=True, tokens_estimated=True, prompt_tokens=40, completion_tokens=9
    ),
    "anthropic disconnected mid-stream": dict(
        endpoint="anthropic", status=200, streamed=True, client_disconnected=True, prompt_tokens=40, completion_tokens=9
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("outcome", sorted(OUTCOMES))
def test_it_writes_one_row_for_each_outcome(alice_org, alice_key, outcome):
    event = usage_event(alice_org, **OUTCOMES[outcome])
    cost = usage_record_sync(event)
    assert UsageRecord.objects.count() == 0  # buffered, not written on the request path
    ledger_flush_sync()
    row = UsageRecord.objects.get(request_id=event.request_id)
    assert (row.organization_id, row.api_key_id, row.status) == (alice_org.pk, event.api_key_id, event.status)
    assert (row.endpoint, row.streamed, row.client_disconnected) == (event.endpoint, event.streamed, event.client_disconnected)
    assert (row.prompt_tokens, row.completion_tokens, row.tokens_estimated) == (
        event.prompt_tokens, event.completion_tokens, event.tokens_estimated
    )
    assert row.error_type == event.error_type
    assert row.cost == cost == (event.prompt_tokens * D("1") + event.completion_tokens * D("2")) / 1_000_000
    assert (row.input_price, row.output_price, row.cache_read_price, row.cache_write_price) == (
        D("1"), D("2"), D("0.10"), D("1.25")
    )
    assert row.created_at == event.started_at
    assert row.client_ip == "127.0.0.1"
    assert row.prompt_text is None and row.completion_text is None


@pytest.mark.django_db
def test_it_writes_a_row_when_authentication_failed():
    event = usage_event(None, status=401, error_type="authentication_error", public_model="", prompt_tokens=0,
                        completion_tokens=0, prices=None)
    assert usage_record_sync(event) == D("0")
    ledger_flush_sync()
    row = UsageRecord.objects.get(request_id=event.request_id)
    assert row.organization_id is None and row.api_key_id is None and row.status == 401 and row.cost == 0


@pytest.mark.django_db
def test_it_keeps_the_price_in_force_when_the_catalog_price_changes(catalog, alice_org, alice_key):
    model = catalog_get_sync().resolve("mock-echo")
    before = usage_event(alice_org, model_id=model.id, prices=prices_from_model(model), prompt_tokens=1000, completion_tokens=1000)
    usage_record_sync(before)
    CatalogModel.objects.filter(pk=model.id).update(input_price_per_mtok=D("5"), output_price_per_mtok=D("7"))
    catalog_get_sync.__globals__["catalog_cache"].clear()
    model = catalog_get_sync().resolve("mock-echo")
    after = usage_event(alice_org, model_id=model.id, prices=prices_from_model(model), prompt_tokens=1000, completion_tokens=1000)
    usage_record_sync(after)
    ledger_flush_sync()
    old, new = UsageRecord.objects.get(request_id=before.request_id), UsageRecord.objects.get(request_id=after.request_id)
    assert (old.cost, old.input_price, old.output_price) == (D("0.003"), D("1"), D("2"))
    assert (new.cost, new.input_price, new.output_price) == (D("0.012"), D("5"), D("7"))
    assert old.model_name == new.model_name == "mock-echo"


@pytest.mark.django_db
def test_it_prices_cache_tokens_on_the_row(alice_org, alice_key):
    event = usage_event(alice_org, prompt_tokens=10_000, cache_read_tokens=6_000, cache_write_tokens=3_000, completion_tokens=100)
    cost = usage_record_sync(event)
    ledger_flush_sync()
    row = UsageRecord.objects.get(request_id=event.request_id)
    # 1,000 x $1 + 6,000 x $0.10 + 3,000 x $1.25 + 100 x $2, per million
    assert row.cost == cost == D("0.00555")
    assert (row.cache_read_tokens, row.cache_write_tokens) == (6_000, 3_000)


@pytest.mark.django_db
def test_it_stores_content_only_when_given(alice_org, alice_key):
    event = usage_event(alice_org, prompt_text='[{"role":"user","content":"hi"}]', completion_text="hello")
    usage_record_sync(event)
    ledger_flush_sync()
    row = UsageRecord.objects.get(request_id=event.request_id)
    assert (row.prompt_text, row.completion_text) == ('[{"role":"user","content":"hi"}]', "hello")


@pytest.mark.django_db
def test_it_never_writes_a_request_id_twice(alice_org, alice_key):
    event = usage_event(alice_org)
    usage_record_sync(event)
    usage_record_sync(event)  # a replayed buffer entry
    ledger_flush_sync()
    usage_record_sync(event)
    ledger_flush_sync()
    assert UsageRecord.objects.filter(request_id=event.request_id).count() == 1


@pytest.mark.django_db(transaction=True)  # foreign keys are checked at commit
def test_it_keeps_rows_of_a_deleted_key(alice_org, alice_key):
    key = ApiKey.objects.get(organization=alice_org)
    event = usage_event(alice_org, key_id=key.pk)
    usage_record_sync(event)
    other = usage_event(alice_org, key_id=key.pk)
    usage_record_sync(other)
    key.delete()
    ledger_flush_sync()
    rows = UsageRecord.objects.filter(request_id__in=[event.request_id, other.request_id])
    assert [r.api_key_id for r in rows] == [None, None]
    assert all(r.organization_id == alice_org.pk for r in rows)


@pytest.mark.django_db
def test_it_cuts_odd_client_values_to_fit(alice_org, alice_key):
    event = usage_event(alice_org, public_model="m" * 1000, client_ip="not-an-ip", status=400, prompt_tokens=0, completion_tokens=0)
    usage_record_sync(event)
    ledger_flush_sync()
    row = UsageRecord.objects.get(request_id=event.request_id)
    assert len(row.requested_model) == 200 and row.client_ip is None


@pytest.mark.django_db
def test_it_puts_rows_back_when_the_database_insert_fails(alice_org, alice_key):
    events = [usage_event(alice_org) for _ in range(5)]
    for event in events:
        usage_record_sync(event)

    def refuse_ledger_inserts(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("INSERT") and "billing_usagerecord" in sql:
            raise OperationalError("database is down")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse_ledger_inserts):
        with pytest.raises(OperationalError):
            ledger_flush_sync()
    assert UsageRecord.objects.count() == 0
    assert ledger_pending_sync() == 5
    assert ledger_flush_sync() == 5
    assert ledger_pending_sync() == 0
    assert sorted(UsageRecord.objects.values_list("request_id", flat=True)) == sorted(e.request_id for e in events)


@pytest.mark.django_db(transaction=True)
def test_it_records_200_concurrent_requests_exactly_once(alice_org, alice_key):
    events = [usage_event(alice_org, prompt_tokens=i, completion_tokens=2 * i) for i in range(200)]

    async def burst():
        costs = await asyncio.gather(*(usage_record(e) for e in events))
        await ledger_flush()
        return costs

    costs = asyncio.run(burst())
    ledger_flush_sync()
    rows = UsageRecord.objects.filter(organization=alice_org)
    assert rows.count() == 200
    assert {r.request_id for r in rows} == {e.request_id for e in events}
    assert sum(r.cost for r in rows) == sum(costs) == sum((i + 4 * i) * D(1) for i in range(200)) / 1_000_000


@pytest.mark.django_db(transaction=True)
def test_it_records_from_many_threads_exactly_once(alice_org, alice_key):
    events = [usage_event(alice_org) for _ in range(400)]

    def worker(chunk):
        for event in chunk:
            usage_record_sync(event)
            if event is chunk[len(chunk) // 2]:
                ledger_flush_sync()  # drains racing the writers must not lose or double rows
        connections.close_all()

    threads = [threading.Thread(target=worker, args=(events[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ledger_flush_sync()
    assert UsageRecord.objects.filter(organization=alice_org).count() == 400


@pytest.mark.django_db(transaction=True)
def test_it_flushes_in_the_background(alice_org, alice_key):
    event = usage_event(alice_org)

    async def record_and_wait():
        await usage_record(event)
        deadline = time.monotonic() + 5
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                if await UsageRecord.objects.filter(request_id=event.request_id).aexists():
                    return True
            return False
        finally:
            await sync_to_async(connections.close_all)()

    assert asyncio.run(record_and_wait())


@pytest.mark.django_db(transaction=True)
def test_it_flushes_on_graceful_shutdown(alice_org, alice_key):
    from gateway_site.asgi import application

    event = usage_event(alice_org)
    sent = []

    async def lifespan():
        messages = asyncio.Queue()
        await messages.put({"type": "lifespan.startup"})

        async def send(message):
            sent.append(message["type"])
            if message["type"] == "lifespan.startup.complete":
                usage_record_sync(event)  # a request finishing just before shutdown
                await messages.put({"type": "lifespan.shutdown"})

        await application({"type": "lifespan", "asgi": {"version": "3.0"}}, messages.get, send)

    asyncio.run(lifespan())
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert UsageRecord.objects.filter(request_id=event.request_id).exists()


@pytest.mark.django_db
def test_it_requeues_a_batch_whose_drainer_died():
    if not settings.REDIS_URL:
        pytest.skip("the crash-safe claim protocol is Redis's")
    import orjson
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    event = usage_event(None, status=401, prices=None, prompt_tokens=0, completion_tokens=0)
    usage_record_sync(event)
    # What a drainer does before it dies: claim the batch, never insert or release it.
    inflight = metering.INFLIGHT_PREFIX + "dead"
    items = client.lpop(metering.LEDGER_KEY, 10)
    client.rpush(inflight, *items)
    client.zadd(metering.CLAIMS_KEY, {inflight: time.time() - metering.STALE_CLAIM_SECONDS - 1})
    assert orjson.loads(items[0])["request_id"] == event.request_id
    metering.ledger_drain_sync()
    assert UsageRecord.objects.filter(request_id=event.request_id).exists()
    assert client.exists(inflight) == 0 and client.zcard(metering.CLAIMS_KEY) == 0


@pytest.mark.django_db
def test_it_buffers_in_memory_when_redis_is_unreachable(alice_org, alice_key, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    event = usage_event(alice_org)
    try:
        usage_record_sync(event)
        assert len(metering._buffer) == 1
    finally:
        settings.REDIS_URL = ""
        metering._redis_down_until = 0.0
    ledger_flush_sync()
    assert UsageRecord.objects.filter(request_id=event.request_id).exists()


def test_it_records_fast():
    event = usage_event(None, status=401, prices=MOCK_PRICES)
    if settings.REDIS_URL:
        pytest.skip("timing the in-memory path only")
    start = time.perf_counter()
    for _ in range(2000):
        event.request_id = "req_" + uuid.uuid4().hex
        usage_record_sync(event)
    per_call = (time.perf_counter() - start) / 2000
    metering._buffer.clear()
    assert per_call < 0.0002
