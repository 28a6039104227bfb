"""The usage endpoint reads roll-ups for closed days: a year of history costs a handful of queries."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import DailyUsage, RollupDay
from billing.services import utc_today
from orgs.models import ApiKey
from tests.helpers import record


@pytest.mark.django_db
def test_a_year_of_usage_answers_in_a_few_queries(alice_org, alice_key, django_assert_max_num_queries):
    from billing.metering import ledger_flush_sync

    today = utc_today()
    key = ApiKey.objects.get(organization=alice_org)
    rows, markers, expected = [], [], D(0)
    for back in range(1, 366):
        day = today - timedelta(days=back)
        markers.append(RollupDay(day=day, rolled_up_at=timezone.now()))
        for model, cost in (("gpt-4o", D("1.2345678901")), ("claude-3-5-sonnet", D("0.0000000007"))):
            rows.append(DailyUsage(day=day, organization=alice_org, api_key=key, model_name=model, requests=3,
                                   prompt_tokens=300, completion_tokens=30, cost=cost))
            expected += cost
    DailyUsage.objects.bulk_create(rows)
    RollupDay.objects.bulk_create(markers)
    record(alice_org, today, key_id=key.pk, prompt_tokens=1_000, completion_tokens=100)
    ledger_flush_sync()
    from billing.models import UsageRecord

    expected += UsageRecord.objects.get(organization=alice_org).cost

    # 8 for the usage itself, 1 for the organization's budgets (none here; with budgets, one aggregate
    # per distinct period window more), 1 for the cache-version check (core.CacheVersion), made at
    # most once a second per process in production and on every request under the tests'
    # GATEWAY_CACHE_CHECK_SECONDS=0, and 1 for the budgets that apply to the key, loaded with it (the
    # request path reads them) and cached with it.
    with django_assert_max_num_queries(11):
        response = APIClient().get(
            "/api/ai/usage",
            {"from_date": (today - timedelta(days=365)).isoformat(), "to_date": today.isoformat()},
            HTTP_AUTHORIZATION=f"Bearer {alice_key}",
        )
    assert response.status_code == 200
    body = json.loads(response.content, parse_float=D)
    assert body["total_cost"] == expected
    assert body["total_requests"] == 365 * 6 + 1
    assert len(body["by_day"]) == 366
