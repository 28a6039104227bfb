"""GET /api/ai/usage: the caller's organization's usage, exact to the last decimal."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
from rest_framework.test import APIClient

from billing.metering import ledger_flush_sync
from billing.models import UsageRecord
from billing.services import usage_rollup_day, utc_today
from orgs.models import ApiKey
from orgs.services import api_key_issue
from tests.helpers import get_usage, record, stop_background_flushers

pytestmark = pytest.mark.usefixtures("empty_ledger_buffer")


def ledger_cost(org, from_date, to_date):
    rows = UsageRecord.objects.filter(organization=org, created_at__date__range=(from_date, to_date))
    return sum((r.cost for r in rows), D(0))


@pytest.fixture
def history(alice_org, alice_key, charlie_org, charlie_key):
    """Alice: 4 rolled-up days, 2 closed days not rolled up yet, and today; Charlie: one big request."""
    today = utc_today()
    first_key = ApiKey.objects.get(organization=alice_org)
    second_key = api_key_issue(organization=alice_org, label="alice batch", actor="test").api_key
    for back in range(6, 0, -1):
        day = today - timedelta(days=back)
        for i in range(back + 2):
            record(alice_org, day, hour=i, key_id=first_key.pk, prompt_tokens=10_007 * (i + 1), completion_tokens=3_331 * back,
                   cache_read_tokens=1_001 * i, cache_write_tokens=7 * back)
        record(alice_org, day, key_id=second_key.pk, public_model="gpt-4o", prompt_tokens=999, completion_tokens=1)
    for i in range(3):
        record(alice_org, today, hour=0, key_id=first_key.pk, prompt_tokens=77_777, completion_tokens=12_345 + i)
    record(alice_org, today, hour=0, key_id=first_key.pk, status=502, error_type="api_error", prompt_tokens=0, completion_tokens=0)
    record(charlie_org, today, hour=0, prompt_tokens=5_000_000, completion_tokens=1_000_000)
    ledger_flush_sync()
    for back in range(6, 2, -1):
        usage_rollup_day(day=today - timedelta(days=back))
    # today-2 and today-1 are closed but not rolled up: they must still be counted.
    return {"today": today, "second_key": second_key}


@pytest.mark.django_db
def test_it_totals_equal_the_ledger_across_rolled_up_days_and_today(history, alice_org, alice_key):
    today = history["today"]
    start = today - timedelta(days=6)
    response, body = get_usage(alice_key, from_date=start.isoformat(), to_date=today.isoformat())
    assert response.status_code == 200
    assert response["content-type"] == "application/json"
    expected = ledger_cost(alice_org, start, today)
    assert body["total_cost"] == expected
    assert expected.as_tuple().exponent <= -6  # the test means something: many decimals
    assert f'"total_cost":{format(expected.normalize(), "f")},'.encode() in response.content
    rows = UsageRecord.objects.filter(organization=alice_org)
    assert body["total_requests"] == rows.count() == sum(b + 3 for b in range(1, 7)) + 4
    assert body["prompt_tokens"] == sum(r.prompt_tokens for r in rows)
    assert body["completion_tokens"] == sum(r.completion_tokens for r in rows)
    assert body["total_tokens"] == body["prompt_tokens"] + body["completion_tokens"]
    assert body["error_requests"] == 1
    assert (body["organization"], body["currency"]) == ("alice", "USD")
    assert (body["from_date"], body["to_date"]) == (start.isoformat(), today.isoformat())


@pytest.mark.django_db
def test_it_breaks_usage_down_by_model_day_and_key(history, alice_org, alice_key):
    today = history["today"]
    start = today - timedelta(days=6)
    _, body = get_usage(alice_key, from_date=start.isoformat(), to_date=today.isoformat())
    rows = UsageRecord.objects.filter(organization=alice_org)

    assert set(body["by_model"]) == {"mock-echo", "gpt-4o"}
    gpt = body["by_model"]["gpt-4o"]
    assert gpt == {"requests": 6, "tokens": 6 * 1000, "cost": sum((r.cost for r in rows.filter(model_name="gpt-4o")), D(0))}
    assert sum(m["cost"] for m in body["by_model"].values()) == body["total_cost"]

    days = [d["date"] for d in body["by_day"]]
    assert days == [(start + timedelta(days=i)).isoformat() for i in range(7)]
    assert all(d["cost"] == ledger_cost(alice_org, d["date"], d["date"]) for d in body["by_day"])
    assert body["by_day"][0]["requests"] == 6 + 2 + 1

    first_key = ApiKey.objects.get(organization=alice_org, label="alice server")
    assert set(body["by_key"]) == {first_key.prefix, history["second_key"].prefix}
    batch = body["by_key"][history["second_key"].prefix]
    assert (batch["label"], batch["requests"]) == ("alice batch", 6)
    assert sum(k["cost"] for k in body["by_key"].values()) == body["total_cost"]


@pytest.mark.django_db
def test_it_never_shows_another_organizations_usage(history, charlie_org, charlie_key):
    today = history["today"]
    _, body = get_usage(charlie_key, from_date=(today - timedelta(days=6)).isoformat(), to_date=today.isoformat())
    assert body["organization"] == "charlie"
    assert body["total_requests"] == 1
    assert body["total_cost"] == D("7")  # 5M x $1 + 1M x $2
    assert list(body["by_model"]) == ["mock-echo"] and len(body["by_key"]) == 1
    assert not any(prefix.startswith("dm_alice") for prefix in body["by_key"])


@pytest.mark.django_db
def test_it_defaults_to_the_current_month(alice_org, alice_key):
    today = utc_today()
    first = today.replace(day=1)
    record(alice_org, today, hour=0, prompt_tokens=1_000_000, completion_tokens=0)
    record(alice_org, first - timedelta(days=1), prompt_tokens=3_000_000, completion_tokens=0)  # last month
    ledger_flush_sync()
    response, body = get_usage(alice_key)
    assert response.status_code == 200
    assert body["from_date"] == first.isoformat()
    assert body["to_date"][:7] == today.isoformat()[:7] and body["to_date"] >= today.isoformat()
    assert (body["total_requests"], body["total_cost"]) == (1, D("1"))


@pytest.mark.django_db
def test_it_is_empty_but_well_formed_without_usage(alice_org, alice_key):
    _, body = get_usage(alice_key, from_date="2025-01-01", to_date="2025-01-31")
    assert body["total_cost"] == 0 and body["total_requests"] == 0
    assert body["by_model"] == {} and body["by_day"] == [] and body["by_key"] == {}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params, param",
    [
        ({"from_date": "2025-13-01"}, "from_date"),
        ({"from_date": "yesterday"}, "from_date"),
        ({"from_date": "20250101"}, "from_date"),
        ({"to_date": "2025-02-30"}, "to_date"),
        ({"from_date": "2025-03-02", "to_date": "2025-03-01"}, "to_date"),
    ],
)
def test_it_rejects_bad_or_reversed_dates_naming_the_parameter(alice_key, params, param):
    response, body = get_usage(alice_key, **params)
    assert response.status_code == 400
    assert body["error"]["param"] == param
    assert param in body["error"]["message"] and body["detail"]


@pytest.mark.django_db
def test_it_requires_a_key(alice_org):
    response = APIClient().get("/api/ai/usage")
    assert response.status_code == 401


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("key_cached", [True, False])
def test_it_answers_a_json_503_when_the_database_is_down(alice_key, gateway_url, monkeypatch, key_cached):
    import httpx
    from django.db import OperationalError
    from django.db.backends.base.base import BaseDatabaseWrapper

    from orgs.selectors import key_cache

    headers = {"authorization": f"Bearer {alice_key}"}
    assert httpx.get(f"{gateway_url}/api/ai/usage", headers=headers).status_code == 200
    if not key_cached:
        key_cache.clear()  # authentication itself needs the database

    def unreachable(self):
        raise OperationalError("connection refused")

    # A stand-in for the database driver, not for our code: every cursor fails as on a dead server.
    monkeypatch.setattr(BaseDatabaseWrapper, "cursor", unreachable)
    response = httpx.get(f"{gateway_url}/api/ai/usage", headers=headers)
    monkeypatch.undo()

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"]["code"] == "database_unavailable" and body["error"]["type"] == "server_error"
    assert "database" in body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]


@pytest.mark.django_db(transaction=True)
def test_it_writes_at_most_one_batch_of_a_backlog_before_answering(alice_org, alice_key):
    from billing import metering

    stop_background_flushers()  # only this request may drain: the backlog is what it would face
    for _ in range(3_000):
        record(alice_org, utc_today(), hour=0, prompt_tokens=1, completion_tokens=0)
    try:
        response, body = get_usage(alice_key)
        assert response.status_code == 200
        written = UsageRecord.objects.count()
        assert 0 < written <= 2 * metering.BATCH_ROWS, "its own buffer and one batch, not the cluster's backlog"
        assert metering.ledger_pending_sync() == 3_000 - written
        assert body["total_requests"] == written, "exact for the rows already in the database"
    finally:
        metering.ledger_flush_sync()
