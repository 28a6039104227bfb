"""Celery tasks: drain the ledger buffer, roll up closed days, prune old raw rows.

Scheduled by beat (gateway_site/celery.py). In the embedded default Celery runs eagerly, and the
gateway's own background flusher does the draining.
"""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from .hourly_rollup import usage_rollup_hours
from .metering import ledger_drain_sync
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
