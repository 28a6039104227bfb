"""Run a task periodically: Celery beat does it when a broker is configured; without one (the
embedded default, `make run`) a daemon thread of the gateway process does, so nothing else has
to be running for the dashboards to fill in.

Minimal seam: `periodic_start(name, seconds, func)` once per process; a second call with the
same name is ignored. Failures are logged and the thread carries on at the next interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections, connections

logger = logging.getLogger(__name__)

_started: dict[str, threading.Thread] = {}
_lock = threading.Lock()
_stop = threading.Event()


def broker_configured() -> bool:
    return not getattr(settings, "CELERY_TASK_ALWAYS_EAGER", True)


def periodic_start(name: str, seconds: float, func: Callable[[], object]) -> bool:
    """Start `func` every `seconds` in a daemon thread unless beat runs it (a broker) or it runs
    already. Returns whether a thread was started."""
    if broker_configured() or seconds <= 0:
        return False
    with _lock:
        if name in _started:
            return False
        thread = threading.Thread(target=_loop, args=(name, seconds, func), name=f"periodic-{name}", daemon=True)
        _started[name] = thread
        thread.start()
    return True


def periodic_stop() -> None:
    """Ask every periodic thread to finish (shutdown); they exit at their next wake-up."""
    _stop.set()


def _loop(name: str, seconds: float, func: Callable[[], object]) -> None:
    while not _stop.wait(seconds):
        try:
            close_old_connections()
            func()
        except Exception:
            logger.exception("periodic task %s failed; retrying in %ss", name, seconds)
        finally:
            connections.close_all()
