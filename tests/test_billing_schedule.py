"""Celery beat runs the ledger drain, the roll-up and retention."""

from gateway_site.celery import app


def test_beat_schedules_every_billing_task():
    app.loader.import_default_modules()
    schedule = app.conf.beat_schedule
    tasks = {entry["task"] for entry in schedule.values()}
    assert {"billing.tasks.ledger_drain", "billing.tasks.usage_rollup", "billing.tasks.ledger_retention"} <= tasks
    for name in tasks:
        assert name in app.tasks, f"{name} is scheduled but not registered"
