"""The ledger and roll-ups in the operator console: browsable, never counted in full, read-only,
exportable as CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.metering import ledger_flush_sync
from billing.models import DailyUsage, UsageRecord
from billing.services import usage_rollup_day, utc_today
from tests.helpers import record

pytestmark = pytest.mark.usefixtures("empty_ledger_buffer")

LEDGER = reverse("admin:billing_usagerecord_changelist")
DAILY = reverse("admin:billing_dailyusage_changelist")
EXPORT = reverse("admin:billing_usage_export")


@pytest.fixture
def console(django_user_model) -> Client:
    alice = django_user_model.objects.create_superuser("alice", "alice@example.com", "correct horse battery")
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def usage(catalog, alice_org, alice_key, charlie_org, charlie_key):
    today = utc_today()
    yesterday = today - timedelta(days=1)
    record(alice_org, yesterday, prompt_tokens=1_000_000, completion_tokens=0)
    record(alice_org, yesterday, public_model="gpt-4o", prompt_tokens=500_000, completion_tokens=0)
    record(alice_org, yesterday, status=429, error_type="rate_limit_error", prompt_tokens=0, completion_tokens=0)
    record(charlie_org, yesterday, prompt_tokens=0, completion_tokens=250_000)
    record(alice_org, today, hour=0, prompt_tokens=3_000_000, completion_tokens=0)
    ledger_flush_sync()
    usage_rollup_day(day=yesterday)
    return {"today": today, "yesterday": yesterday}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [{}, {"status_class": "429"}, {"status_class": "ok"}, {"status_class": "5xx"}, {"model_name": "gpt-4o"},
     {"endpoint": "openai"}, {"q": "req_x"}],
)
def test_it_browses_the_ledger_by_filter(console, usage, alice_org, params):
    response = console.get(LEDGER, params)
    assert response.status_code == 200
    expected = UsageRecord.objects.count() if not params or "endpoint" in params else None
    if params == {"status_class": "429"}:
        expected = 1
    if params == {"model_name": "gpt-4o"}:
        expected = 1
    if expected is not None:
        assert len(response.context["cl"].result_list) == expected


@pytest.mark.django_db
def test_it_filters_the_ledger_by_organization_key_and_date(console, usage, alice_org):
    key = alice_org.api_keys.first()
    day = usage["yesterday"]
    for params in (
        {"organization__id__exact": alice_org.pk},
        {"api_key__id__exact": key.pk},
        {"created_at__year": day.year, "created_at__month": day.month, "created_at__day": day.day},
    ):
        response = console.get(LEDGER, params)
        assert response.status_code == 200, params
    rows = console.get(LEDGER, {"organization__id__exact": alice_org.pk}).context["cl"].result_list
    assert {r.organization_id for r in rows} == {alice_org.pk} and len(rows) == 4


@pytest.mark.django_db
def test_it_never_counts_the_whole_ledger(console, usage):
    with CaptureQueriesContext(connection) as queries:
        assert console.get(LEDGER).status_code == 200
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper() and "billing_usagerecord" in q["sql"]]
    assert counts, "the changelist should still show a (capped) count"
    assert all("LIMIT" in sql.upper() for sql in counts)


@pytest.mark.django_db
def test_it_keeps_the_ledger_and_roll_ups_read_only(console, usage):
    row = UsageRecord.objects.first()
    assert console.get(reverse("admin:billing_usagerecord_add")).status_code == 403
    page = console.get(reverse("admin:billing_usagerecord_change", args=[row.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    daily = DailyUsage.objects.first()
    assert console.get(reverse("admin:billing_dailyusage_add")).status_code == 403
    page = console.get(reverse("admin:billing_dailyusage_change", args=[daily.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert console.post(reverse("admin:billing_usagerecord_delete", args=[row.pk]), {"post": "yes"}).status_code == 403
    assert UsageRecord.objects.filter(pk=row.pk).exists()


def _csv(response) -> list[dict]:
    assert response["content-type"] == "text/csv"
    return list(csv.DictReader(io.StringIO(response.content.decode())))


@pytest.mark.django_db
def test_it_exports_selected_roll_ups_as_csv(console, usage):
    ids = [str(pk) for pk in DailyUsage.objects.values_list("pk", flat=True)]
    response = console.post(DAILY, {"action": "export_csv", "_selected_action": ids})
    rows = _csv(response)
    day = usage["yesterday"].isoformat()
    assert [(r["organization"], r["day"], r["model"], r["requests"], r["cost_usd"]) for r in rows] == [
        ("alice", day, "gpt-4o", "1", "0.5000000000"),
        ("alice", day, "mock-echo", "2", "1.0000000000"),
        ("charlie", day, "mock-echo", "1", "0.5000000000"),
    ]
    assert rows[1]["error_requests"] == "1"


@pytest.mark.django_db
def test_it_exports_usage_including_today_per_organization_day_and_model(console, usage):
    today, yesterday = usage["today"], usage["yesterday"]
    response = console.get(EXPORT, {"from_date": yesterday.isoformat(), "to_date": today.isoformat(), "organization": "alice"})
    rows = _csv(response)
    assert [(r["day"], r["model"], r["cost_usd"]) for r in rows] == [
        (yesterday.isoformat(), "gpt-4o", "0.5000000000"),
        (yesterday.isoformat(), "mock-echo", "1.0000000000"),
        (today.isoformat(), "mock-echo", "3.0000000000"),
    ]
    total = sum(D(r["cost_usd"]) for r in rows)
    assert total == sum(r.cost for r in UsageRecord.objects.filter(organization__slug="alice"))
    assert console.get(EXPORT, {"from_date": "nope"}).status_code == 400


@pytest.mark.django_db
def test_it_keeps_the_export_for_staff(client, usage):
    response = client.get(EXPORT)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
@pytest.mark.parametrize("params", [{"to_date": "9999-12-31"}, {"from_date": "0001-01-01"}])
def test_it_refuses_dates_past_the_calendar_with_a_400(console, usage, params):
    response = console.get(EXPORT, params)
    assert response.status_code == 400
    assert response["content-type"] == "text/plain"
    assert "must be between" in response.content.decode()


@pytest.mark.django_db
def test_it_writes_zero_cost_as_a_plain_decimal_and_defuses_formulas(console, usage, alice_org):
    day = usage["yesterday"] - timedelta(days=1)  # not rolled up: read from the ledger
    # Model names are whatever clients sent: a spreadsheet must show them, not run them.
    refused = dict(status=404, error_type="model_not_found", prompt_tokens=0, completion_tokens=0)
    record(alice_org, day, public_model='=HYPERLINK("http://evil.test","x")', **refused)
    record(alice_org, day, public_model="@SUM(A1)", **refused)
    ledger_flush_sync()
    response = console.get(EXPORT, {"from_date": day.isoformat(), "to_date": day.isoformat(), "organization": "alice"})
    by_model = {r["model"]: r for r in _csv(response)}
    assert set(by_model) == {"'=HYPERLINK(\"http://evil.test\",\"x\")", "'@SUM(A1)"}
    assert by_model["'@SUM(A1)"]["cost_usd"] == "0.0000000000"
