"""Whole UTC days read from HourlyUsageDay and HourlyUsageOrgDay (derived from the hours by the
roll-up) give exactly the numbers the hours and the ledger give: per day, per dimension,
histograms included, in any time zone, through late rows and re-rolls, on the dashboards and
the staff usage API."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal as D

import pytest
from django.contrib.auth.models import User
from django.db.models import F
from rest_framework.test import APIClient

from billing.histograms import LATENCY_FIELDS, TTFT_FIELDS, bucket_ranges
from billing.hourly_rollup import usage_rollup_hours
from billing.metering import ledger_flush_sync
from billing.models import HourlyUsageDay, HourlyUsageOrgDay, RollupHour, UsageRecord
from core.time_zones import zone
from billing.usage_hourly import UsageScope, hour_ceil, usage_aggregate
from dashboard.params import view_parse
from orgs.members import staff_token_issue
from orgs.models import Organization
from orgs.services import api_key_issue
from tests.usage_seed import record_at

pytestmark = pytest.mark.usefixtures("empty_ledger_buffer")

UTC = timezone.utc
SUMS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens", "cost",
        *LATENCY_FIELDS, *TTFT_FIELDS)
ZONES = ("", "Etc/UTC", "Europe/London", "Asia/Kolkata", "America/St_Johns", "Pacific/Kiritimati")


def seed_days(alice_org, charlie_org, now: datetime) -> datetime:
    """Four whole UTC days back and today up to now: two organizations, three keys, two models
    on two providers, errors, streams, cache reads, latencies across the histogram. Returns the
    first midnight (the roll-up marks every hour from there on)."""
    first = datetime.combine(now.date() - timedelta(days=4), time.min, tzinfo=UTC)
    alice_keys = list(alice_org.api_keys.order_by("pk"))
    for day in range(5):
        for hour in (0, 3, 11, 17, 23):
            when = first + timedelta(days=day, hours=hour, minutes=7)
            if when >= now:
                continue
            n = day * 24 + hour
            record_at(alice_org, when, key_id=alice_keys[0].pk, prompt_tokens=1000 + n, completion_tokens=200,
                      cache_read_tokens=300, latency_ms=30 + 97 * n, ttft_ms=20 + 11 * n, streamed=True)
            record_at(alice_org, when, key_id=alice_keys[1].pk, public_model="gpt-4o", provider="openai",
                      prompt_tokens=500, completion_tokens=50 + day, latency_ms=1500 + 40 * hour)
            record_at(charlie_org, when, prompt_tokens=7000, completion_tokens=700, latency_ms=200)
            if hour == 11:
                record_at(alice_org, when, key_id=alice_keys[0].pk, status=502, error_type="api_error",
                          prompt_tokens=0, completion_tokens=0, latency_ms=70000)
                record_at(charlie_org, when, status=429, error_type="rate_limit_error", prompt_tokens=0,
                          completion_tokens=0, latency_ms=1)
    ledger_flush_sync()
    return first


def ledger_truth(start: datetime, end: datetime, dims: tuple, tz: str | None) -> dict:
    """The ledger summed in Python per dims (and local day in tz, unless None): what every read
    must agree with."""
    out: dict = defaultdict(Counter)
    ranges = bucket_ranges()
    for r in UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end):
        key = tuple(getattr(r, d) for d in dims)
        if tz is not None:
            key += (r.created_at.astimezone(zone(tz)).date(),)
        c = out[key]
        c["requests"] += 1
        c["errors"] += r.status >= 400
        for name in ("prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens"):
            c[name] += getattr(r, name)
        c["cost"] += r.cost
        for fields, value in ((LATENCY_FIELDS, r.latency_ms), (TTFT_FIELDS, r.ttft_ms)):
            if value is not None:
                c[next(f for f, (low, high) in zip(fields, ranges) if high is None or value < high)] += 1
    return {k: {name: v[name] for name in SUMS} for k, v in out.items()}


def read(scope: UsageScope, dims: tuple, bucket: str | None) -> dict:
    rows = usage_aggregate(scope, dims, bucket=bucket, histograms=True)
    return {tuple(r[d] for d in dims) + ((r["bucket"],) if bucket else ()): {n: r[n] for n in SUMS} for r in rows}


@pytest.fixture
def days(alice_org, alice_key, charlie_org, charlie_key):
    api_key_issue(organization=alice_org, label="alice batch", actor="test")
    now = datetime.now(UTC)
    first = seed_days(alice_org, charlie_org, now)
    usage_rollup_hours()
    return first, hour_ceil(now)


@pytest.mark.django_db
def test_the_roll_up_derives_each_day_from_its_hours(days):
    first, end = days
    assert RollupHour.objects.filter(hour__gte=first, hour__lt=first + timedelta(days=4), dirty=False).count() == 96
    for day in range(4):
        start = first + timedelta(days=day)
        day_rows = HourlyUsageDay.objects.filter(day=start.date())
        assert day_rows.exists()
        truth = ledger_truth(start, start + timedelta(days=1), ("organization_id", "api_key_id", "model_name", "provider"), None)
        stored = {(r.organization_id, r.api_key_id, r.model_name, r.provider): {n: getattr(r, n) for n in SUMS} for r in day_rows}
        assert stored == truth
        org_truth = ledger_truth(start, start + timedelta(days=1), ("organization_id", "model_name", "provider"), None)
        org_rows = HourlyUsageOrgDay.objects.filter(day=start.date())
        assert {(r.organization_id, r.model_name, r.provider): {n: getattr(r, n) for n in SUMS} for r in org_rows} == org_truth


@pytest.mark.django_db
@pytest.mark.parametrize("dims", [(), ("organization_id",), ("model_name",), ("organization_id", "api_key_id", "model_name", "provider")])
def test_whole_days_give_the_numbers_of_the_hours_and_the_ledger(days, dims):
    first, end = days
    scope = UsageScope(start=first, end=end)
    by_day = read(scope, dims, "day")  # whole days from HourlyUsageDay, today from hours and the ledger
    by_hour: dict = defaultdict(Counter)  # every hour from HourlyUsage (and the ledger), summed per UTC day here
    for key, sums in read(scope, dims, "hour").items():
        by_hour[key[:-1] + (key[-1].date(),)].update(sums)
    assert by_day == ledger_truth(first, end, dims, "")
    assert by_day == {k: {n: v[n] for n in SUMS} for k, v in by_hour.items()}
    assert read(scope, dims, None) == ledger_truth(first, end, dims, None)
    # And the whole days did come from the day tables (the organization-level one when no key is
    # asked for): a change there shows in day reads.
    table = HourlyUsageDay if "api_key_id" in dims else HourlyUsageOrgDay
    changed = table.objects.filter(day=first.date()).update(requests=F("requests") + 1000)
    assert sum(v["requests"] for v in read(scope, dims, "day").values()) == sum(v["requests"] for v in by_day.values()) + 1000 * changed


@pytest.mark.django_db
@pytest.mark.parametrize("tz", ZONES)
def test_any_time_zone_gives_its_local_days_and_the_same_totals(days, tz):
    first, end = days
    scope = UsageScope(start=first, end=end, tz=tz)
    dims = ("organization_id", "model_name")
    assert read(scope, dims, "day") == ledger_truth(first, end, dims, tz)
    assert read(scope, dims, None) == ledger_truth(first, end, dims, None)


@pytest.mark.django_db
def test_a_late_row_is_counted_before_and_after_its_hour_is_rolled_up_again(days, alice_org):
    first, end = days
    scope = UsageScope(start=first, end=end)
    late = first + timedelta(days=1, hours=5, minutes=30)
    record_at(alice_org, late, public_model="late-model", prompt_tokens=12345, completion_tokens=1, latency_ms=5)
    ledger_flush_sync()
    assert RollupHour.objects.get(hour=late.replace(minute=0)).dirty
    truth = ledger_truth(first, end, ("model_name",), "")
    assert read(scope, ("model_name",), "day") == truth  # the dirty day from its hours and the ledger
    assert not HourlyUsageDay.objects.filter(day=late.date(), model_name="late-model").exists()
    usage_rollup_hours()
    assert HourlyUsageDay.objects.get(day=late.date(), model_name="late-model").prompt_tokens == 12345
    assert read(scope, ("model_name",), "day") == truth


@pytest.mark.django_db
def test_staff_api_day_buckets_equal_its_hour_buckets(days):
    first, end = days
    token = staff_token_issue(user=User.objects.create_user("olivia", password="pw", is_staff=True), actor="test").plaintext

    def results(bucket: str) -> dict:
        response = APIClient().get("/api/ai/admin/usage", {"start": first.isoformat(), "bucket": bucket, "limit": 7 if bucket == "1d" else 168,
                                                            "group_by": "organization,model"}, HTTP_AUTHORIZATION=f"Bearer {token}")
        body = json.loads(response.content, parse_float=D)
        assert response.status_code == 200 and not body["has_more"], body
        out: dict = defaultdict(Counter)
        for b in body["data"]:
            day = datetime.fromtimestamp(b["start_time"], UTC).date()
            for r in b["results"]:
                out[(day, r["organization"], r["model"])].update(
                    {k: r[k] for k in ("num_model_requests", "errors", "input_tokens", "output_tokens", "cost_usd")})
        return out

    daily = results("1d")
    assert {day for day, _, _ in daily} == {r.created_at.astimezone(UTC).date() for r in UsageRecord.objects.all()}
    assert daily == results("1h")
    assert sum(v["cost_usd"] for v in daily.values()) == sum((r.cost for r in UsageRecord.objects.all()), D(0))


@pytest.mark.django_db
def test_dashboard_pages_agree_with_the_ledger_whichever_path(days, client, alice_org):
    first, end = days
    User.objects.create_superuser("olivia", "o@example.com", "pw")
    client.login(username="olivia", password="pw")
    start = first.date().isoformat()
    today = (end - timedelta(hours=1)).date().isoformat()
    truth = ledger_truth(first, end, ("organization_id",), None)
    slugs = dict(Organization.objects.values_list("pk", "slug"))
    for tz in ("", "Asia/Kolkata"):
        # Custom local days: in UTC whole days plus today's hours; in Kolkata hours at both ends.
        query = {"range": "custom", "start": start, "end": today, "tz": tz}
        page = client.get("/dashboard/", query).context
        expected = ledger_truth(*view_parse(query).window(), ("organization_id",), None)
        assert page["summary"]["cost"] == sum(v["cost"] for v in expected.values()) > 0
        assert page["summary"]["requests"] == sum(v["requests"] for v in expected.values())
        assert {o["slug"]: o["cost"] for o in page["top_orgs"]} == {slugs[k[0]]: v["cost"] for k, v in expected.items()}
    org_page = client.get(f"/dashboard/orgs/alice/?range=custom&start={start}&end={today}").context
    assert org_page["summary"]["cost"] == truth[(alice_org.pk,)]["cost"]
