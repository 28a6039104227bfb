"""Celery tasks: drain the ledger buffer, roll up closed days, prune old raw rows.

Scheduled by beat (gateway_site/celery.py). In the embedded default Celery runs eagerly, and the
gateway's own background flusher does the draining.
"""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from .hourly_rollup import usage_rollup_hours
from .metering import ledger_drain_sync, ledger_flush_sync
from .services import ledger_retention_apply, usage_rollup_day, usage_rollup_due


@shared_task(ignore_result=True)
def ledger_drain() -> int:
    """Move buffered usage rows into the database; returns rows written."""
    return ledger_drain_sync()


@shared_task(ignore_result=True)
def usage_rollup(day: str | None = None) -> int:
    """Roll up one closed UTC day (ISO date), or every day that is due. Returns roll-up rows written."""
    days = [dt.date.fromisoformat(day)] if day else usage_rollup_due()
    return sum(usage_rollup_day(day=d) for d in days)


@shared_task(ignore_result=True)
def ledger_retention() -> int:
    """Delete raw ledger rows past BILLING_LEDGER_RETENTION_DAYS whose days are rolled up."""
    return ledger_retention_apply()


@shared_task(ignore_result=True)
def usage_rollup_hourly() -> int:
    """Roll every due closed UTC hour into HourlyUsage (the dashboards' source). Returns rows written."""
    return usage_rollup_hours()


@shared_task(ignore_result=True)
def budget_alerts_scan() -> int:
    """Evaluate every budget's alerts (every minute); returns alerts created."""
    from .alerts import budget_alerts_scan as scan

    return len(scan())


@shared_task(ignore_result=True)
def budget_alerts_evaluate(budget_id: int, refused: bool = False) -> int:
    """Evaluate one budget's alerts (signalled by admission); returns alerts created."""
    from .alerts import budget_alerts_evaluate as evaluate
    from .models import Budget

    # Rows of the request that signalled may still be buffered (at most half a second): write
    # a batch first so its spend is counted. Bounded: a backlog is the drainers' work.
    ledger_flush_sync(max_batches=1)
    budgets = Budget.objects.select_related("organization", "api_key").filter(pk=budget_id)
    return len(evaluate(budgets=budgets, refused_ids=[budget_id] if refused else []))


@shared_task(ignore_result=True)
def alert_deliver(alert_id: int, channel_id: int, tries: int = 1) -> str:
    """Send one alert to one channel; on a retryable failure, schedule the next attempt with
    exponential backoff (billing.alerts.ALERT_RETRY_DELAYS). Returns the attempt's status."""
    from core import deferred

    from .alerts import alert_delivery_attempt, alert_retry_delay
    from .models import AlertDelivery

    delivery = alert_delivery_attempt(alert_id=alert_id, channel_id=channel_id, tries=tries)
    if delivery is None:
        return "skipped"
    if delivery.status == AlertDelivery.Status.RETRYING:
        deferred.task_run(alert_deliver, alert_id, channel_id, tries + 1, countdown=alert_retry_delay(tries))
    return delivery.status
