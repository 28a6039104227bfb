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

from core.time_zones import zone

from .histograms import LATENCY_FIELDS, TTFT_FIELDS, bucket_ranges
from .models import HourlyUsage, HourlyUsageDay, HourlyUsageOrgDay, RollupHour, UsageRecord
from .selectors import cost_sum, cost_value

UTC = dt.timezone.utc
DIMENSIONS = ("organization_id", "api_key_id", "model_name", "provider", "endpoint", "status_class")
# What HourlyUsageDay keeps (endpoint and status class are folded into requests and errors).
DAY_DIMENSIONS = ("organization_id", "api_key_id", "model_name", "provider")
ORG_DAY_DIMENSIONS = ("organization_id", "model_name", "provider")  # HourlyUsageOrgDay's
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


def ledger_sums(*, histograms: bool, tokens: bool = True) -> dict:
    """Aggregates of ledger rows named as HourlyUsage's columns (with the t_ prefix)."""
    sums = {
        "requests": Count("id"),
        "errors": Count("id", filter=Q(status__gte=400)),
        **({name: Sum(name) for name in TOKEN_FIELDS} if tokens else {}),
        "cost_sum": cost_sum("cost"),
    }
    if histograms:
        sums["latency_ms_sum"] = Sum("latency_ms")
        for name, (low, high) in zip(LATENCY_FIELDS, bucket_ranges()):
            sums[name] = Count("id", filter=Q(latency_ms__gte=low, **({"latency_ms__lt": high} if high else {})))
        for name, (low, high) in zip(TTFT_FIELDS, bucket_ranges()):
            sums[name] = Count("id", filter=Q(ttft_ms__gte=low, **({"ttft_ms__lt": high} if high else {})))
    return sums


def ledger_hourly(queryset, dims: Sequence[str], *, histograms: bool, tokens: bool = True) -> Iterator[dict]:
    """Ledger rows summed per UTC hour ("hour_start") and `dims`, named as HourlyUsage's columns."""
    rows = (
        queryset.annotate(hour_start=TruncHour("created_at", tzinfo=UTC), status_class=_status_class())
        .values("hour_start", *dims)
        .annotate(**{_T + k: v for k, v in ledger_sums(histograms=histograms, tokens=tokens).items()})
        .order_by()
    )
    return (_renamed(row) for row in rows)


def hourly_sums(*, histograms: bool, errors_column: bool = False, tokens: bool = True) -> dict:
    """Aggregates of HourlyUsage (or, errors_column, HourlyUsageDay) rows, t_-prefixed."""
    sums = {
        "requests": Sum("requests"),
        "errors": Sum("errors") if errors_column else Sum("requests", filter=~Q(status_class=OK)),
        **({name: Sum(name) for name in TOKEN_FIELDS} if tokens else {}),
        "cost_sum": cost_sum("cost"),
    }
    if histograms:
        sums["latency_ms_sum"] = Sum("latency_ms_sum")
        sums.update({name: Sum(name) for name in (*LATENCY_FIELDS, *TTFT_FIELDS)})
    return {_T + k: v for k, v in sums.items()}


def _local_bucket(hour: dt.datetime, bucket: str | None, tz) -> object:
    if bucket is None:
        return None
    local = hour.astimezone(tz)
    return local.replace(tzinfo=None) if bucket == "hour" else local.date()


def _spans_minus(spans: list[tuple], holes: Iterable[tuple]) -> list[tuple]:
    """[start, end) spans with the holes cut out."""
    for low, high in holes:
        out = []
        for start, end in spans:
            if high <= start or low >= end:
                out.append((start, end))
                continue
            if start < low:
                out.append((start, low))
            if high < end:
                out.append((high, end))
        spans = out
    return spans


def _whole_days(scope: UsageScope, dims: Sequence[str], bucket: str | None, tz) -> dict[dt.date, object]:
    """UTC days in scope that HourlyUsageDay can answer for, each with its bucket: days whose 24
    hours are all inside the range and clean, when the query needs nothing finer than a day by
    organization, key, model and provider, and (with day buckets) when the display time zone puts
    all 24 hours in the same local day (UTC, or any zone at offset 0 all day)."""
    if bucket == "hour" or not set(dims) <= set(DAY_DIMENSIONS):
        return {}
    first = _midnight(scope.start)
    if first < scope.start:
        first += dt.timedelta(days=1)
    days = {}
    day = first.date()
    unclean = scope.ledger_ranges()
    while _midnight(day) + dt.timedelta(days=1) <= scope.end:
        start, end = _midnight(day), _midnight(day) + dt.timedelta(days=1)
        if not any(low < end and high > start for low, high in unclean):
            if bucket is None:
                days[day] = None
            elif tz is UTC:
                days[day] = day
            else:
                local = {(start + dt.timedelta(hours=i)).astimezone(tz).date() for i in range(24)}
                if len(local) == 1:
                    days[day] = local.pop()
        day += dt.timedelta(days=1)
    return days


def _midnight(moment) -> dt.datetime:
    """The UTC midnight starting a date, or the UTC day of a moment."""
    day = moment.astimezone(UTC).date() if isinstance(moment, dt.datetime) else moment
    return dt.datetime.combine(day, dt.time.min, tzinfo=UTC)


def _window(field: str, spans: Sequence[tuple]) -> Q:
    q = Q()
    for start, end in spans:
        q |= Q(**{f"{field}__gte": start, f"{field}__lt": end})
    return q


def _grouped(queryset, group: list[str], sums: dict) -> Iterable[dict]:
    """Rows of sums per group, named as HourlyUsage's columns (tuples zipped with the names: a
    90-day page reads thousands of groups, and values() dicts renamed one by one cost more
    than the query)."""
    if group:
        names = [*group, *(name[len(_T):] for name in sums)]
        rows = queryset.values(*group).annotate(**sums).order_by().values_list(*group, *sums)
        return (dict(zip(names, row)) for row in rows)
    # values() without fields would mean every column: one aggregate row, if any rows.
    return [_renamed(row) for row in [queryset.aggregate(**sums)] if row[_T + "requests"]]


def usage_aggregate(
    scope: UsageScope, dims: Sequence[str] = (), *, bucket: str | None = None, histograms: bool = False,
    tokens: bool = True,
) -> list[dict]:
    """Usage in `scope` summed per `dims` (names from DIMENSIONS) and, with bucket "hour" or "day",
    per local hour or day in scope.tz (naive local datetime or date, under "bucket").

    Each row: the dims, "bucket", requests, errors, the four token counts (unless tokens=False:
    rankings and charts need requests, errors and cost only, which PostgreSQL then reads from a
    covering index), cost (Decimal) and, with histograms, latency_ms_sum and the histogram counts.

    Three sources, each hour read from exactly one: HourlyUsageDay for whole clean UTC days where
    a day is fine enough (_whole_days), HourlyUsage for the other clean hours, the ledger for
    hours not rolled up (or dirty). The same numbers whichever source answers.
    """
    tz = zone(scope.tz)
    ledger_spans = scope.ledger_ranges()
    days = _whole_days(scope, dims, bucket, tz)
    day_spans = [(_midnight(d), _midnight(d) + dt.timedelta(days=1)) for d in days]
    hour_spans = _spans_minus([(scope.start, scope.end)], [*ledger_spans, *_joined(day_spans)])
    merged: dict[tuple, dict] = {}
    if days:
        # Without a key in the question, the organization-level table: a fraction of the rows.
        by_org = set(dims) <= set(ORG_DAY_DIMENSIONS) and scope.api_key_id is None and not scope.api_key_ids
        table = HourlyUsageOrgDay if by_org else HourlyUsageDay
        daily = table.objects.filter(scope.filters(), _window("day", _joined_days(days)))
        group = [*dims, "day"] if bucket == "day" else list(dims)
        for row in _grouped(daily, group, hourly_sums(histograms=histograms, errors_column=True, tokens=tokens)):
            if bucket == "day":
                row["bucket"] = days[row.pop("day")]
            _merge(merged, row, dims)
    if hour_spans:
        rolled = HourlyUsage.objects.filter(scope.filters(), _window("hour", hour_spans))
        group = list(dims)
        if bucket == "day":
            rolled = rolled.annotate(bucket_start=TruncDay("hour", tzinfo=tz))
            group.append("bucket_start")
        elif bucket == "hour":
            group.append("hour")
        for row in _grouped(rolled, group, hourly_sums(histograms=histograms, tokens=tokens)):
            if bucket == "day":
                row["bucket"] = row.pop("bucket_start").astimezone(tz).date()
            elif bucket == "hour":
                row["bucket"] = _local_bucket(row.pop("hour"), "hour", tz)
            _merge(merged, row, dims)
    if ledger_spans:
        ledger = UsageRecord.objects.filter(_window("created_at", ledger_spans)).filter(scope.filters())
        for row in ledger_hourly(ledger, dims, histograms=histograms, tokens=tokens):
            row["bucket"] = _local_bucket(row.pop("hour_start"), bucket, tz)
            _merge(merged, row, dims)
    return list(merged.values())


def _joined(spans: Sequence[tuple]) -> list[tuple]:
    """Adjacent spans as one (a 90-day range is one span, not 90)."""
    out: list[tuple] = []
    for start, end in sorted(spans):
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _joined_days(days: Iterable[dt.date]) -> list[tuple[dt.date, dt.date]]:
    return [(start.date(), end.date()) for start, end in _joined([(_midnight(d), _midnight(d) + dt.timedelta(days=1)) for d in days])]


def _merge(merged: dict[tuple, dict], row: dict, dims: Sequence[str]) -> None:
    row["cost"] = cost_value(row.pop("cost_sum"))
    key = (*map(row.__getitem__, dims), row.get("bucket"))
    seen = merged.get(key)
    if seen is None:
        if None in row.values():  # most rows have none: skip the loop
            for name, value in row.items():
                if value is None and name not in dims and name != "bucket":
                    row[name] = 0
        merged[key] = row
        return
    for name, value in row.items():
        if name not in dims and name != "bucket":
            seen[name] = (seen[name] or 0) + (value or 0)


def regroup(rows: Iterable[dict], dims: Sequence[str]) -> list[dict]:
    """usage_aggregate rows summed again per a subset of their dims: one query feeds several
    panels (by model, by key) instead of one pass over the range each."""
    merged: dict[tuple, dict] = {}
    for row in rows:
        key = tuple(row[d] for d in dims)
        seen = merged.get(key)
        if seen is None:
            merged[key] = {k: v for k, v in row.items() if k in dims or (k not in DIMENSIONS and k != "bucket")}
            continue
        for name, value in row.items():
            if name not in DIMENSIONS and name != "bucket":
                seen[name] += value
    return list(merged.values())


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
