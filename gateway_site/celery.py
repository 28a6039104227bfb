"""The Celery app. Redis is the broker when REDIS_URL is set; otherwise tasks run eagerly in-process.

Worker and beat (production):
    celery -A gateway_site worker -l info
    celery -A gateway_site beat -l info
"""

import os

from celery import Celery
from celery.schedules import crontab
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_site.settings")

app = Celery("gateway_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

BEAT_SCHEDULE = {
    # Buffered usage rows into the database; the gateways' own flushers do the same every 0.5 s,
    # this catches rows left by a gateway that stopped.
    "billing-ledger-drain": {"task": "billing.tasks.ledger_drain", "schedule": 5.0},
    # Closed days into DailyUsage (idempotent; re-runs the latest day to pick up late rows).
    "billing-usage-rollup": {"task": "billing.tasks.usage_rollup", "schedule": 600.0},
    # Closed hours into HourlyUsage: what the dashboards and the staff usage API read.
    "billing-usage-rollup-hourly": {"task": "billing.tasks.usage_rollup_hourly", "schedule": 120.0},
    # Budget alerts fire even when no request signals them (a soft budget, a forecast).
    "billing-budget-alerts-scan": {"task": "billing.tasks.budget_alerts_scan", "schedule": 60.0},
    "billing-ledger-retention": {"task": "billing.tasks.ledger_retention", "schedule": crontab(hour=3, minute=17)},
    # Proof that beat schedules and a worker runs: /api/ai/health shows when it last ran.
    "health-beat-heartbeat": {"task": "ai_proxy.tasks.beat_heartbeat", "schedule": 15.0},
}


@setup_logging.connect
def _django_logging(**kwargs) -> None:
    # Connected, Celery leaves logging alone: its lines use settings.LOGGING (LOG_FORMAT) like
    # the gateway's, instead of Celery's own format.
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@app.on_after_configure.connect
def _beat_schedule(sender, **kwargs) -> None:
    # After configuration, so settings.CELERY_BEAT_SCHEDULE entries are kept and can override ours.
    sender.conf.beat_schedule = {**BEAT_SCHEDULE, **(sender.conf.beat_schedule or {})}
