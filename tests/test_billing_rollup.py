"""Daily roll-ups and retention: idempotent, equal to the raw ledger, never losing a day."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.db.models import Sum

from billing.metering import ledger_flush_sync, usage_record_sync
from billing.models import DailyUsage, RollupDay, UsageRecord
from billing.services import ledger_retention_apply, usage_rollup_day, utc_today
from billing.tasks import ledger_drain, ledger_retention, usage_rollup
from tests.helpers import MOCK_PRICES, record, usage_event

pytestmark = pytest.mark.usefixtures("empty_ledger_buffer")


def ledger_cost(**filters):
    return sum((r.cost for r in UsageRecord.objects.filter(**filters)), D(0))


def daily_totals(day):
    return DailyUsage.objects.filter(day=day).aggregate(
        requests=Sum("requests"), prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens")
    ) | {"cost": sum((d.cost for d in DailyUsage.objects.filter(day=day)), D(0))}


@pytest.mark.django_db
def test_it_rolls_up_a_day_per_org_key_and_model(alice_org, alice_key, charlie_org, charlie_key):
    day = utc_today() - timedelta(days=2)
    for i in range(5):
        record(alice_org, day, prompt_tokens=1000 + i, completion_tokens=333 + i)
    record(alice_org, day, public_model="gpt-4o", prompt_tokens=7, completion_tokens=9)
    record(alice_org, day, status=429, error_type="rate_limit_error", prompt_tokens=0, completion_tokens=0)
    record(charlie_org, day, prompt_tokens=50, completion_tokens=5)
    record(alice_org, day + timedelta(days=1), hour=0)  # the next day: not in this roll-up
    record(alice_org, day - timedelta(days=1), hour=23)  # the day before: neither
    ledger_flush_sync()

    assert usage_rollup_day(day=day) == 3
    alice_mock = DailyUsage.objects.get(day=day, organization=alice_org, model_name="mock-echo")
    assert (alice_mock.requests, alice_mock.error_requests) == (6, 1)
    assert alice_mock.prompt_tokens == sum(1000 + i for i in range(5))
    assert alice_mock.cost == ledger_cost(organization=alice_org, model_name="mock-echo", created_at__date=day)
    assert DailyUsage.objects.get(day=day, organization=alice_org, model_name="gpt-4o").requests == 1
    assert DailyUsage.objects.get(day=day, organization=charlie_org).cost == D("0.00006")
    assert RollupDay.objects.get(day=day).ledger_rows == 8


@pytest.mark.django_db
def test_it_is_idempotent(alice_org, alice_key):
    day = utc_today() - timedelta(days=1)
    for i in range(30):
        record(alice_org, day, hour=i % 24, prompt_tokens=123_457 * (i + 1), completion_tokens=98_765 + i,
               cache_read_tokens=1000 * i)
    ledger_flush_sync()
    usage_rollup_day(day=day)
    first = daily_totals(day)
    usage_rollup_day(day=day)
    usage_rollup.apply(kwargs={"day": day.isoformat()})
    assert daily_totals(day) == first
    assert DailyUsage.objects.filter(day=day).count() == 1
    assert first["cost"] == ledger_cost(created_at__date=day)
    assert first["requests"] == 30


@pytest.mark.django_db
def test_it_picks_up_rows_recorded_after_a_roll_up(alice_org, alice_key):
    day = utc_today() - timedelta(days=1)
    record(alice_org, day)
    ledger_flush_sync()
    usage_rollup_day(day=day)
    record(alice_org, day, hour=23)  # a long stream that started before midnight, recorded late
    ledger_flush_sync()
    usage_rollup_day(day=day)
    assert daily_totals(day)["requests"] == 2


@pytest.mark.django_db
def test_it_refuses_to_roll_up_today(alice_org):
    with pytest.raises(ValueError, match="not over"):
        usage_rollup_day(day=utc_today())


@pytest.mark.django_db
def test_it_rolls_up_every_due_day_when_scheduled(alice_org, alice_key):
    today = utc_today()
    for back in (5, 3, 2):
        record(alice_org, today - timedelta(days=back))
    record(alice_org, today)
    ledger_flush_sync()
    usage_rollup.apply()
    rolled = set(RollupDay.objects.values_list("day", flat=True))
    # Every settled day from the oldest row on, empty days included; never today.
    assert today - timedelta(days=5) in rolled and today - timedelta(days=2) in rolled
    assert today - timedelta(days=4) in rolled
    assert today not in rolled
    assert sum(d.requests for d in DailyUsage.objects.all()) == 3


@pytest.mark.django_db
def test_it_deletes_old_ledger_rows_only_for_rolled_up_days(alice_org, alice_key, settings):
    settings.BILLING_LEDGER_RETENTION_DAYS = 30
    today = utc_today()
    old_rolled, old_unrolled, recent = (today - timedelta(days=40), today - timedelta(days=39), today - timedelta(days=3))
    for day in (old_rolled, old_unrolled, recent):
        record(alice_org, day, prompt_tokens=1000, completion_tokens=1000)
    ledger_flush_sync()
    usage_rollup_day(day=old_rolled)
    usage_rollup_day(day=recent)
    before = daily_totals(old_rolled)

    assert ledger_retention.apply().get() == 1
    remaining = {r.created_at.date() for r in UsageRecord.objects.all()}
    assert remaining == {old_unrolled, recent}
    assert RollupDay.objects.get(day=old_rolled).pruned_at is not None
    # A pruned day keeps its roll-up: rolling it up again must not wipe it to zero.
    usage_rollup_day(day=old_rolled)
    assert daily_totals(old_rolled) == before and before["cost"] == D("0.003")
    assert ledger_retention_apply() == 0


@pytest.mark.django_db
def test_it_drains_the_buffer_from_the_celery_task(alice_org, alice_key):
    event = usage_event(alice_org, prices=MOCK_PRICES)
    usage_record_sync(event)
    ledger_drain.apply()
    assert UsageRecord.objects.filter(request_id=event.request_id).exists()


@pytest.mark.django_db
def test_a_row_arriving_after_its_day_was_rolled_up_reaches_usage_and_the_roll_up(alice_org, alice_key):
    from billing.services import usage_rollup_due
    from tests.helpers import get_usage

    day = utc_today() - timedelta(days=3)  # not the latest settled day, which is re-rolled anyway
    record(alice_org, day, prompt_tokens=1_000_000, completion_tokens=0)
    ledger_flush_sync()
    usage_rollup.apply()
    assert daily_totals(day)["requests"] == 1

    record(alice_org, day, hour=23, prompt_tokens=2_000_000, completion_tokens=0)  # drained late
    ledger_flush_sync()
    _, body = get_usage(alice_key, from_date=day.isoformat(), to_date=day.isoformat())
    assert body["total_requests"] == 2, "read from the ledger until the day is rolled up again"
    assert D(body["total_cost"]) == ledger_cost(created_at__date=day)

    usage_rollup.apply()
    assert daily_totals(day)["requests"] == 2 and daily_totals(day)["cost"] == ledger_cost(created_at__date=day)
    assert RollupDay.objects.get(day=day).dirty is False
    assert day not in usage_rollup_due(), "re-rolled once, not on every pass"
    _, body = get_usage(alice_key, from_date=day.isoformat(), to_date=day.isoformat())
    assert body["total_requests"] == 2 and D(body["total_cost"]) == ledger_cost(created_at__date=day)
