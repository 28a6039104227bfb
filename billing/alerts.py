"""Budget alerts: decide which have fired, create each exactly once, deliver it to every channel.

Exactly once rests on the database, not on timing: an alert is a BudgetAlert row unique per
(budget, threshold, period window) (forecasts: per budget and window). Evaluators insert the rows
they think are due; a concurrent evaluator in another process loses on the unique constraint and
moves on, and delivery is enqueued only by the transaction whose insert committed
(`transaction.on_commit`). So however many instances scan, settle or refuse at once, each
channel gets one alert, with retries logged as AlertDelivery rows.

Evaluation runs off the request path: the periodic scan (`budget_alerts_scan`, every minute) and
`budget_alert_signal`, which admission calls after a refusal or a settle and which only queues.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from core import deferred
from core.metrics import alert_delivery_count

from .alert_channels import TRANSPORTS, DeliveryOutcome
from .alert_channels.webhook import secret_new
from .models import AlertChannel, AlertDelivery, Budget, BudgetAlert
from .periods import PeriodWindow
from .selectors import BudgetStatus, budget_statuses

logger = logging.getLogger(__name__)

# Seconds before attempts 2 to 6: exponential, about an hour from the first attempt to the last.
ALERT_RETRY_DELAYS = (120, 240, 480, 960, 1920)
# A forecast from the first tenth of a period is mostly noise (one busy morning).
FORECAST_MIN_ELAPSED = Decimal("0.10")
EXCEEDED_PERCENT = 100

Type = BudgetAlert.Type


# --- entry points ---------------------------------------------------------------------------


def budget_alert_signal(*, budget_id: int, refused: bool = False) -> None:
    """Evaluate one budget's alerts soon, off the request path. Admission calls this when a hard
    budget refuses a request (`refused=True`: counts as crossing 100% if spend has not) or when
    a settle may have crossed a threshold. Only appends to an in-memory queue; while an
    evaluation of the same budget is still waiting, further signals are dropped."""
    deferred.submit(_signal_forward, budget_id, refused, key=("budget-alert", budget_id, refused))


def _signal_forward(budget_id: int, refused: bool) -> None:
    from .tasks import budget_alerts_evaluate

    deferred.task_run(budget_alerts_evaluate, budget_id, refused)


def budget_alerts_scan(*, now: datetime | None = None) -> list[BudgetAlert]:
    """Evaluate every budget (the periodic task): alerts fire even when nothing signalled them."""
    budgets = Budget.objects.select_related("organization", "api_key").filter(organization__is_active=True)
    return budget_alerts_evaluate(budgets=budgets, now=now)


def budget_alerts_evaluate(
    *, budgets: Iterable[Budget], refused_ids: Iterable[int] = (), now: datetime | None = None
) -> list[BudgetAlert]:
    """Create the alerts that are due for these budgets at `now`; returns the ones this call
    created (an alert another evaluator created first is not returned, nor delivered again).

    Reads: one query for the alerts already sent in the current windows, plus budget_statuses'
    few aggregate queries. Writes: one insert per new alert.
    """
    now = now or timezone.now()
    refused = set(refused_ids)
    statuses = budget_statuses(budgets, now)
    if not statuses:
        return []
    sent = set(
        BudgetAlert.objects.filter(
            budget_id__in=[s.budget.pk for s in statuses], window_key__in={s.window.key for s in statuses}
        ).values_list("budget_id", "window_key", "type", "threshold_percent")
    )
    sent_slots = {(b, key, None if t == Type.FORECAST_EXCEEDED else p) for b, key, t, p in sent}
    created = []
    for status in statuses:
        for alert_type, threshold in _due(status, refused, now):
            if (status.budget.pk, status.window.key, threshold) in sent_slots:
                continue
            alert = _alert_create(status, alert_type, threshold, now)
            if alert is not None:
                created.append(alert)
    return created


def _due(status: BudgetStatus, refused: set[int], now: datetime) -> list[tuple[str, int | None]]:
    budget, spent, amount = status.budget, status.spent, status.budget.amount_usd
    due = []
    if amount > 0:
        for threshold in budget.threshold_list:
            if spent * 100 >= amount * threshold:
                kind = Type.EXCEEDED if threshold >= EXCEEDED_PERCENT else Type.THRESHOLD_CROSSED
                due.append((kind, threshold))
    if budget.pk in refused and not any(t == EXCEEDED_PERCENT for _, t in due):
        # A hard budget reserves each request's worst case, so it refuses before spend reaches
        # the amount: the first refusal is the period's "exceeded" (the 100 slot either way).
        due.append((Type.EXCEEDED, EXCEEDED_PERCENT))
    projected = _projected(status, now)
    if amount > 0 and spent < amount and projected is not None and projected > amount:
        elapsed = _elapsed(status.window, now)
        if elapsed is not None and elapsed >= FORECAST_MIN_ELAPSED:
            due.append((Type.FORECAST_EXCEEDED, None))
    return due


def _elapsed(window: PeriodWindow, now: datetime) -> Decimal | None:
    if window.start is None or window.end is None or now <= window.start:
        return None
    span = Decimal((window.end - window.start).total_seconds())
    return min(Decimal(1), Decimal((now - window.start).total_seconds()) / span)


def _projected(status: BudgetStatus, now: datetime) -> Decimal | None:
    """Spend so far extrapolated linearly to the end of the period; None for "total" budgets."""
    elapsed = _elapsed(status.window, now)
    if not elapsed:
        return None
    return (status.spent / elapsed).quantize(Decimal("0.0000000001"))


# --- creating an alert ---------------------------------------------------------------------


def money(value: Decimal | None) -> str | None:
    """Money as a decimal string: exact to the ledger's 1e-10, trailing zeros dropped, at least
    cents ("80.0123", "100.00")."""
    if value is None:
        return None
    text = format(value.quantize(Decimal("0.0000000001")).normalize(), "f")
    whole, _, cents = text.partition(".")
    return f"{whole}.{cents.ljust(2, '0')}"


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(dt_timezone.utc).isoformat() if value is not None else None


def alert_payload(
    *, alert_id: str, alert_type: str, status: BudgetStatus, threshold: int | None, projected: Decimal | None,
    created_at: datetime,
) -> dict:
    """The body every channel receives (the signed webhook's JSON, the email's facts)."""
    budget = status.budget
    percent = status.percent_used
    return {
        "id": alert_id,
        "type": alert_type,
        "organization": budget.organization.slug,
        "scope": budget.scope,
        "key_prefix": budget.api_key.prefix if budget.api_key_id else None,
        "period": budget.period,
        "mode": budget.mode,
        "budget_usd": money(budget.amount_usd),
        "spent_usd": money(status.spent),
        "percent_used": float(percent) if percent is not None else None,
        "threshold_percent": threshold,
        "period_start": _iso(status.window.start),
        "period_end": _iso(status.window.end),
        "projected_spend_usd": money(projected),
        "created_at": _iso(created_at),
    }


def _alert_create(status: BudgetStatus, alert_type: str, threshold: int | None, now: datetime) -> BudgetAlert | None:
    budget = status.budget
    projected = _projected(status, now)
    payload = alert_payload(
        alert_id=f"alert_{uuid.uuid4().hex}", alert_type=alert_type, status=status, threshold=threshold,
        projected=projected, created_at=now,
    )
    try:
        # A savepoint: losing the race must not spoil a caller's transaction.
        with transaction.atomic():
            alert = BudgetAlert.objects.create(
                organization_id=budget.organization_id, budget=budget, type=alert_type, threshold_percent=threshold,
                period_start=status.window.start, period_end=status.window.end, window_key=status.window.key,
                spent_usd=status.spent, budget_usd=budget.amount_usd,
                percent_used=status.percent_used if status.percent_used is not None else Decimal(0),
                projected_spend_usd=projected, payload=payload, created_at=now,
            )
            # Only the process whose insert commits delivers; a rolled-back insert sends nothing.
            transaction.on_commit(lambda: alert_deliveries_enqueue(alert=alert))
    except IntegrityError:
        return None  # another evaluator created it first: it delivers, not us
    logger.info("budget alert %s: %s for budget %s (%s)", payload["id"], alert_type, budget.pk, status.window.key)
    return alert


# --- delivery -----------------------------------------------------------------------------


def alert_deliveries_enqueue(*, alert: BudgetAlert) -> int:
    """Queue the first delivery attempt of the alert to each enabled channel of its organization."""
    from .tasks import alert_deliver

    channels = list(
        AlertChannel.objects.filter(organization_id=alert.organization_id, enabled=True).values_list("pk", flat=True)
    )
    for channel_id in channels:
        deferred.task_run(alert_deliver, alert.pk, channel_id, 1)
    return len(channels)


def alert_retry_delay(tries: int) -> float:
    """Seconds to wait after the `tries`-th failed attempt in a row."""
    return ALERT_RETRY_DELAYS[min(tries, len(ALERT_RETRY_DELAYS)) - 1]


def alert_delivery_attempt(*, alert_id: int, channel_id: int, tries: int = 1) -> AlertDelivery | None:
    """Send the alert to the channel once and log the attempt. `tries` counts this run of
    attempts (a redelivery starts again at 1); the status says whether another will follow.
    None when the alert or channel is gone, or the channel is disabled."""
    alert = BudgetAlert.objects.filter(pk=alert_id).first()
    if alert is None:
        return None
    channel = AlertChannel.objects.filter(pk=channel_id, organization_id=alert.organization_id, enabled=True).first()
    if channel is None:
        return None
    try:
        outcome = TRANSPORTS[channel.kind](target=channel.target, secret=channel.secret, payload=alert.payload)
    except Exception as exc:  # a transport must not raise, but a bug in one must not lose the log row
        logger.exception("alert transport %s raised", channel.kind)
        outcome = DeliveryOutcome.failure(f"{type(exc).__name__}", retryable=True)
    if outcome.ok:
        status = AlertDelivery.Status.DELIVERED
    elif outcome.retryable and tries <= len(ALERT_RETRY_DELAYS):
        status = AlertDelivery.Status.RETRYING
    else:
        status = AlertDelivery.Status.FAILED
    alert_delivery_count(channel.kind, status)  # metrics: gateway_alert_deliveries_total
    number = AlertDelivery.objects.filter(alert=alert, channel=channel).count() + 1
    return AlertDelivery.objects.create(
        alert=alert, channel=channel, attempt=number, status=status, response_code=outcome.status_code,
        error=outcome.error,
    )


def alert_redeliver(*, alert: BudgetAlert) -> int:
    """Send an alert again to every enabled channel (operator action); returns channels queued."""
    return alert_deliveries_enqueue(alert=alert)


def alert_test_send(*, organization) -> list[tuple[AlertChannel, DeliveryOutcome]]:
    """Send a test alert to each enabled channel of the organization now, and say how it went.

    For the operator console, which waits for the answer (10 s at most per channel). Nothing is
    stored: a test is not an alert, and must not take a threshold's slot.
    """
    now = timezone.now()
    payload = {
        "id": f"alert_test_{uuid.uuid4().hex}",
        "type": "budget.test",
        "organization": organization.slug,
        "scope": "organization",
        "key_prefix": None,
        "period": "month",
        "mode": "soft",
        "budget_usd": "100.00",
        "spent_usd": "0.00",
        "percent_used": 0.0,
        "threshold_percent": None,
        "period_start": _iso(now),
        "period_end": _iso(now),
        "projected_spend_usd": None,
        "created_at": _iso(now),
    }
    results = []
    for channel in AlertChannel.objects.filter(organization=organization, enabled=True):
        results.append((channel, TRANSPORTS[channel.kind](target=channel.target, secret=channel.secret, payload=payload)))
    return results


# --- channels -------------------------------------------------------------------------------


@transaction.atomic
def alert_channels_set(
    *, organization, emails: list[str] | None = None, slack_url: str | None = None, webhook_url: str | None = None,
    actor=None,
) -> str | None:
    """Replace the organization's channels of each kind given (None leaves a kind as it is; an
    empty list or string removes it). Returns the new webhook's signing secret, to be shown once:
    setting a webhook always issues a new secret, even for the same URL."""
    from orgs.services import audit_record

    wanted = {
        AlertChannel.Kind.EMAIL: None if emails is None else sorted({e.strip() for e in emails if e.strip()}),
        AlertChannel.Kind.SLACK: None if slack_url is None else [slack_url.strip()] if slack_url.strip() else [],
        AlertChannel.Kind.WEBHOOK: None if webhook_url is None else [webhook_url.strip()] if webhook_url.strip() else [],
    }
    secret = None
    changes = {}
    for kind, targets in wanted.items():
        if targets is None:
            continue
        channels = []
        for target in targets:
            channel = AlertChannel(organization=organization, kind=kind, target=target)
            if kind == AlertChannel.Kind.WEBHOOK:
                secret = channel.secret = secret_new()
            channel.full_clean(exclude=["organization"], validate_unique=False)
            channels.append(channel)
        AlertChannel.objects.filter(organization=organization, kind=kind).delete()
        AlertChannel.objects.bulk_create(channels)
        changes[kind] = targets  # never the secret
    audit_record(actor=actor, action="set_alerts", obj=organization, organization=organization, changes=changes)
    return secret


@transaction.atomic
def alert_channel_secret_rotate(*, channel: AlertChannel, actor=None) -> str:
    """A new signing secret for a webhook channel; returns it (shown once, then only stored)."""
    from orgs.services import audit_record

    if channel.kind != AlertChannel.Kind.WEBHOOK:
        raise ValueError("only signed webhook channels have a secret")
    channel.secret = secret_new()
    channel.save(update_fields=["secret"])
    audit_record(actor=actor, action="rotate_secret", obj=channel, organization=channel.organization)
    return channel.secret
