"""Selectors behind the health endpoints: dependency checks, Celery's last beat, routes in
cool-down, and whether this instance is draining.

Draining: `manage.py serve` supervises granian and, on SIGTERM, creates `draining` in the
instance's directory (GATEWAY_INSTANCE_DIR, which it sets for its workers) before it lets granian
stop. Granian closes the listener as soon as it is told to stop, so /health/ready can answer 503
only during the grace period serve keeps before that (GATEWAY_READY_GRACE_SECONDS); afterwards
the instance refuses connections, which load balancers read the same way.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone

from catalog.selectors import catalog_get_sync
from core.shared_state import STATE_ERRORS, shared_state, state_outage

BEAT_KEY = "health:beat"
DRAINING_FILE = "draining"


def instance_dir() -> Path | None:
    value = os.environ.get("GATEWAY_INSTANCE_DIR")
    return Path(value) if value else None


def instance_draining() -> bool:
    directory = instance_dir()
    return directory is not None and (directory / DRAINING_FILE).exists()


def database_check() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any driver error means "down" here
        return f"error: {type(exc).__name__}"


def cache_check() -> str:
    try:
        shared_state().ping_sync()
        state_outage.succeeded()
        return "ok"
    except Exception as exc:
        if isinstance(exc, STATE_ERRORS):
            state_outage.failed(exc, "answering a health check")
        return f"error: {type(exc).__name__}"


def beat_heartbeat_write() -> str:
    now = timezone.now().isoformat()
    shared_state().set_sync(BEAT_KEY, now, ttl=7 * 24 * 3600)
    return now


def beat_status() -> dict:
    """When a worker last ran beat's heartbeat task: "ok", "stale" (older than
    GATEWAY_BEAT_STALE_SECONDS) or "unknown" (never, or shared state unreadable)."""
    try:
        raw = shared_state().get_sync(BEAT_KEY)
    except STATE_ERRORS:
        raw = None
    if not raw:
        return {"status": "unknown", "last_beat": None}
    try:
        last = datetime.fromisoformat(raw)
    except ValueError:
        return {"status": "unknown", "last_beat": None}
    stale = timezone.now() - last > timedelta(seconds=settings.GATEWAY_BEAT_STALE_SECONDS)
    return {"status": "stale" if stale else "ok", "last_beat": last.isoformat()}


def routes_cooling() -> list[dict]:
    """Routes in cool-down now (shared by every instance), as provider and upstream model."""
    catalog = catalog_get_sync()
    routes = {r.id: r for m in catalog.models.values() for r in m.routes}
    ids = sorted(routes)
    try:
        values = shared_state().get_many_sync([f"route:cool:{rid}" for rid in ids])
    except STATE_ERRORS:
        return []
    return [
        {"route": rid, "provider": routes[rid].provider.name, "upstream_model": routes[rid].upstream_model}
        for rid, value in zip(ids, values) if value is not None
    ]
