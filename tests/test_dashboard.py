"""The dashboards: staff see every organization, a member only their own (direct URLs, query
parameters, CSV); numbers agree with /api/ai/usage; time zones never change totals."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from billing.hourly_rollup import usage_rollup_hours
from billing.models import Budget, UsageRecord
from orgs.members import organization_member_add
from orgs.services import api_key_issue
from tests.server_helpers import manage, process_env
from tests.usage_seed import record_at, seed_traffic

pytestmark = pytest.mark.usefixtures("empty_ledger_buffer")

UTC = timezone.utc


@pytest.fixture
def traffic(alice_org, alice_key, charlie_org, charlie_key):
    api_key_issue(organization=alice_org, label="alice batch", actor="test")
    seed_traffic(alice_org, charlie_org)
    usage_rollup_hours()  # closed hours from HourlyUsage, the current one from the ledger
    return alice_org


@pytest.fixture
def staff(client):
    User.objects.create_superuser("olivia", "o@example.com", "pw")
    client.login(username="olivia", password="pw")
    return client


@pytest.fixture
def bob(client, alice_org):
    organization_member_add(organization=alice_org, username="bob", password="bob-pw", actor="test")
    client.login(username="bob", password="bob-pw")
    return client


def csv_rows(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.mark.django_db
def test_it_shows_the_overview_to_staff(staff, traffic, charlie_org):
    response = staff.get("/dashboard/?range=7d")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Top organizations by spend" in html and "charlie" in html and "alice" in html
    charts = response.context["charts"]
    assert {d["label"] for d in charts["spend"]} == {"alice", "charlie"}
    by_model = staff.get("/dashboard/?range=7d&stack=model")
    assert {d["label"] for d in by_model.context["charts"]["spend"]} == {"mock-echo", "gpt-4o"}
    latency = {m["model"]: m for m in response.context["latency"]}
    assert latency["gpt-4o"]["latency_p50"] is not None and latency["gpt-4o"]["ttft_p50"] is None  # never streamed


@pytest.mark.django_db
def test_dashboard_totals_agree_with_the_usage_api(staff, traffic, alice_org, alice_key):
    today = datetime.now(UTC).date()
    start = today - timedelta(days=6)
    body = json.loads(
        APIClient().get("/api/ai/usage", {"from_date": start.isoformat(), "to_date": today.isoformat()},
                        HTTP_AUTHORIZATION=f"Bearer {alice_key}").content,
        parse_float=D,
    )
    page = staff.get(f"/dashboard/orgs/{alice_org.slug}/?range=custom&start={start}&end={today}")
    summary = page.context["summary"]
    assert summary["cost"] == body["total_cost"] > 0
    assert summary["requests"] == body["total_requests"]
    assert summary["errors"] == body["error_requests"] > 0
    assert summary["prompt_tokens"] + summary["completion_tokens"] == body["total_tokens"]
    rows = csv_rows(staff.get(f"/dashboard/export.csv?org=alice&range=custom&start={start}&end={today}"))
    assert sum(D(r["cost_usd"]) for r in rows) == body["total_cost"]
    assert {r["organization"] for r in rows} == {"alice"}


@pytest.mark.django_db
def test_time_zones_shift_days_but_never_totals(staff, traffic):
    # A zone whose date is not UTC's right now: UTC+14 is a day ahead from 10:00 UTC, UTC-11 a
    # day behind until 11:00 UTC (a fixed zone would have the same days as UTC part of each day).
    today = datetime.now(UTC).date()
    zone = next(name for name in ("Pacific/Kiritimati", "Pacific/Pago_Pago")
                if datetime.now(ZoneInfo(name)).date() != today)
    utc = staff.get("/dashboard/orgs/alice/?range=30d").context
    far = staff.get(f"/dashboard/orgs/alice/?range=30d&tz={zone}").context
    assert utc["summary"]["cost"] == far["summary"]["cost"]
    assert utc["summary"]["requests"] == far["summary"]["requests"]
    assert utc["charts"]["labels"] != far["charts"]["labels"]
    utc_csv = csv_rows(staff.get("/dashboard/export.csv?org=alice&range=30d"))
    far_csv = csv_rows(staff.get(f"/dashboard/export.csv?org=alice&range=30d&tz={zone}"))
    assert sum(D(r["cost_usd"]) for r in utc_csv) == sum(D(r["cost_usd"]) for r in far_csv)


@pytest.mark.django_db
def test_a_member_sees_their_organization_only(bob, traffic, charlie_org, charlie_key):
    assert bob.get("/dashboard/").url.startswith("/dashboard/orgs/alice/")
    page = bob.get("/dashboard/orgs/alice/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "dm_alice_" in html and "charlie" not in html
    charlie_prefix = charlie_org.api_keys.first().prefix
    for url in (
        "/dashboard/orgs/charlie/",
        f"/dashboard/orgs/charlie/keys/{charlie_prefix}/",
        f"/dashboard/orgs/alice/keys/{charlie_prefix}/",
        "/dashboard/ledger/?org=charlie",
        "/dashboard/export.csv?org=charlie",
        f"/dashboard/export.csv?key={charlie_prefix}",
    ):
        assert bob.get(url).status_code == 404, url
    ledger = bob.get("/dashboard/ledger/?range=7d").content.decode()
    assert "dm_alice_" in ledger and "dm_charlie_" not in ledger
    rows = csv_rows(bob.get("/dashboard/export.csv?range=7d"))
    assert rows and {r["organization"] for r in rows} == {"alice"}
    # Never the admin, nor the staff usage API.
    assert bob.get("/admin/").status_code == 302
    assert bob.get("/api/ai/admin/usage?start=2025-01-01").status_code == 403


@pytest.mark.django_db
def test_people_without_access_are_turned_away(client, traffic):
    assert client.get("/dashboard/").url.startswith("/accounts/login/")
    assert client.get("/dashboard/export.csv").url.startswith("/accounts/login/")
    User.objects.create_user("mallory", password="pw")
    client.login(username="mallory", password="pw")
    assert client.get("/dashboard/orgs/alice/").status_code == 403


@pytest.mark.django_db
def test_no_data_is_not_zero(staff, alice_org, alice_key):
    empty = staff.get("/dashboard/orgs/alice/").content.decode()
    assert "No data in this range" in empty and "$0.00" not in empty
    record_at(alice_org, datetime.now(UTC), prompt_tokens=0, completion_tokens=0)  # a free request
    from billing.metering import ledger_flush_sync

    ledger_flush_sync()
    zero = staff.get("/dashboard/orgs/alice/").content.decode()
    assert "No data in this range" not in zero and "$0.00" in zero


@pytest.mark.django_db
def test_bad_parameters_get_a_400_page_not_a_500(staff):
    for query, message in (("range=3w", "range must be"), ("range=custom&start=2025-02-30&end=2025-03-01", "real date"),
                           ("tz=Mars/Olympus", "unknown time zone"), ("at=yesterday", "at must be")):
        response = staff.get(f"/dashboard/?{query}")
        assert response.status_code == 400, query
        assert message in response.content.decode()


@pytest.mark.django_db
def test_budget_gauges_count_closed_hours_and_the_current_one(staff, alice_org, alice_key):
    Budget.objects.create(organization=alice_org, amount_usd=D("1.00"), period="month")
    now = datetime.now(UTC)
    record_at(alice_org, now.replace(day=1, hour=0, minute=1), prompt_tokens=10_000_000)
    record_at(alice_org, now, prompt_tokens=10_000_000)
    from billing.metering import ledger_flush_sync

    ledger_flush_sync()
    usage_rollup_hours()
    gauge = staff.get("/dashboard/orgs/alice/").context["gauges"][0]
    spent = sum((r.cost for r in UsageRecord.objects.filter(organization=alice_org)), D(0))
    assert gauge["spent"] == spent > 0
    assert gauge["percent"] == pytest.approx(float(spent * 100))


@pytest.mark.django_db
def test_the_admin_landing_page_links_to_the_overview(staff):
    assert 'href="/dashboard/"' in staff.get("/admin/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_add_org_member_takes_the_password_from_the_environment(alice_org, client):
    env = process_env(ORG_MEMBER_PASSWORD="s3cret-pw")
    out = manage("add_org_member", "alice", "bob", env=env).stdout
    assert "bob can now log in" in out
    assert client.login(username="bob", password="s3cret-pw")
    assert client.get("/dashboard/orgs/alice/").status_code == 200
    User.objects.create_superuser("root", "r@example.com", "pw")
    with pytest.raises(Exception):
        manage("add_org_member", "alice", "root", env=env)


@pytest.mark.django_db
def test_the_last_alerts_panel_shows_budget_alerts(staff, bob, alice_org, alice_key, charlie_org, charlie_key):
    from billing.alerts import budget_alerts_scan
    from billing.metering import ledger_flush_sync

    Budget.objects.create(organization=alice_org, amount_usd=D("0.01"), period="month", mode="soft")
    Budget.objects.create(organization=charlie_org, amount_usd=D("0.01"), period="month", mode="soft")
    record_at(alice_org, datetime.now(UTC), prompt_tokens=10_000_000)
    record_at(charlie_org, datetime.now(UTC), prompt_tokens=10_000_000)
    ledger_flush_sync()
    assert budget_alerts_scan()
    staff.logout()
    staff.login(username="olivia", password="pw")
    overview = staff.get("/dashboard/")
    assert {a.organization.slug for a in overview.context["alerts"]} == {"alice", "charlie"}
    assert "data-alert" in overview.content.decode()
    staff.logout()
    bob.login(username="bob", password="bob-pw")
    mine = bob.get("/dashboard/orgs/alice/")
    assert mine.context["alerts"] and {a.organization.slug for a in mine.context["alerts"]} == {"alice"}
