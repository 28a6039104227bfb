"""GATEWAY_LEDGER_DRAIN=celery (issue 12): the gateway's event loop leaves the Redis ledger list to
the Celery `ledger_drain` task; the rows wait in Redis (durable) and reach the database when the
task runs, each once."""

from __future__ import annotations

import time

import pytest
from django.conf import settings as django_settings

from billing.metering import FLUSH_SECONDS, LEDGER_KEY
from core.shared_state import shared_state

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs REDIS_URL"),
]


def _chat(gateway) -> str:
    response = gateway.openai().chat.completions.with_raw_response.create(
        model="mock-echo", max_tokens=5, messages=[{"role": "user", "content": "hello"}])
    assert response.status_code == 200
    return response.headers["x-request-id"]


def test_with_celery_draining_the_gateway_leaves_rows_in_redis_for_the_task(gateway, settings):
    from billing.models import UsageRecord
    from billing.tasks import ledger_drain

    settings.GATEWAY_LEDGER_DRAIN = "celery"
    request_ids = [_chat(gateway) for _ in range(3)]
    time.sleep(4 * FLUSH_SECONDS)  # the gateway's background task ran several times meanwhile

    assert not UsageRecord.objects.filter(request_id__in=request_ids).exists()
    queued = shared_state().redis_sync().lrange(LEDGER_KEY, 0, -1)
    assert sum(any(rid in row for row in queued) for rid in request_ids) == 3

    ledger_drain()  # the Celery task's body, as the worker runs it every 5 s
    rows = UsageRecord.objects.filter(request_id__in=request_ids)
    assert sorted(r.request_id for r in rows) == sorted(request_ids)
    assert all(r.status == 200 and not r.lost_in_flight for r in rows)
    ledger_drain()  # nothing twice
    assert UsageRecord.objects.filter(request_id__in=request_ids).count() == 3


def test_by_default_the_gateway_process_drains_redis_itself(gateway):
    from billing.models import UsageRecord

    request_id = _chat(gateway)
    deadline = time.monotonic() + 10
    while not UsageRecord.objects.filter(request_id=request_id).exists():
        assert time.monotonic() < deadline, "the gateway's own background task never wrote the row"
        time.sleep(0.1)
