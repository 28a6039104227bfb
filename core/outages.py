"""One log line when a backing service becomes unreachable and one when it is back.

During an outage every request notices it; a warning (or a traceback) per attempt would bury the
log and cost throughput just when the operator needs both. Each process keeps its own record, so
each worker logs its own pair of lines.
"""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger("core.outages")
_registered: list["Outage"] = []


class Outage:
    def __init__(self, service: str, meanwhile: str) -> None:
        self.service = service
        self.meanwhile = meanwhile  # what the gateway does until the service is back
        self._since: float | None = None
        self._lock = threading.Lock()
        _registered.append(self)

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException, doing: str) -> None:
        """Record a failed call; logs only if this starts an outage."""
        with self._lock:
            starting = self._since is None
            if starting:
                self._since = time.monotonic()
        if starting:
            logger.error("%s is unreachable (%s while %s). Until it is back: %s",
                         self.service, type(exc).__name__, doing, self.meanwhile)

    def succeeded(self) -> None:
        """Record a successful call; logs only if this ends an outage."""
        if self._since is None:  # the usual case: no lock on the request path
            return
        with self._lock:
            since, self._since = self._since, None
        if since is not None:
            logger.warning("%s is reachable again after %.1f s; normal operation resumed.",
                           self.service, time.monotonic() - since)


def ongoing_outages() -> list[Outage]:
    return [outage for outage in _registered if outage.ongoing]


class QuietDuringOutage(logging.Filter):
    """Drops Django's "Service Unavailable: <path>" line for each 503 answered while an outage
    is already logged: the outage line said why, and the ledger has every request."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "status_code", None) != 503 or not ongoing_outages()
