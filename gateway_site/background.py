"""Run work now or later, never in the request that asked for it: Celery when a broker is
configured, one daemon thread of this process otherwise.

With REDIS_URL, Celery workers run the tasks and beat runs the periodic ones. In the embedded
default Celery is eager (CELERY_TASK_ALWAYS_EAGER): `apply_async` would run the task inline, in
the request. There, this module's thread runs the same task functions instead, at their due
time (retries are scheduled on it, not slept through), plus the periodic tasks in
EMBEDDED_SCHEDULE, started from the ASGI lifespan startup.

`submit` is what the request path calls: it only appends to an in-memory queue (with Celery, the
thread then hands the task to the broker), so a request never waits on Redis, the database or a
receiver, and a burst of identical submissions (every refused request of one budget) collapses
into one pending job.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

# The periodic tasks this thread runs when there is no beat: dotted path -> seconds between runs.
# Keep in step with gateway_site.celery.BEAT_SCHEDULE for the tasks that must run everywhere.
EMBEDDED_SCHEDULE: dict[str, float] = {
    "billing.tasks.budget_alerts_scan": 60.0,
    # Closed hours into HourlyUsage, so `make run` shows the dashboards' charts without a broker.
    "billing.tasks.usage_rollup_hourly": 120.0,
}

_cond = threading.Condition()
_queue: list[tuple[float, int, Callable[..., Any], tuple, dict, Hashable | None]] = []
_order = itertools.count()
_pending: set[Hashable] = set()
_running = 0
_thread: threading.Thread | None = None
_periodic_started = False


def uses_celery() -> bool:
    """True when a broker and workers run tasks; False in the embedded default."""
    return not settings.CELERY_TASK_ALWAYS_EAGER


def task_run(task: Any, *args: Any, countdown: float = 0, **kwargs: Any) -> None:
    """Run a Celery task in `countdown` seconds: on a worker, or on this process's thread.

    Call it off the request path (a task, a command, a transaction.on_commit hook in one): with
    Celery it talks to the broker. The request path uses `submit`.
    """
    if uses_celery():
        task.apply_async(args=args, kwargs=kwargs, countdown=countdown or None)
    else:
        _schedule(countdown, task, args, kwargs, None)


def submit(fn: Callable[..., Any], *args: Any, key: Hashable | None = None, **kwargs: Any) -> None:
    """Call `fn(*args, **kwargs)` on the background thread as soon as it is free. Cheap and
    non-blocking: safe on the request path. While a job with the same `key` is still waiting,
    another one is dropped."""
    _schedule(0, fn, args, kwargs, key)


def _schedule(delay: float, fn: Callable[..., Any], args: tuple, kwargs: dict, key: Hashable | None) -> None:
    with _cond:
        if key is not None:
            if key in _pending:
                return
            _pending.add(key)
        heapq.heappush(_queue, (time.monotonic() + max(delay, 0.0), next(_order), fn, args, kwargs, key))
        _cond.notify()
    _thread_ensure()


def _thread_ensure() -> None:
    global _thread
    if _thread is not None and _thread.is_alive():
        return
    with _cond:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_loop, name="gateway-background", daemon=True)
            _thread.start()


def _loop() -> None:
    global _running
    while True:
        with _cond:
            while not _queue or _queue[0][0] > time.monotonic():
                _cond.wait(None if not _queue else _queue[0][0] - time.monotonic())
            _, _, fn, args, kwargs, key = heapq.heappop(_queue)
            _pending.discard(key)
            _running += 1
        try:
            fn(*args, **kwargs)
        except Exception:
            logger.exception("background job %s failed", getattr(fn, "__name__", fn))
        finally:
            with _cond:
                _running -= 1
                idle = not _queue or _queue[0][0] > time.monotonic()
                _cond.notify_all()
            if idle:
                # Jobs are minutes apart: hold no database connection in between (and never one
                # that a test database or a PostgreSQL restart would leave dangling).
                connections.close_all()


def periodic_start() -> None:
    """Run EMBEDDED_SCHEDULE on this process's thread, unless Celery beat does. Idempotent."""
    global _periodic_started
    if uses_celery() or _periodic_started:
        return
    _periodic_started = True
    for path, seconds in EMBEDDED_SCHEDULE.items():
        _schedule(seconds, _periodic, (path, seconds), {}, None)


def _periodic(path: str, seconds: float) -> None:
    try:
        import_string(path)()
    finally:
        _schedule(seconds, _periodic, (path, seconds), {}, None)


def wait_idle(timeout: float = 10.0) -> bool:
    """Wait until no job is running or due now (tests; a graceful shutdown). True if idle."""
    deadline = time.monotonic() + timeout
    with _cond:
        while _running or (_queue and _queue[0][0] <= time.monotonic()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            _cond.wait(min(remaining, 0.05))
    return True


def clear() -> None:
    """Drop every waiting job, periodic ones included (tests)."""
    global _periodic_started
    with _cond:
        _queue.clear()
        _pending.clear()
        _periodic_started = False
