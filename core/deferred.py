"""Work run later, never in the request that asked for it: the calls the apps make.

How it runs is wiring, not the apps' business: gateway_site.background hands tasks to Celery
when a broker is configured and runs them on a daemon thread of this process otherwise. It
registers itself here when the project package loads (gateway_site/__init__.py), so billing can
queue alert deliveries without importing gateway_site (which sits above every app).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Protocol


class Runner(Protocol):
    def submit(self, fn: Callable[..., Any], *args: Any, key: Hashable | None = None, **kwargs: Any) -> None: ...

    def task_run(self, task: Any, *args: Any, countdown: float = 0, **kwargs: Any) -> None: ...


_runner: Runner | None = None


def runner_register(runner: Runner) -> None:
    global _runner
    _runner = runner


def _registered() -> Runner:
    if _runner is None:  # dropping the work silently would lose alerts
        raise RuntimeError("No background runner registered: import gateway_site (the settings package) first.")
    return _runner


def submit(fn: Callable[..., Any], *args: Any, key: Hashable | None = None, **kwargs: Any) -> None:
    """Queue `fn(*args, **kwargs)` without waiting on anything (the request path's call);
    submissions with the same `key` still pending collapse into one."""
    _registered().submit(fn, *args, key=key, **kwargs)


def task_run(task: Any, *args: Any, countdown: float = 0, **kwargs: Any) -> None:
    """Run a Celery task in `countdown` seconds, on a worker or on this process's thread."""
    _registered().task_run(task, *args, countdown=countdown, **kwargs)
