"""Requests refused before a key was accepted: counted per process, never written to the ledger.

A ledger row per refused request would let anyone fill the ledger (and the roll-ups) with rows
that belong to no organization. Instead each refusal bumps a counter here, by reason (the error
code: missing_api_key, invalid_api_key, ...), for a metrics exporter to read, and the log gets
at most one summary line per LOG_EVERY_SECONDS. The presented key is never counted or logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

logger = logging.getLogger(__name__)

LOG_EVERY_SECONDS = 60.0

_lock = threading.Lock()
_totals: Counter[str] = Counter()  # since the process started (a Prometheus counter)
_since_log: Counter[str] = Counter()  # since the last summary line
_last_log = time.monotonic()


def unauthenticated_count(reason: str) -> None:
    """Count one refused request; log a summary if the last one is LOG_EVERY_SECONDS old."""
    global _last_log
    with _lock:
        _totals[reason] += 1
        _since_log[reason] += 1
        now = time.monotonic()
        if now - _last_log < LOG_EVERY_SECONDS:
            return
        summary = ", ".join(f"{name}={count}" for name, count in sorted(_since_log.items()))
        total = sum(_since_log.values())
        window = now - _last_log
        _since_log.clear()
        _last_log = now
    logger.warning("refused %d unauthenticated requests in the last %.0f s (%s)", total, window, summary)


def unauthenticated_totals() -> dict[str, int]:
    """Refused requests by reason since this process started."""
    with _lock:
        return dict(_totals)
