"""Which route serves a request: by priority, weighted within a priority, skipping routes in
cool-down and routes whose provider's secret is not set.

A route that fails GATEWAY_COOLDOWN_FAILURES times within a minute cools down for
GATEWAY_COOLDOWN_SECONDS (shared by every instance through shared state); when the cool-down
expires the next request probes it again. Each process re-reads cool-downs at most every half
second, so a healthy gateway pays no shared-state round trip per request.
"""

from __future__ import annotations

import random
import time
from itertools import groupby

from django.conf import settings

from catalog.selectors import ModelEntry, RouteEntry
from core.errors import ErrorCode, GatewayError
from core.metrics import route_cooldown_count, route_failure_count
from core.shared_state import STATE_ERRORS, shared_state, state_outage


_FAILURE_WINDOW_SECONDS = 60.0
_COOLDOWN_RECHECK_SECONDS = 0.5

# route id -> (cooling down?, when we last asked shared state)
_cooldown_seen: dict[int, tuple[bool, float]] = {}
# routes this process has recorded failures for, so success only resets counters that may exist
_failing: set[int] = set()


def _weighted_order(routes: list[RouteEntry]) -> list[RouteEntry]:
    """Weighted random order without replacement (Efraimidis-Spirakis keys)."""
    if len(routes) < 2:
        return routes
    return sorted(routes, key=lambda r: random.random() ** (1.0 / max(r.weight, 1)), reverse=True)


async def _cooling(routes: list[RouteEntry]) -> set[int]:
    now = time.monotonic()
    stale = [r.id for r in routes if now - _cooldown_seen.get(r.id, (False, float("-inf")))[1] >= _COOLDOWN_RECHECK_SECONDS]
    if stale:
        try:
            values = await shared_state().get_many([f"route:cool:{rid}" for rid in stale])
        except STATE_ERRORS as exc:
            # Without shared state, route by what this process last knew rather than fail.
            state_outage.failed(exc, "reading route cool-downs")
        else:
            state_outage.succeeded()
            for rid, value in zip(stale, values):
                _cooldown_seen[rid] = (value is not None, now)
    return {r.id for r in routes if _cooldown_seen.get(r.id, (False, 0))[0]}


async def routes_for(model: ModelEntry) -> list[RouteEntry]:
    """Routes to try, in order. Raises 503 when no route can be tried at all."""
    usable = [r for r in model.routes if not r.provider.needs_secret or r.provider.secret()]
    if not usable:
        if not model.routes:
            raise GatewayError(
                503, f"Model `{model.public_id}` has no enabled route.", code=ErrorCode.NO_ROUTE_AVAILABLE
            )
        missing = sorted({r.provider.api_key_env for r in model.routes})
        raise GatewayError(
            503,
            f"Model `{model.public_id}` is not available: the provider secret is not configured. "
            f"Set the environment variable {' or '.join(missing)} on the gateway and restart it.",
            code=ErrorCode.PROVIDER_NOT_CONFIGURED,
        )
    cooling = await _cooling(usable) if len(usable) > 1 else set()
    ordered: list[RouteEntry] = []
    for _, group in groupby(usable, key=lambda r: r.priority):
        ordered.extend(_weighted_order(list(group)))
    # Cooling routes go last rather than away: if everything is cooling, still try.
    return [r for r in ordered if r.id not in cooling] + [r for r in ordered if r.id in cooling]


async def route_failed(route: RouteEntry) -> None:
    state = shared_state()
    _failing.add(route.id)
    route_failure_count(route.provider.name, route.id)
    try:
        failures = await state.incr(f"route:fail:{route.id}", ttl=_FAILURE_WINDOW_SECONDS)
        if failures >= settings.GATEWAY_COOLDOWN_FAILURES:
            await state.set(f"route:cool:{route.id}", "1", ttl=settings.GATEWAY_COOLDOWN_SECONDS)
            route_cooldown_count(route.provider.name, route.id)
            await state.delete(f"route:fail:{route.id}")
            _cooldown_seen[route.id] = (True, time.monotonic())
    except STATE_ERRORS as exc:
        state_outage.failed(exc, "counting a route failure")


async def route_succeeded(route: RouteEntry) -> None:
    if route.id in _failing:
        _failing.discard(route.id)
        try:
            await shared_state().delete(f"route:fail:{route.id}")
        except STATE_ERRORS as exc:
            state_outage.failed(exc, "resetting a route's failures")
