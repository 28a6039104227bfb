"""What each dashboard panel shows, computed from hourly usage (billing.usage_hourly).

Panels return plain dicts and lists for the templates and chart JSON. "No data" (no rows at all,
or no latency observations) is None, never 0, so the page can show it differently.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from django.utils import timezone

from billing.histograms import LATENCY_FIELDS, TTFT_FIELDS, counts_from, percentile
from billing.models import Budget, UsageRecord
from billing.periods import window
from billing.usage_hourly import UsageScope, hour_ceil, hour_floor, totals, usage_aggregate, usage_names
from catalog.models import Route
from core.time_zones import zone

names_for = usage_names
from core.shared_state import STATE_ERRORS, shared_state
from orgs.models import ApiKey, Organization

TOP_SERIES = 8
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)


def bucket_labels(start: dt.datetime, end: dt.datetime, bucket: str, tz_name: str) -> list:
    """Every bucket of the window in display time (naive local hours, or local dates)."""
    tz = zone(tz_name)
    if bucket == "hour":
        out, hour = [], start
        while hour < end:
            out.append(hour.astimezone(tz).replace(tzinfo=None))
            hour += dt.timedelta(hours=1)
        return out
    first, last = start.astimezone(tz).date(), (end - dt.timedelta(seconds=1)).astimezone(tz).date()
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def label_text(label) -> str:
    return label.strftime("%Y-%m-%dT%H:00") if isinstance(label, dt.datetime) else label.isoformat()


def stacked(rows: list[dict], labels: list, dim: str, names: dict, metric: str = "cost") -> list[dict]:
    """One dataset per value of `dim` (the TOP_SERIES biggest by `metric`, the rest as "Other"),
    aligned on `labels`; a bucket with no rows at all is None (a gap), not 0."""
    by_value: dict = defaultdict(lambda: defaultdict(Decimal))
    size: dict = defaultdict(Decimal)
    present = set()
    for row in rows:
        by_value[row[dim]][row["bucket"]] += row[metric]
        size[row[dim]] += row[metric]
        present.add(row["bucket"])
    ranked = sorted(size, key=lambda v: (-size[v], str(v)))
    top, rest = ranked[:TOP_SERIES], ranked[TOP_SERIES:]
    datasets = []
    for value in top:
        datasets.append({
            "label": names.get(value, str(value) if value not in (None, "") else "(none)"),
            "filter": _filter_param(dim, value, names),
            "data": [_number(by_value[value].get(b, 0)) if b in present else None for b in labels],
        })
    if rest:
        other = defaultdict(Decimal)
        for value in rest:
            for b, amount in by_value[value].items():
                other[b] += amount
        datasets.append({"label": f"Other ({len(rest)})", "filter": "",
                         "data": [_number(other.get(b, 0)) if b in present else None for b in labels]})
    return datasets


def _filter_param(dim: str, value, names: dict) -> str:
    if value in (None, ""):
        return ""
    if dim == "organization_id":
        return "org=" + names.get(value, "")
    if dim == "api_key_id":
        return "key=" + names.get(value, "")
    if dim == "model_name":
        return "model=" + str(value)
    return ""


def _number(value) -> float:
    return float(value)


def traffic(rows: list[dict], labels: list) -> dict:
    """Requests and errors per bucket, and the error rate (None where there were no requests)."""
    req, err = defaultdict(int), defaultdict(int)
    for row in rows:
        req[row["bucket"]] += row["requests"]
        err[row["bucket"]] += row["errors"]
    return {
        "requests": [req[b] if b in req else None for b in labels],
        "errors": [err[b] if b in req else None for b in labels],
        "error_rate": [round(100 * err[b] / req[b], 2) if req.get(b) else None for b in labels],
    }


def latency_by_model(rows: list[dict]) -> list[dict]:
    out = []
    for row in sorted(rows, key=lambda r: -r["requests"]):
        lat, ttft = counts_from(row, LATENCY_FIELDS), counts_from(row, TTFT_FIELDS)
        out.append({
            "model": row["model_name"] or "(none)",
            "requests": row["requests"],
            "latency_p50": percentile(lat, 0.5), "latency_p95": percentile(lat, 0.95),
            "ttft_p50": percentile(ttft, 0.5), "ttft_p95": percentile(ttft, 0.95),
            "cache_hit_rate": cache_hit_rate(row),
            "cache_read_tokens": row["cache_read_tokens"], "cache_write_tokens": row["cache_write_tokens"],
        })
    return out


def cache_hit_rate(row: dict) -> float | None:
    """Share of prompt tokens read from the provider's cache (prompt tokens include them)."""
    prompt = row.get("prompt_tokens") or 0
    return round(100 * (row.get("cache_read_tokens") or 0) / prompt, 1) if prompt else None


def summary(rows: list[dict]) -> dict | None:
    if not rows:
        return None
    t = totals(rows)
    t["error_rate"] = round(100 * t["errors"] / t["requests"], 2) if t["requests"] else None
    t["cache_hit_rate"] = cache_hit_rate(t)
    lat, ttft = counts_from(t, LATENCY_FIELDS), counts_from(t, TTFT_FIELDS)
    t.update(latency_p50=percentile(lat, 0.5), latency_p95=percentile(lat, 0.95),
             ttft_p50=percentile(ttft, 0.5), ttft_p95=percentile(ttft, 0.95))
    return t


def ranked(rows: list[dict], dim: str, limit: int = 10) -> list[dict]:
    return sorted((r for r in rows if r[dim] is not None), key=lambda r: (-r["cost"], -r["requests"]))[:limit]


def budget_spend(budgets: list[Budget], now: dt.datetime | None = None) -> list[dict]:
    """Each budget with its current period's spend: HourlyUsage for closed hours plus the ledger
    for the rest (usage_aggregate), one query per distinct window whatever the number of budgets."""
    now = now or timezone.now()
    by_window: dict[tuple, list[Budget]] = defaultdict(list)
    for budget in budgets:
        tz = budget.organization.timezone or ""
        w = window(budget.period, now, tz)
        by_window[(w.start, w.end, tz)].append(budget)
    out = []
    for (start, end, tz), group in by_window.items():
        scope = UsageScope(
            start=hour_floor(start) if start else EPOCH, end=hour_ceil(now),
            organization_ids=tuple({b.organization_id for b in group}),
        )
        spend_org: dict = defaultdict(Decimal)
        spend_key: dict = defaultdict(Decimal)
        for row in usage_aggregate(scope, ("organization_id", "api_key_id"), tokens=False):
            spend_org[row["organization_id"]] += row["cost"]
            spend_key[row["api_key_id"]] += row["cost"]
        for b in group:
            spent = spend_key[b.api_key_id] if b.api_key_id else spend_org[b.organization_id]
            pct = float(100 * spent / b.amount_usd) if b.amount_usd else None
            out.append({"budget": b, "spent": spent, "percent": pct, "window_start": start, "window_end": end})
    return sorted(out, key=lambda g: (g["budget"].api_key_id is not None, g["budget"].period))


def cooling_routes() -> list[dict] | None:
    """Routes in cool-down right now; None when shared state cannot be read (not "none cooling")."""
    routes = list(Route.objects.select_related("model", "provider").filter(enabled=True))
    state = shared_state()
    out = []
    try:
        for route in routes:
            if state.get_sync(f"route:cool:{route.id}") is not None:
                out.append({"model": route.model.public_id, "provider": route.provider.name, "upstream": route.upstream_model})
    except STATE_ERRORS:
        return None
    return out


def recent_alerts(organization: Organization | None = None, limit: int = 10) -> list | None:
    """The last budget alerts, newest first; None where this gateway has no alert records."""
    try:
        from billing.models import BudgetAlert
    except ImportError:  # a gateway without budget alerts
        return None
    alerts = BudgetAlert.objects.select_related("organization", "budget__api_key")
    if organization is not None:
        alerts = alerts.filter(organization=organization)
    return list(alerts.order_by("-created_at", "-pk")[:limit])


def recent_ledger(organization: Organization | None, api_key: ApiKey | None = None, limit: int = 20):
    rows = UsageRecord.objects.select_related("organization", "api_key").defer("prompt_text", "completion_text")
    if organization is not None:
        rows = rows.filter(organization=organization)
    if api_key is not None:
        rows = rows.filter(api_key=api_key)
    return list(rows.order_by("-created_at")[:limit])
