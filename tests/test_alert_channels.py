"""Alert channels (billing.alert_channels): email, Slack-compatible and signed JSON webhooks,
each sent once per call over real HTTP on loopback, with SSRF refusal."""

from __future__ import annotations

import pytest
from django.core import mail
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from billing.alert_channels import TRANSPORTS
from billing.alert_channels.outgoing import DestinationRefused, destination_check
from billing.alert_channels.webhook import secret_new
from tests.webhook_receiver import receiver_start

PAYLOAD = {
    "id": "alert_123",
    "type": "budget.threshold_crossed",
    "organization": "alice",
    "scope": "organization",
    "key_prefix": None,
    "period": "month",
    "mode": "hard",
    "budget_usd": "100.00",
    "spent_usd": "80.0123",
    "percent_used": 80.01,
    "threshold_percent": 80,
    "period_start": "2026-12-01T00:00:00+00:00",
    "period_end": "2027-01-01T00:00:00+00:00",
    "projected_spend_usd": None,
    "created_at": "2026-12-20T10:00:00+00:00",
}


@pytest.fixture
def receiver(settings):
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True
    receiver, server = receiver_start()
    yield receiver
    server.shutdown()


def test_it_signs_webhooks_so_a_standard_webhooks_library_verifies_them(receiver):
    secret = secret_new()
    outcome = TRANSPORTS["webhook"](target=receiver.url, secret=secret, payload=PAYLOAD)
    assert outcome.ok and outcome.status_code == 200
    [request] = receiver.requests
    assert request.headers["webhook-id"] == "alert_123"
    assert request.headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(request.body, request.headers) == PAYLOAD
    with pytest.raises(WebhookVerificationError):
        Webhook(secret_new()).verify(request.body, request.headers)


def test_it_posts_slack_text(receiver):
    outcome = TRANSPORTS["slack"](target=receiver.url, secret="", payload=PAYLOAD)
    assert outcome.ok
    import json

    text = json.loads(receiver.requests[0].body)["text"]
    assert "alice has used 80.01% of its month budget" in text
    assert "Spent $80.0123 of $100.00" in text


def test_it_reports_receiver_failures_as_retryable_or_not(receiver):
    receiver.script = [503, 404]
    first = TRANSPORTS["webhook"](target=receiver.url, secret=secret_new(), payload=PAYLOAD)
    second = TRANSPORTS["webhook"](target=receiver.url, secret=secret_new(), payload=PAYLOAD)
    assert (first.ok, first.retryable, first.status_code) == (False, True, 503)
    assert (second.ok, second.retryable, second.status_code) == (False, False, 404)
    assert "receiver says no" in first.error


def test_it_refuses_private_destinations_unless_allowed(settings):
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = False
    for url in ("http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://169.254.169.254/latest", "http://[::1]/x",
                "http://localhost/x", "ftp://example.com/x"):
        with pytest.raises(DestinationRefused):
            destination_check(url)
    outcome = TRANSPORTS["webhook"](target="http://127.0.0.1:9/x", secret=secret_new(), payload=PAYLOAD)
    assert not outcome.ok and not outcome.retryable and "destination refused" in outcome.error


def test_it_reports_a_connection_failure_as_retryable(settings):
    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcome = TRANSPORTS["slack"](target=f"http://127.0.0.1:{port}/x", secret="", payload=PAYLOAD)
    assert not outcome.ok and outcome.retryable and "connection failed" in outcome.error


def test_it_emails_the_alert():
    outcome = TRANSPORTS["email"](target="ops@alice.test", secret="", payload=dict(PAYLOAD, type="budget.exceeded"))
    assert outcome.ok
    [message] = mail.outbox
    assert message.to == ["ops@alice.test"]
    assert message.subject == "[AI gateway] alice has reached its month budget"
    assert "Requests are refused until the budget is raised" in message.body
