"""GET /metrics: Prometheus text format, for staff sessions or GATEWAY_METRICS_ALLOWED_IPS."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from core.client_ip import address_in, client_ip
from core.metrics import MULTIPROCESS

logger = logging.getLogger(__name__)


class LedgerCollector:
    """Read at scrape time: rows waiting for the database, and rows it refused (dead letters).
    With Redis both are the cluster's (every instance reports the same figure)."""

    def collect(self):
        from billing.metering import DEAD_LETTER_KEY, dead_letters, ledger_pending_sync

        pending = dead = None
        try:
            pending = ledger_pending_sync()
            dead = len(dead_letters)
            if settings.REDIS_URL:
                from core.shared_state import shared_state

                dead += int(shared_state().redis_sync().llen(DEAD_LETTER_KEY))
        except Exception as exc:  # a scrape must not fail because Redis is down; health says so
            logger.warning("metrics: ledger depth unavailable (%s)", type(exc).__name__)
        if pending is not None:
            yield GaugeMetricFamily("gateway_ledger_buffer_rows", "Usage rows buffered, not yet in the database.", value=pending)
        if dead is not None:
            yield GaugeMetricFamily("gateway_ledger_dead_letters", "Usage rows the database refused, kept for the operator.", value=dead)


_ledger_registry = CollectorRegistry()
_ledger_registry.register(LedgerCollector())


def _dead_workers_forget(directory: str) -> None:
    """Live gauges of a worker that died (and was respawned) would count forever: drop them."""
    from prometheus_client import multiprocess

    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(int(pid), directory)
        except PermissionError:
            pass


def metrics_text() -> bytes:
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        _dead_workers_forget(directory)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, directory)
    else:
        registry = REGISTRY
    return generate_latest(registry) + generate_latest(_ledger_registry)


def metrics_view(request: HttpRequest) -> HttpResponse:
    user = getattr(request, "user", None)
    staff = bool(user is not None and user.is_active and user.is_staff)
    if not staff and not address_in(client_ip(request.META), settings.GATEWAY_METRICS_ALLOWED_IPS):
        return JsonResponse(
            {"detail": "Metrics are readable by staff (sign in to the admin) or from GATEWAY_METRICS_ALLOWED_IPS."},
            status=403,
        )
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
