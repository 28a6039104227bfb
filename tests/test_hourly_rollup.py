"""Hourly roll-ups: equal to the ledger per dimension, idempotent, re-rolled when rows arrive
late, kept through retention, percentiles from merged histograms."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from decimal import Decimal as D

import pytest
from django.apps import apps
from django.db.models import Sum

from billing.histograms import LATENCY_FIELDS, TTFT_FIELDS, percentile
from billing.hourly_rollup import usage_rollup_hour, usage_rollup_hours, usage_rollup_hours_due
from billing.metering import ledger_flush_sync
from billing.models import DailyUsage, HourlyUsage, RollupDay, RollupHour, UsageRecord
from billing.services import ledger_retention_apply, usage_rollup_day, utc_today
from billing.usage_hourly import UsageScope, totals, usage_aggregate
from tests.usage_seed import record_at

pytestmark = pytest.mark.usefixtures("empty_ledger_buffer")

UTC = timezone.utc


def hour_of(day, hour):
    return datetime.combine(day, time(hour), tzinfo=UTC)


@pytest.mark.django_db
def test_it_rolls_up_an_hour_per_dimension_with_histograms(alice_org, alice_key, charlie_org, charlie_key):
    hour = hour_of(utc_today() - timedelta(days=1), 10)
    record_at(alice_org, hour + timedelta(minutes=5), latency_ms=40, ttft_ms=None)
    record_at(alice_org, hour + timedelta(minutes=6), latency_ms=700, ttft_ms=120, streamed=True)
    record_at(alice_org, hour + timedelta(minutes=7), status=429, error_type="rate_limit_error", latency_ms=1)
    record_at(alice_org, hour + timedelta(minutes=8), status=502, error_type="api_error", latency_ms=70000)
    record_at(alice_org, hour + timedelta(minutes=9), endpoint="anthropic", public_model="gpt-4o", cache_read_tokens=60)
    record_at(charlie_org, hour + timedelta(minutes=59), prompt_tokens=5)
    record_at(alice_org, hour + timedelta(hours=1))  # the next hour: not in this roll-up
    ledger_flush_sync()

    assert usage_rollup_hour(hour=hour) == 5
    ok = HourlyUsage.objects.get(hour=hour, organization=alice_org, model_name="mock-echo", status_class="2xx")
    assert ok.requests == 2 and ok.endpoint == "openai" and ok.provider == "mock"
    # 40 ms in [0, 50), 700 ms in [500, 1000); one TTFT in [100, 250)
    assert [getattr(ok, f) for f in LATENCY_FIELDS] == [1, 0, 0, 0, 1] + [0] * 7
    assert [getattr(ok, f) for f in TTFT_FIELDS] == [0, 0, 1] + [0] * 9
    assert HourlyUsage.objects.get(hour=hour, organization=alice_org, status_class="429").requests == 1
    slow = HourlyUsage.objects.get(hour=hour, organization=alice_org, status_class="5xx")
    assert slow.latency_b11 == 1  # past the last bound
    assert HourlyUsage.objects.get(hour=hour, endpoint="anthropic").cache_read_tokens == 60
    rolled_cost = sum((h.cost for h in HourlyUsage.objects.filter(hour=hour)), D(0))
    ledger = UsageRecord.objects.filter(created_at__gte=hour, created_at__lt=hour + timedelta(hours=1))
    assert rolled_cost == sum((r.cost for r in ledger), D(0)) and rolled_cost > 0
    assert RollupHour.objects.get(hour=hour).ledger_rows == 6
    # Idempotent: again, same rows.
    assert usage_rollup_hour(hour=hour) == 5
    assert HourlyUsage.objects.filter(hour=hour).aggregate(n=Sum("requests"))["n"] == 6


@pytest.mark.django_db
def test_it_refuses_an_hour_that_is_not_over(alice_org):
    with pytest.raises(ValueError, match="not over yet"):
        usage_rollup_hour(hour=datetime.now(UTC))


@pytest.mark.django_db
def test_reads_combine_rolled_hours_late_rows_and_the_current_hour(alice_org, alice_key):
    now = datetime.now(UTC)
    earlier = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    record_at(alice_org, earlier + timedelta(minutes=1), prompt_tokens=1000)
    record_at(alice_org, now, prompt_tokens=10)  # current hour: never rolled up yet
    ledger_flush_sync()
    assert usage_rollup_hours() > 0
    assert RollupHour.objects.filter(hour=earlier, dirty=False).exists()
    # A row for a rolled-up hour arrives late: the hour turns dirty and reads take it from the ledger.
    record_at(alice_org, earlier + timedelta(minutes=30), prompt_tokens=100)
    ledger_flush_sync()
    assert RollupHour.objects.get(hour=earlier).dirty
    scope = UsageScope(start=earlier - timedelta(hours=1), end=earlier + timedelta(hours=5), organization_id=alice_org.pk)
    assert totals(usage_aggregate(scope))["prompt_tokens"] == 1110
    assert earlier in usage_rollup_hours_due()
    usage_rollup_hours()
    assert not RollupHour.objects.get(hour=earlier).dirty
    assert HourlyUsage.objects.filter(hour=earlier).aggregate(n=Sum("prompt_tokens"))["n"] == 1100
    scope = UsageScope(start=earlier - timedelta(hours=1), end=earlier + timedelta(hours=5), organization_id=alice_org.pk)
    assert totals(usage_aggregate(scope))["prompt_tokens"] == 1110


@pytest.mark.django_db
def test_retention_rolls_hours_up_before_deleting_the_day(alice_org, alice_key, settings):
    settings.BILLING_LEDGER_RETENTION_DAYS = 1
    old = utc_today() - timedelta(days=5)
    record_at(alice_org, hour_of(old, 7), prompt_tokens=321)
    ledger_flush_sync()
    usage_rollup_day(day=old)
    assert not RollupHour.objects.exists()  # the hourly task never ran
    assert ledger_retention_apply() == 1
    assert HourlyUsage.objects.get(hour=hour_of(old, 7)).prompt_tokens == 321
    assert RollupHour.objects.filter(pruned_at__isnull=False).count() == 24


@pytest.mark.django_db
def test_the_migration_carries_pruned_days_over_at_midnight(alice_org, alice_key):
    """Migration 0006: a pruned day's DailyUsage becomes hourly rows at 00:00 UTC; totals kept
    (0007 then derives the day tables from them, which whole-day reads use)."""
    from importlib import import_module

    day = utc_today() - timedelta(days=200)
    RollupDay.objects.create(day=day, rolled_up_at=datetime.now(UTC), pruned_at=datetime.now(UTC), ledger_rows=9)
    DailyUsage.objects.create(day=day, organization=alice_org, model_name="mock-echo", requests=9, error_requests=2,
                              prompt_tokens=900, completion_tokens=90, cost=D("1.2345678901"))
    import_module("billing.migrations.0006_hourly_usage").daily_to_hourly(apps, None)
    import_module("billing.migrations.0007_hourly_usage_days").hourly_to_days(apps, None)
    rows = HourlyUsage.objects.filter(hour=hour_of(day, 0))
    assert {(r.status_class, r.requests) for r in rows} == {("2xx", 7), ("err", 2)}
    scope = UsageScope(start=hour_of(day, 0), end=hour_of(day + timedelta(days=1), 0), organization_id=alice_org.pk)
    t = totals(usage_aggregate(scope))
    assert (t["requests"], t["errors"], t["prompt_tokens"], t["cost"]) == (9, 2, 900, D("1.2345678901"))
    assert RollupHour.objects.filter(pruned_at__isnull=False).count() == 24


def test_percentiles_interpolate_inside_buckets():
    assert percentile([0] * 12, 0.5) is None
    # 10 requests all in [500, 1000): p50 halfway.
    assert percentile([0, 0, 0, 0, 10] + [0] * 7, 0.5) == 750
    # The open last bucket reports its lower bound, never an invented number.
    assert percentile([0] * 11 + [3], 0.95) == 64000
