"""Budgets and alerts in the operator console, the set_alerts command, the migration of the old
alert fields into channels, and the budgets in GET /api/ai/usage."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone as dj_timezone
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from billing.alerts import alert_channels_set, budget_alerts_scan
from billing.models import AlertChannel, AlertDelivery, Budget, BudgetAlert
from gateway_site import background
from orgs.models import ApiKey, AuditLog
from tests.helpers import form_data, spend, wait_for
from tests.webhook_receiver import receiver_start

pytestmark = pytest.mark.usefixtures("empty_ledger_buffer")

UTC = timezone.utc


@pytest.fixture(autouse=True)
def embedded_background(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True
    background.clear()
    yield
    background.wait_idle(10)
    background.clear()


@pytest.fixture
def receiver():
    receiver, server = receiver_start()
    yield receiver
    server.shutdown()


def this_month() -> datetime:
    return dj_timezone.now().replace(day=1, hour=0, minute=0, second=1, microsecond=0)


@pytest.mark.django_db
def test_it_lists_each_organizations_spend_budget_and_percent_in_a_few_queries(console, alice_org, charlie_org):
    from orgs.services import organization_create

    Budget.objects.create(organization=alice_org, amount_usd=D("10.00"), period="month")
    Budget.objects.create(organization=charlie_org, amount_usd=D("2.00"), period="day")
    spend(alice_org, "3.2", this_month())
    spend(charlie_org, "0.5", dj_timezone.now())
    response = console.get(reverse("admin:orgs_organization_changelist"))
    page = response.content.decode()
    assert "month: $3.20 of $10.00 (32.00%)" in page
    assert "day: $0.50 of $2.00 (25.00%)" in page
    with CaptureQueriesContext(connection) as few:
        console.get(reverse("admin:orgs_organization_changelist"))
    for i in range(10):
        org = organization_create(slug=f"org{i}", name=f"Org {i}", actor="test")
        Budget.objects.create(organization=org, amount_usd=D("1"), period="month")
    with CaptureQueriesContext(connection) as many:
        assert console.get(reverse("admin:orgs_organization_changelist")).status_code == 200
    assert len(many) == len(few)  # not one more query per row


@pytest.mark.django_db(transaction=True)
def test_it_shows_budgets_channels_alerts_and_deliveries_on_the_organization_page(console, alice_org, receiver):
    budget = Budget.objects.create(organization=alice_org, amount_usd=D("10.00"), period="month")
    alert_channels_set(organization=alice_org, webhook_url=receiver.url, actor="test")
    receiver.script = [500]
    spend(alice_org, "6", this_month())
    [alert] = budget_alerts_scan()
    wait_for(lambda: AlertDelivery.objects.exists())
    url = reverse("admin:orgs_organization_change", args=[alice_org.pk])
    page = console.get(url).content.decode()
    assert 'name="budgets-0-amount_usd" value="10.00"' in page
    assert receiver.url in page
    assert "budget.threshold_crossed" in page and "$6.00" in page
    assert "Failed; will retry" in page and "HTTP 500" in page
    assert budget.pk and alert.pk

    # Redeliver: one more attempt, logged; and the operator's action audited.
    redeliver = reverse("admin:orgs_organization_redeliver_alert", args=[alice_org.pk, alert.pk])
    assert console.post(redeliver).status_code == 302
    wait_for(lambda: AlertDelivery.objects.filter(status="delivered").exists())
    assert [r.headers["webhook-id"] for r in receiver.requests] == [alert.payload["id"]] * 2
    assert AuditLog.objects.filter(action="redeliver_alert", organization=alice_org).count() == 1
    assert console.get(redeliver).status_code == 403  # POST only

    # A test alert is sent now and reported; it is not an alert row.
    response = console.post(reverse("admin:orgs_organization_send_test_alert", args=[alice_org.pk]), follow=True)
    assert "Test alert delivered to Signed JSON webhook" in response.content.decode()
    assert json.loads(receiver.requests[-1].body)["type"] == "budget.test"
    assert BudgetAlert.objects.count() == 1


@pytest.mark.django_db
def test_it_audits_budgets_edited_on_the_organization_page(console, alice, alice_org, alice_key):
    key = ApiKey.objects.get(organization=alice_org)
    url = reverse("admin:orgs_organization_change", args=[alice_org.pk])
    data = form_data(console.get(url).content.decode(), "organization_form")
    data.update({
        "budgets-TOTAL_FORMS": ["1"], "budgets-0-api_key": [str(key.pk)], "budgets-0-amount_usd": ["25.00"],
        "budgets-0-period": ["week"], "budgets-0-mode": ["soft"], "budgets-0-thresholds": ["80,100"],
    })
    assert console.post(url, data).status_code == 302
    budget = Budget.objects.get()
    assert (budget.api_key, budget.amount_usd, budget.period, budget.thresholds) == (key, D("25.00"), "week", "80,100")
    created = AuditLog.objects.get(action="create", object_type="billing.Budget")
    assert (created.actor, created.organization, created.changes["amount_usd"]) == (alice, alice_org, "25.00")

    data = form_data(console.get(url).content.decode(), "organization_form")
    data["budgets-0-amount_usd"] = ["30.00"]
    assert console.post(url, data).status_code == 302
    changed = AuditLog.objects.get(action="change", object_type="billing.Budget")
    assert changed.changes == {"amount_usd": {"old": "25.00", "new": "30.00"}}


@pytest.mark.django_db
def test_it_shows_a_new_webhooks_secret_once(console, alice_org, receiver):
    url = reverse("admin:orgs_organization_change", args=[alice_org.pk])
    data = form_data(console.get(url).content.decode(), "organization_form")
    data.update({"alert_channels-TOTAL_FORMS": ["1"], "alert_channels-0-kind": ["webhook"],
                 "alert_channels-0-target": [receiver.url], "alert_channels-0-enabled": ["on"]})
    response = console.post(url, data)
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    channel = AlertChannel.objects.get()
    assert channel.secret.startswith("whsec_") and channel.secret in response.content.decode()
    assert channel.secret not in console.get(url).content.decode()  # never again
    # Rotating shows the new one, once, and the old one stops verifying.
    rotate = console.post(reverse("admin:billing_alertchannel_changelist"),
                          {"action": "rotate_secret", "_selected_action": [channel.pk]})
    channel.refresh_from_db()
    assert channel.secret in rotate.content.decode()
    assert AuditLog.objects.filter(action="rotate_secret").count() == 1


@pytest.mark.django_db
def test_set_alerts_sets_channels_and_prints_the_webhook_secret_last(alice_org, capsys):
    call_command("set_alerts", "alice", "--email", "ops@alice.test", "--email", "cto@alice.test",
                 "--slack-url", "https://hooks.slack.com/services/T/B/X", "--webhook-url", "https://hooks.alice.test/b")
    out = capsys.readouterr().out.splitlines()
    secret = out[-1]
    assert secret.startswith("whsec_")
    Webhook(secret)  # a key the Standard Webhooks library accepts
    assert sorted(AlertChannel.objects.values_list("kind", "target")) == [
        ("email", "cto@alice.test"), ("email", "ops@alice.test"),
        ("slack", "https://hooks.slack.com/services/T/B/X"), ("webhook", "https://hooks.alice.test/b"),
    ]
    assert AlertChannel.objects.get(kind="webhook").secret == secret
    audit = AuditLog.objects.get(action="set_alerts")
    assert secret not in json.dumps(audit.changes)
    # Only the kinds given are replaced; no webhook given, no secret printed.
    call_command("set_alerts", "alice", "--email", "ops@alice.test")
    out = capsys.readouterr().out
    assert "whsec_" not in out
    assert AlertChannel.objects.filter(kind="email").count() == 1 and AlertChannel.objects.count() == 3
    call_command("set_alerts", "alice", "--webhook-url", "")
    assert not AlertChannel.objects.filter(kind="webhook").exists()


@pytest.mark.django_db
def test_set_alerts_refuses_bad_input(alice_org):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No organization"):
        call_command("set_alerts", "nobody", "--email", "a@b.test")
    with pytest.raises(CommandError, match="email address"):
        call_command("set_alerts", "alice", "--email", "not-an-address")
    with pytest.raises(CommandError, match="http"):
        call_command("set_alerts", "alice", "--webhook-url", "ftp://x.test/")
    assert not AlertChannel.objects.exists()


@pytest.mark.django_db
def test_usage_lists_the_organizations_budgets_with_this_periods_spend(alice_org, alice_key, charlie_org):
    from billing.periods import window

    key = ApiKey.objects.get(organization=alice_org)
    Budget.objects.create(organization=alice_org, amount_usd=D("10.00"), period="month", mode="hard")
    Budget.objects.create(organization=alice_org, api_key=key, amount_usd=D("4.00"), period="total", mode="soft")
    Budget.objects.create(organization=charlie_org, amount_usd=D("1.00"), period="day")
    spend(alice_org, "2.5", this_month(), key=key)
    response = APIClient().get("/api/ai/usage", HTTP_AUTHORIZATION=f"Bearer {alice_key}")
    body = json.loads(response.content, parse_float=D)
    month = window("month", dj_timezone.now())
    assert body["budgets"] == [
        {"scope": "organization", "key_prefix": None, "period": "month", "mode": "hard", "amount": D("10"),
         "spent": D("2.5"), "percent_used": D("25"), "period_start": month.start.isoformat(),
         "resets_at": month.end.isoformat()},
        {"scope": "key", "key_prefix": key.prefix, "period": "total", "mode": "soft", "amount": D("4"),
         "spent": D("2.5"), "percent_used": D("62.5"), "period_start": None, "resets_at": None},
    ]
    assert body["total_cost"] == D("2.5")  # the rest of the contract is unchanged


@pytest.mark.django_db(transaction=True)
def test_the_migration_turns_alert_fields_into_channels():
    before, after = [("billing", "0003_budget")], [("billing", "0004_alerts")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    Organization = apps.get_model("orgs", "Organization")
    Organization.objects.create(slug="both", name="Both", alert_emails="a@both.test, b@both.test,",
                                alert_webhook_url="https://hooks.both.test/x")
    Organization.objects.create(slug="slack", name="Slack", alert_webhook_url="https://hooks.slack.com/services/1")
    Organization.objects.create(slug="none", name="None")
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        apps = executor.loader.project_state(after).apps
        AlertChannel = apps.get_model("billing", "AlertChannel")
        rows = sorted((c.organization.slug, c.kind, c.target, c.secret.startswith("whsec_"))
                      for c in AlertChannel.objects.select_related("organization"))
        assert rows == [
            ("both", "email", "a@both.test", False), ("both", "email", "b@both.test", False),
            ("both", "webhook", "https://hooks.both.test/x", True),
            ("slack", "slack", "https://hooks.slack.com/services/1", False),
        ]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
