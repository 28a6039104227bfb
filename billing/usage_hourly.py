"""Reads on hourly usage (dashboards, staff usage API): HourlyUsage for rolled-up hours, the
ledger for the rest (the current hour, hours not rolled up yet, hours rows arrived for late).

Every read takes a UsageScope: a range of whole UTC hours plus filters. A scope without an
organization is operator-wide; the dashboard and the API decide who may build one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Case, CharField, Count, Q, Sum, Value, When
from django.db.models.functions import TruncDay, TruncHour

from .histograms import LATENCY_FIELDS, TTFT_FIELDS, bucket_ranges
from .models import HourlyUsage, RollupHour, UsageRecord
from .periods import zone
from .selectors import cost_sum, cost_value

UTC = dt.timezone.utc
DIMENSIONS = ("organization_id", "api_key_id", "model_name", "provider", "endpoint", "status_class")
TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens")
OK = HourlyUsage.StatusClass.OK


def hour_floor(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_ceil(moment: dt.datetime) -> dt.datetime:
    floor = hour_floor(moment)
    return floor if floor == moment else floor + dt.timedelta(hours=1)


@dataclass(frozen=True)
class UsageScope:
    start: dt.datetime  # aware, whole UTC hour
    end: dt.datetime  # exclusive, whole UTC hour
    organization_id: int | None = None  # None: every organization (staff only)
    api_key_id: int | None = None
    model_name: str | None = None
    provider: str | None = None
    tz: str = ""  # IANA name days are cut in; totals do not depend on it
    organization_ids: tuple[int, ...] = ()  # several organizations (budget gauges of the top ones)
    api_key_ids: tuple[int, ...] = ()
    _ledger_ranges: list = field(default_factory=list, compare=False, repr=False)

    def filters(self) -> Q:
        q = Q()
        if self.organization_id is not None:
            q &= Q(organization_id=self.organization_id)
        if self.api_key_id is not None:
            q &= Q(api_key_id=self.api_key_id)
        if self.organization_ids:
            q &= Q(organization_id__in=self.organization_ids)
        if self.api_key_ids:
            q &= Q(api_key_id__in=self.api_key_ids)
        if self.model_name:
            q &= Q(model_name=self.model_name)
        if self.provider:
            q &= Q(provider=self.provider)
        return q

    def ledger_ranges(self) -> list[tuple[dt.datetime, dt.datetime]]:
        """[start, end) spans of hours to read from the ledger; computed once per scope."""
        if not self._ledger_ranges:
            self._ledger_ranges.append(_ledger_ranges(self.start, self.end))
        return self._ledger_ranges[0]


def _ledger_ranges(start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    # Clean markers only: a dirty hour is read from the ledger until it is rolled up again.
    clean = RollupHour.objects.filter(hour__gte=start, hour__lt=end).exclude(dirty=True, pruned_at__isnull=True)
    ranges = []
    cursor = start
    for hour in clean.order_by("hour").values_list("hour", flat=True):
        if hour > cursor:
            ranges.append((cursor, hour))
        cursor = hour + dt.timedelta(hours=1)
    if cursor < end:
        ranges.append((cursor, end))
    return ranges


def _status_class():
    S = HourlyUsage.StatusClass
    return Case(
        When(status__lt=400, then=Value(S.OK)),
        When(status=429, then=Value(S.LIMITED)),
        When(status__lt=500, then=Value(S.CLIENT)),
        default=Value(S.SERVER),
        output_field=CharField(),
    )


# Aggregates are named "t_<column>" (a name may not shadow a field it sums) and renamed back.
_T = "t_"


def _renamed(row: dict) -> dict:
    return {(k[len(_T):] if k.startswith(_T) else k): v for k, v in row.items()}


def ledger_sums(*, histograms: bool) -> dict:
    """Aggregates of ledger rows named as HourlyUsage's columns (with the t_ prefix)."""
    sums = {
        "requests": Count("id"),
        "errors": Count("id", filter=Q(status__gte=400)),
        **{name: Sum(name) for name in TOKEN_FIELDS},
        "cost_sum": cost_sum("cost"),
    }
    if histograms:
        sums["latency_ms_sum"] = Sum("latency_ms")
        for name, (low, high) in zip(LATENCY_FIELDS, bucket_ranges()):
            sums[name] = Count("id", filter=Q(latency_ms__gte=low, **({"latency_ms__lt": high} if high else {})))
        for name, (low, high) in zip(TTFT_FIELDS, bucket_ranges()):
            sums[name] = Count("id", filter=Q(ttft_ms__gte=low, **({"ttft_ms__lt": high} if high else {})))
    return sums


def ledger_hourly(queryset, dims: Sequence[str], *, histograms: bool) -> Iterator[dict]:
    """Ledger rows summed per UTC hour ("hour_start") and `dims`, named as HourlyUsage's columns."""
    rows = (
        queryset.annotate(hour_start=TruncHour("created_at", tzinfo=UTC), status_class=_status_class())
        .values("hour_start", *dims)
        .annotate(**{_T + k: v for k, v in ledger_sums(histograms=histograms).items()})
        .order_by()
    )
    return (_renamed(row) for row in rows)


def _rollup_sums(*, histograms: bool) -> dict:
    sums = {
        "requests": Sum("requests"),
        "errors": Sum("requests", filter=~Q(status_class=OK)),
        **{name: Sum(name) for name in TOKEN_FIELDS},
        "cost_sum": cost_sum("cost"),
    }
    if histograms:
        sums["latency_ms_sum"] = Sum("latency_ms_sum")
        sums.update({name: Sum(name) for name in (*LATENCY_FIELDS, *TTFT_FIELDS)})
    return sums


def _local_bucket(hour: dt.datetime, bucket: str | None, tz) -> object:
    if bucket is None:
        return None
    local = hour.astimezone(tz)
    return local.replace(tzinfo=None) if bucket == "hour" else local.date()


def usage_aggregate(
    scope: UsageScope, dims: Sequence[str] = (), *, bucket: str | None = None, histograms: bool = False,
) -> list[dict]:
    """Usage in `scope` summed per `dims` (names from DIMENSIONS) and, with bucket "hour" or "day",
    per local hour or day in scope.tz (naive local datetime or date, under "bucket").

    Each row: the dims, "bucket", requests, errors, the four token counts, cost (Decimal) and,
    with histograms, latency_ms_sum and the histogram counts.
    """
    tz = zone(scope.tz)
    ranges = scope.ledger_ranges()
    rolled = HourlyUsage.objects.filter(scope.filters(), hour__gte=scope.start, hour__lt=scope.end)
    for start, end in ranges:
        rolled = rolled.exclude(hour__gte=start, hour__lt=end)
    group = list(dims)
    if bucket == "day":
        rolled = rolled.annotate(bucket_start=TruncDay("hour", tzinfo=tz))
        group.append("bucket_start")
    elif bucket == "hour":
        group.append("hour")
    merged: dict[tuple, dict] = {}
    sums = {_T + k: v for k, v in _rollup_sums(histograms=histograms).items()}
    if group:
        rolled_rows = rolled.values(*group).annotate(**sums).order_by()
    else:  # values() without fields would mean every column: one aggregate row, if any rows
        rolled_rows = [row for row in [rolled.aggregate(**sums)] if row[_T + "requests"]]
    for row in map(_renamed, rolled_rows):
        if bucket == "day":
            row["bucket"] = row.pop("bucket_start").astimezone(tz).date()
        elif bucket == "hour":
            row["bucket"] = _local_bucket(row.pop("hour"), "hour", tz)
        _merge(merged, row, dims)
    if ranges:
        window = Q()
        for start, end in ranges:
            window |= Q(created_at__gte=start, created_at__lt=end)
        ledger = UsageRecord.objects.filter(window).filter(scope.filters())
        for row in ledger_hourly(ledger, dims, histograms=histograms):
            row["bucket"] = _local_bucket(row.pop("hour_start"), bucket, tz)
            _merge(merged, row, dims)
    return list(merged.values())


def _merge(merged: dict[tuple, dict], row: dict, dims: Sequence[str]) -> None:
    row["cost"] = cost_value(row.pop("cost_sum"))
    key = (*(row[d] for d in dims), row.get("bucket"))
    seen = merged.get(key)
    if seen is None:
        for name, value in row.items():
            if value is None and name not in dims and name != "bucket":
                row[name] = 0
        merged[key] = row
        return
    for name, value in row.items():
        if name not in dims and name != "bucket":
            seen[name] = (seen[name] or 0) + (value or 0)


def totals(rows: Iterable[dict]) -> dict:
    """Rows summed into one (dims dropped)."""
    out: dict = {"requests": 0, "errors": 0, "cost": Decimal(0)}
    for row in rows:
        for name, value in row.items():
            if name in DIMENSIONS or name == "bucket":
                continue
            out[name] = out.get(name, 0) + (value or 0)
    return out


def usage_names(rows: Iterable[dict]) -> tuple[dict, dict]:
    """Organization slugs and key prefixes for the ids in rows (two queries, not one per row)."""
    from orgs.models import ApiKey, Organization

    rows = list(rows)
    org_ids = {r["organization_id"] for r in rows if r.get("organization_id") is not None}
    key_ids = {r["api_key_id"] for r in rows if r.get("api_key_id") is not None}
    orgs = dict(Organization.objects.filter(pk__in=org_ids).values_list("pk", "slug")) if org_ids else {}
    keys = dict(ApiKey.objects.filter(pk__in=key_ids).values_list("pk", "prefix")) if key_ids else {}
    return orgs, keys
