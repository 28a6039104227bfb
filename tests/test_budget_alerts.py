"""Budget alerts (billing.alerts): each threshold fires exactly once per period window, even
under concurrent evaluation in several processes, and reaches every channel (email, Slack,
signed webhook) through the background thread, with retries and a delivery log.

Spend is written through the real ledger path (usage_record_sync, then a flush). Services take
`now`, so period boundaries are tested with fixed instants and no clock mocking. Deliveries run
on the embedded background thread with its own database connection: the data is committed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal as D

import pytest
from django.core import mail
from django.db import connection
from standardwebhooks.webhooks import Webhook

from billing import alerts
from billing.alerts import budget_alert_signal, budget_alerts_evaluate, budget_alerts_scan
from billing.metering import ledger_flush_sync
from billing.models import AlertChannel, AlertDelivery, Budget, BudgetAlert
from billing.selectors import budget_spend, budget_window
from gateway_site import background
from tests.helpers import spend, wait_for
from tests.webhook_receiver import receiver_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("empty_ledger_buffer")]

UTC = timezone.utc
# 30 of 31 days into the month: late enough that the spend below is not forecast to exceed.
LATE_MARCH = datetime(2026, 3, 31, 0, 0, tzinfo=UTC)


def budgets():
    return Budget.objects.select_related("organization", "api_key")


@pytest.fixture(autouse=True)
def embedded_background(settings):
    """Deliveries on this process's background thread (as in the embedded default), also when the
    suite runs with REDIS_URL; nothing left queued for the next test."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    background.clear()
    yield
    background.wait_idle(10)
    background.clear()


@pytest.fixture
def receiver():
    receiver, server = receiver_start()
    yield receiver
    if receiver.hold is not None:
        receiver.hold.set()
    server.shutdown()


@pytest.fixture
def month_budget(alice_org):
    return Budget.objects.create(organization=alice_org, amount_usd=D("10.00"), period="month", mode="soft")


def test_it_fires_each_threshold_once_per_period(alice_org, month_budget):
    spend(alice_org, "5.5", datetime(2026, 3, 2, tzinfo=UTC))
    assert [(a.type, a.threshold_percent) for a in budget_alerts_evaluate(budgets=budgets(), now=LATE_MARCH)] == [
        ("budget.threshold_crossed", 50)
    ]
    assert budget_alerts_evaluate(budgets=budgets(), now=LATE_MARCH) == []
    spend(alice_org, "2.6", datetime(2026, 3, 10, tzinfo=UTC))
    spend(alice_org, "1.9", datetime(2026, 3, 11, tzinfo=UTC))  # exactly $10.00: 100% crossed
    created = budget_alerts_evaluate(budgets=budgets(), now=LATE_MARCH)
    assert [(a.type, a.threshold_percent) for a in created] == [
        ("budget.threshold_crossed", 80), ("budget.exceeded", 100)
    ]
    assert budget_alerts_scan(now=LATE_MARCH) == []
    # April is a new window: nothing spent there yet, nothing fires; spend counts afresh.
    april = datetime(2026, 4, 2, tzinfo=UTC)
    assert budget_alerts_evaluate(budgets=budgets(), now=april) == []
    spend(alice_org, "5", datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC))
    [again] = budget_alerts_evaluate(budgets=budgets(), now=april)
    assert (again.threshold_percent, again.window_key, again.spent_usd) == (50, "20260401T000000Z", D("5"))
    assert BudgetAlert.objects.count() == 4


def test_it_counts_the_first_refusal_as_crossing_100_percent(alice_org, alice_key, month_budget):
    Budget.objects.filter(pk=month_budget.pk).update(mode="hard")
    spend(alice_org, "7", datetime(2026, 3, 2, tzinfo=UTC))
    created = budget_alerts_evaluate(budgets=budgets(), refused_ids=[month_budget.pk], now=LATE_MARCH)
    assert {(a.type, a.threshold_percent) for a in created} == {
        ("budget.threshold_crossed", 50), ("budget.exceeded", 100)
    }
    exceeded = BudgetAlert.objects.get(threshold_percent=100)
    assert exceeded.payload["percent_used"] == 70.0 and exceeded.payload["spent_usd"] == "7.00"
    # Spend later reaching 100% is the same slot: no second "exceeded", nor a second refusal's.
    spend(alice_org, "4", datetime(2026, 3, 3, tzinfo=UTC))
    assert [a.threshold_percent for a in budget_alerts_evaluate(budgets=budgets(), now=LATE_MARCH)] == [80]
    assert budget_alerts_evaluate(budgets=budgets(), refused_ids=[month_budget.pk], now=LATE_MARCH) == []


def test_it_forecasts_once_but_not_in_the_first_tenth_of_the_period(alice_org, month_budget):
    spend(alice_org, "2", datetime(2026, 3, 1, 1, tzinfo=UTC))
    # Two days into March (6.5%): $2 would project to ~$31, but it is too early to say.
    assert budget_alerts_evaluate(budgets=budgets(), now=datetime(2026, 3, 3, 0, tzinfo=UTC)) == []
    # Four days in (12.9%): $2 projects to $15.50 > $10.
    four_days = datetime(2026, 3, 5, 0, tzinfo=UTC)
    [forecast] = budget_alerts_evaluate(budgets=budgets(), now=four_days)
    assert forecast.type == "budget.forecast_exceeded" and forecast.threshold_percent is None
    assert forecast.payload["projected_spend_usd"] == "15.50"
    assert forecast.payload["threshold_percent"] is None
    assert budget_alerts_evaluate(budgets=budgets(), now=datetime(2026, 3, 6, tzinfo=UTC)) == []
    # Not on course to exceed: no forecast (a fresh month, a slow pace).
    spend(alice_org, "0.5", datetime(2026, 4, 1, 1, tzinfo=UTC))
    assert budget_alerts_evaluate(budgets=budgets(), now=datetime(2026, 4, 20, tzinfo=UTC)) == []


def test_it_keys_windows_to_the_organizations_time_zone(alice_org):
    alice_org.timezone = "America/New_York"
    alice_org.save()
    budget = Budget.objects.create(organization=alice_org, amount_usd=D("1.00"), period="day", thresholds="100")
    budget = budgets().get(pk=budget.pk)
    # 23:30 in New York on 31 January is 04:30 UTC on 1 February: still the 31st's budget day.
    late_31st = datetime(2026, 2, 1, 4, 30, tzinfo=UTC)
    spend(alice_org, "0.6", datetime(2026, 1, 31, 5, 0, tzinfo=UTC))  # 00:00 New York, 31st
    spend(alice_org, "0.4", datetime(2026, 2, 1, 4, 59, 59, tzinfo=UTC))  # 23:59:59 New York, 31st
    spend(alice_org, "0.7", datetime(2026, 2, 1, 5, 0, tzinfo=UTC))  # midnight New York, 1 February
    window = budget_window(budget, late_31st)
    assert (window.start, window.end) == (datetime(2026, 1, 31, 5, tzinfo=UTC), datetime(2026, 2, 1, 5, tzinfo=UTC))
    assert budget_spend(budget, window) == D("1.0")
    [alert] = budget_alerts_evaluate(budgets=budgets(), now=late_31st)
    assert alert.payload["period_start"] == "2026-01-31T05:00:00+00:00"
    assert alert.payload["period_end"] == "2026-02-01T05:00:00+00:00"
    # The next local day has only $0.70 and starts afresh: the 31st's alert is not repeated; at
    # 07:00 local its pace forecasts $2.40.
    next_day = budget_alerts_evaluate(budgets=budgets(), now=datetime(2026, 2, 1, 12, tzinfo=UTC))
    assert [(a.type, a.window_key, a.payload["projected_spend_usd"]) for a in next_day] == [
        ("budget.forecast_exceeded", "20260201T050000Z", "2.40")
    ]


def test_it_scans_many_budgets_in_a_few_queries(django_assert_max_num_queries, alice_org, alice_key):
    from orgs.services import api_key_issue, organization_create

    for i in range(12):
        org = organization_create(slug=f"org{i}", name=f"Org {i}", actor="test")
        key = api_key_issue(organization=org, actor="test").api_key
        Budget.objects.create(organization=org, amount_usd=D("1"), period=["day", "week", "month", "total"][i % 4])
        Budget.objects.create(organization=org, api_key=key, amount_usd=D("1"), period="month")
        spend(org, "0.01", LATE_MARCH, key=key)
    with django_assert_max_num_queries(14):
        assert budget_alerts_scan(now=LATE_MARCH) == []


def test_it_emails_the_alert(alice_org, alice_key):
    from orgs.models import ApiKey

    key = ApiKey.objects.get(organization=alice_org)
    AlertChannel.objects.create(organization=alice_org, kind="email", target="ops@alice.test")
    Budget.objects.create(organization=alice_org, api_key=key, amount_usd=D("100.00"), period="month")
    spend(alice_org, "80.0123", datetime(2026, 3, 3, tzinfo=UTC), key=key)
    created = budget_alerts_scan(now=LATE_MARCH)
    assert [a.threshold_percent for a in created] == [50, 80]
    alert = created[1]
    wait_for(lambda: AlertDelivery.objects.filter(status="delivered").count() == 2)
    assert len(mail.outbox) == 2
    message = next(m for m in mail.outbox if alert.payload["id"] in m.body)
    assert message.to == ["ops@alice.test"]
    assert message.subject == f"[AI gateway] Key {key.prefix} of alice has used 80.01% of its month budget"
    assert message.body.splitlines() == [
        "Spent $80.0123 of $100.00 (80.01%) between 2026-03-01T00:00:00+00:00 and 2026-04-01T00:00:00+00:00.",
        "Projected by the end of the period: $82.6793766667.",
        f"Alert {alert.payload['id']}, created 2026-03-31T00:00:00+00:00.",
    ]


def test_it_posts_signed_webhooks_and_slack_text(alice_org, month_budget, receiver):
    secret = alerts.alert_channels_set(organization=alice_org, webhook_url=receiver.url,
                                       slack_url=receiver.url.replace("budget", "slack"), actor="test")
    spend(alice_org, "8.5", datetime(2026, 3, 3, tzinfo=UTC))
    created = budget_alerts_scan(now=LATE_MARCH)
    assert len(created) == 2  # 50 and 80
    wait_for(lambda: AlertDelivery.objects.filter(status="delivered").count() == 4)
    hooks = [r for r in receiver.requests if r.path == "/hooks/budget"]
    slack = [r for r in receiver.requests if r.path == "/hooks/slack"]
    assert len(hooks) == 2 and len(slack) == 2
    by_threshold = {}
    for request in hooks:
        body = Webhook(secret).verify(request.body, request.headers)
        assert request.headers["webhook-id"] == body["id"]
        by_threshold[body["threshold_percent"]] = body
    eighty = BudgetAlert.objects.get(threshold_percent=80)
    assert by_threshold[80] == {
        "id": eighty.payload["id"],
        "type": "budget.threshold_crossed",
        "organization": "alice",
        "scope": "organization",
        "key_prefix": None,
        "period": "month",
        "mode": "soft",
        "budget_usd": "10.00",
        "spent_usd": "8.50",
        "percent_used": 85.0,
        "threshold_percent": 80,
        "period_start": "2026-03-01T00:00:00+00:00",
        "period_end": "2026-04-01T00:00:00+00:00",
        "projected_spend_usd": "8.7833333333",
        "created_at": "2026-03-31T00:00:00+00:00",
    }
    texts = sorted(json.loads(r.body)["text"] for r in slack)
    assert texts[0].startswith("*[AI gateway] alice has used 85.0% of its month budget*\nSpent $8.50 of $10.00")


def test_it_retries_after_a_receiver_failure(alice_org, month_budget, receiver, monkeypatch):
    monkeypatch.setattr(alerts, "ALERT_RETRY_DELAYS", (0.05, 0.05, 0.05, 0.05, 0.05))
    receiver.script = [500, 503]
    alerts.alert_channels_set(organization=alice_org, webhook_url=receiver.url, actor="test")
    spend(alice_org, "5", datetime(2026, 3, 3, tzinfo=UTC))
    [alert] = budget_alerts_scan(now=LATE_MARCH)
    wait_for(lambda: AlertDelivery.objects.filter(status="delivered").exists())
    log = list(AlertDelivery.objects.filter(alert=alert).order_by("attempt").values_list(
        "attempt", "status", "response_code"))
    assert log == [(1, "retrying", 500), (2, "retrying", 503), (3, "delivered", 200)]
    assert "receiver says no" in AlertDelivery.objects.get(attempt=1).error
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert ids == {alert.payload["id"]} and len(receiver.requests) == 3  # one id: receivers can deduplicate


def test_it_gives_up_after_the_last_retry(alice_org, month_budget, receiver, monkeypatch):
    monkeypatch.setattr(alerts, "ALERT_RETRY_DELAYS", (0.01, 0.01, 0.01, 0.01, 0.01))
    receiver.script = [500] * 10
    alerts.alert_channels_set(organization=alice_org, webhook_url=receiver.url, actor="test")
    spend(alice_org, "5", datetime(2026, 3, 3, tzinfo=UTC))
    budget_alerts_scan(now=LATE_MARCH)
    wait_for(lambda: AlertDelivery.objects.filter(status="failed").exists())
    background.wait_idle(5)
    statuses = list(AlertDelivery.objects.order_by("attempt").values_list("status", flat=True))
    assert statuses == ["retrying"] * 5 + ["failed"]
    assert len(receiver.requests) == 6


def test_it_logs_an_ssrf_refusal_and_does_not_retry(alice_org, month_budget, settings):
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = False
    AlertChannel.objects.create(organization=alice_org, kind="webhook", target="http://169.254.169.254/latest",
                                secret="whsec_" + "A" * 43 + "=")
    spend(alice_org, "5", datetime(2026, 3, 3, tzinfo=UTC))
    budget_alerts_scan(now=LATE_MARCH)
    wait_for(lambda: AlertDelivery.objects.exists())
    background.wait_idle(5)
    [delivery] = AlertDelivery.objects.all()
    assert (delivery.status, delivery.response_code) == ("failed", None)
    assert "destination refused" in delivery.error and "link-local" in delivery.error


def test_concurrent_evaluators_in_three_processes_create_and_send_each_alert_once(alice_org, month_budget, receiver):
    alerts.alert_channels_set(organization=alice_org, webhook_url=receiver.url,
                              slack_url=receiver.url.replace("budget", "slack"), actor="test")
    spend(alice_org, "8.5", datetime(2026, 3, 3, tzinfo=UTC))
    start_at = time.time() + 3  # after both subprocesses have imported Django
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # their own background thread
    argv = [sys.executable, "-m", "tests.alert_evaluator", connection.settings_dict["NAME"], str(start_at),
            LATE_MARCH.isoformat()]
    others = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    connection.close()  # a fresh connection, like theirs
    while time.time() < start_at:
        time.sleep(0.001)
    mine = len(budget_alerts_scan(now=LATE_MARCH))
    outputs = [p.communicate(timeout=60) for p in others]
    assert all(p.returncode == 0 for p in others), [err[-2000:] for _, err in outputs]
    background.wait_idle(10)
    assert mine + sum(int(out.strip()) for out, _ in outputs) == 2
    assert sorted(BudgetAlert.objects.values_list("threshold_percent", flat=True)) == [50, 80]
    wait_for(lambda: AlertDelivery.objects.count() == 4)
    assert sorted(r.path for r in receiver.requests) == ["/hooks/budget"] * 2 + ["/hooks/slack"] * 2
    assert len({r.headers.get("webhook-id") for r in receiver.requests if r.path == "/hooks/budget"}) == 2


def test_the_signal_delivers_on_the_background_thread_while_requests_go_on(gateway, alice_org, receiver):
    """A slow receiver holds a delivery open; the gateway keeps answering requests meanwhile."""
    import threading

    from billing.models import UsageRecord

    # Soft: the request path reads budgets now, and a hard one would refuse the request instead.
    budget = Budget.objects.create(organization=alice_org, amount_usd=D("0.01"), period="month", thresholds="100",
                                   mode="soft")
    spend(alice_org, "0.00999", datetime.now(UTC))  # the next request crosses 100%
    alerts.alert_channels_set(organization=alice_org, webhook_url=receiver.url, actor="test")
    receiver.hold = threading.Event()
    client = gateway.openai()
    client.chat.completions.create(model="mock-echo", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
    # The gateway meters just after answering: wait for the row, as a settle would have it.
    wait_for(lambda: ledger_flush_sync() or UsageRecord.objects.filter(organization=alice_org).count() == 2)
    budget_alert_signal(budget_id=budget.pk)  # returns at once: only queued
    wait_for(lambda: receiver.requests)  # the delivery is now waiting on the receiver...
    second = client.chat.completions.create(model="mock-echo", messages=[{"role": "user", "content": "again"}],
                                            max_tokens=5)
    assert second.choices[0].message.content  # ...and the gateway answered anyway
    assert not AlertDelivery.objects.exists()
    receiver.hold.set()
    delivery = wait_for(lambda: AlertDelivery.objects.first())
    assert delivery.status == "delivered" and len(receiver.requests) == 1
    assert BudgetAlert.objects.get().type == "budget.exceeded"
