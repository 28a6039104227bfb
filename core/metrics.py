"""Prometheus metrics (prometheus-client), in multiprocess mode under `manage.py serve`.

`serve` gives each instance its own PROMETHEUS_MULTIPROC_DIR, emptied at start, before granian
starts its workers: every worker writes its samples to files there and GET /metrics on any of
them adds up the whole instance. Each instance is scraped on its own port (sum across instances
in PromQL). Without the variable (tests, `runserver`) the metrics live in process memory.

Labels are bounded: endpoint, catalog model (never the client's free text), provider, route id,
status class, organization slug, reason and outcome words. Never a key, a key prefix or an
end-user id. Recording functions take microseconds: the request path calls `request_observe`
once per request, from its ledger event.
"""

from __future__ import annotations

import os
from decimal import Decimal

from prometheus_client import Counter, Gauge, Histogram, values

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def _pid_cached() -> None:
    """Multiprocess values ask `os.getpid()` on every update, to notice that they now live in a
    forked child (and must write to that process's own file). That is a system call per update,
    and a request makes about a dozen updates: 7% of a request's CPU in a py-spy profile at one
    connection. The pid is asked once here and again in each forked child, which is exactly the
    change the check looks for. Must run before any metric below is created."""
    pid = [os.getpid()]
    os.register_at_fork(after_in_child=lambda: pid.__setitem__(0, os.getpid()))
    values.ValueClass = values.MultiProcessValue(lambda: pid[0])


if MULTIPROCESS:
    _pid_cached()

_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

REQUESTS = Counter(
    "gateway_requests", "Proxy requests finished, by endpoint, catalog model, provider and status class.",
    ["endpoint", "model", "provider", "status_class"],
)
REQUEST_SECONDS = Histogram(
    "gateway_request_duration_seconds", "Whole request, first byte in to last byte out.",
    ["endpoint"], buckets=_SECONDS,
)
TTFT_SECONDS = Histogram(
    "gateway_time_to_first_token_seconds", "Streams: request start to the first event sent to the client.",
    ["endpoint"], buckets=_SECONDS,
)
UPSTREAM_SECONDS = Histogram(
    "gateway_upstream_response_seconds", "Provider response time, request sent to status line and headers.",
    ["provider"], buckets=_SECONDS,
)
TOKENS = Counter(
    "gateway_tokens", "Tokens metered, by organization, model and kind (prompt, completion, cache_read, cache_write).",
    ["organization", "model", "kind"],
)
COST = Counter("gateway_cost_usd", "Cost metered in USD, by organization and model.", ["organization", "model"])
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors", "Route attempts that failed (provider error, timeout, connection).", ["provider", "route"],
)
FAILOVERS = Counter("gateway_failovers", "Requests moved on from a failed route to the next one.", ["provider", "route"])
COOLDOWNS = Counter("gateway_route_cooldowns", "Routes put in cool-down after repeated failures.", ["provider", "route"])
REFUSALS = Counter("gateway_refusals", "Requests refused by a rate limit or a budget.", ["reason"])
ALERT_DELIVERIES = Counter("gateway_alert_deliveries", "Budget alert deliveries, by channel and outcome.", ["channel", "outcome"])
# livesum: the instance's current total over its live worker processes.
IN_FLIGHT = Gauge("gateway_requests_in_flight", "API requests being handled now.", multiprocess_mode="livesum")
OPEN_STREAMS = Gauge("gateway_open_streams", "Streaming responses being sent now.", multiprocess_mode="livesum")

_children: dict[tuple, object] = {}


def _child(metric, *labels: str):
    """metric.labels(*labels), remembered: labels() costs more than the update itself."""
    key = (metric, labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


_REFUSAL_REASONS = {"rate_limit_exceeded": "rate_limit", "budget_exceeded": "budget"}
_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
_TOKEN_KINDS = tuple((kind, f"{kind}_tokens") for kind in ("prompt", "completion", "cache_read", "cache_write"))


def request_observe(
    *, endpoint: str, model: str, provider: str, status: int, error_type: str, latency_ms: int,
    ttft_ms: int | None, organization: str = "", tokens: dict | None = None, cost: Decimal | None = None,
) -> None:
    """One finished proxy request. `model` must be a catalog id (or "unknown"), never client text."""
    _child(REQUESTS, endpoint, model, provider, _STATUS_CLASSES.get(status // 100, "other")).inc()
    _child(REQUEST_SECONDS, endpoint).observe(latency_ms / 1000)
    if ttft_ms is not None:
        _child(TTFT_SECONDS, endpoint).observe(ttft_ms / 1000)
    reason = _REFUSAL_REASONS.get(error_type)
    if reason is not None:
        _child(REFUSALS, reason).inc()
    if organization and tokens:
        for kind, field in _TOKEN_KINDS:
            count = tokens.get(field, 0)
            if count:
                _child(TOKENS, organization, model, kind).inc(count)
    if organization and cost:
        _child(COST, organization, model).inc(float(cost))


def upstream_observe(provider: str, seconds: float) -> None:
    _child(UPSTREAM_SECONDS, provider).observe(seconds)


def route_failure_count(provider: str, route_id: int) -> None:
    UPSTREAM_ERRORS.labels(provider, str(route_id)).inc()


def route_failover_count(provider: str, route_id: int) -> None:
    FAILOVERS.labels(provider, str(route_id)).inc()


def route_cooldown_count(provider: str, route_id: int) -> None:
    COOLDOWNS.labels(provider, str(route_id)).inc()


def alert_delivery_count(channel: str, outcome: str) -> None:
    """For the alerts code: one delivery attempt, e.g. ("email", "sent"), ("webhook", "failed")."""
    ALERT_DELIVERIES.labels(channel, outcome).inc()
