"""Celery tasks of the proxy app: the beat heartbeat /api/ai/health reports."""

from __future__ import annotations

from celery import shared_task

from .health import beat_heartbeat_write


@shared_task(ignore_result=True)
def beat_heartbeat() -> str:
    """Scheduled by beat, run by a worker: records when that last happened (ISO time, UTC)."""
    return beat_heartbeat_write()
