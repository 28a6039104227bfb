"""Writes on hourly usage: roll closed UTC hours of the ledger into HourlyUsage (every few
minutes, from Celery beat or the embedded background thread), idempotently, hour by hour."""

from __future__ import annotations

import datetime as dt
import logging

from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import TruncDate
from django.utils import timezone

from .histograms import LATENCY_FIELDS, TTFT_FIELDS
from .models import HourlyUsage, HourlyUsageDay, HourlyUsageOrgDay, RollupHour, UsageRecord
from .selectors import cost_value
from .usage_hourly import DAY_DIMENSIONS, DIMENSIONS, ORG_DAY_DIMENSIONS, TOKEN_FIELDS, hour_floor, hourly_sums, ledger_hourly

logger = logging.getLogger(__name__)

# An hour is rolled up this long after it ends; rows recorded later mark it dirty (the drain)
# and it is rolled up again on the next pass. Until then reads take it from the ledger.
HOUR_SETTLE = dt.timedelta(minutes=2)
# Bounded work per pass (the first pass after an upgrade may find months of ledger hours);
# oldest first, the rest on the next passes. Reads are right meanwhile: they use the ledger.
MAX_HOURS_PER_PASS = 24 * 14
_COLUMNS = ("requests", *TOKEN_FIELDS, "latency_ms_sum", *LATENCY_FIELDS, *TTFT_FIELDS)


def usage_rollup_hour(*, hour: dt.datetime) -> int:
    """Replace the hour's HourlyUsage rows with fresh sums of its ledger rows. Returns rows written.

    Refuses an hour that is not over, and keeps a pruned hour as is (its roll-up is all that is
    left of it).
    """
    hour = hour_floor(hour)
    end = hour + dt.timedelta(hours=1)
    if end > timezone.now():
        raise ValueError(f"{hour:%Y-%m-%d %H:00} UTC is not over yet; only closed hours can be rolled up")
    with transaction.atomic():
        _day_lock(hour.date())
        # The marker row is the hour's lock, as RollupDay is the day's.
        RollupHour.objects.get_or_create(hour=hour, defaults={"rolled_up_at": timezone.now()})
        marker = RollupHour.objects.select_for_update().get(hour=hour)
        if marker.pruned_at is not None:
            return 0
        ledger = UsageRecord.objects.filter(created_at__gte=hour, created_at__lt=end)
        groups = list(ledger_hourly(ledger, DIMENSIONS, histograms=True))
        HourlyUsage.objects.filter(hour=hour).delete()
        HourlyUsage.objects.bulk_create(
            HourlyUsage(
                hour=hour,
                **{name: g[name] for name in DIMENSIONS},
                **{name: g[name] or 0 for name in _COLUMNS},
                cost=cost_value(g["cost_sum"]),
            )
            for g in groups
        )
        usage_days_derive(first=hour.date(), last=hour.date())
        RollupHour.objects.filter(pk=marker.pk).update(
            rolled_up_at=timezone.now(), ledger_rows=sum(g["requests"] for g in groups), dirty=False
        )
    return len(groups)


def _day_lock(day: dt.date) -> None:
    """Serialize the roll-ups of one UTC day's hours until commit: each re-derives the day's
    HourlyUsageDay rows, which must see every other hour of the day committed. (SQLite has one
    writer at a time anyway.)"""
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [0x48554459, day.toordinal()])  # "HUDY"


def usage_days_derive(
    *, first: dt.date, last: dt.date, hourly=HourlyUsage, daily=HourlyUsageDay, org_daily=HourlyUsageOrgDay,
) -> int:
    """Replace the HourlyUsageDay rows of UTC days first..last with sums of their HourlyUsage rows,
    and the HourlyUsageOrgDay rows with sums of those. Returns rows written. Runs inside the
    transaction that changed the hours (and in migrations with their historical models; None
    for a table that does not exist yet)."""
    start = dt.datetime.combine(first, dt.time.min, tzinfo=dt.timezone.utc)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time.min, tzinfo=dt.timezone.utc)
    hours = hourly.objects.filter(hour__gte=start, hour__lt=end).annotate(utc_day=TruncDate("hour", tzinfo=dt.timezone.utc))
    written = _derive(hours, hourly_sums(histograms=True), daily, DAY_DIMENSIONS, first, last)
    if org_daily is not None:
        written += usage_org_days_derive(first=first, last=last, daily=daily, org_daily=org_daily)
    return written


def usage_org_days_derive(*, first: dt.date, last: dt.date, daily=HourlyUsageDay, org_daily=HourlyUsageOrgDay) -> int:
    """Replace the HourlyUsageOrgDay rows of days first..last with sums of their HourlyUsageDay rows."""
    days = daily.objects.filter(day__gte=first, day__lte=last).annotate(utc_day=F("day"))
    return _derive(days, hourly_sums(histograms=True, errors_column=True), org_daily, ORG_DAY_DIMENSIONS, first, last)


def _derive(source, sums: dict, target, dims: tuple, first: dt.date, last: dt.date) -> int:
    groups = source.values("utc_day", *dims).annotate(**sums).order_by()
    target.objects.filter(day__gte=first, day__lte=last).delete()
    rows = [
        target(
            day=g["utc_day"],
            **{name: g[name] for name in dims},
            **{name: g["t_" + name] or 0 for name in (*_COLUMNS, "errors")},
            cost=cost_value(g["t_cost_sum"]),
        )
        for g in groups
    ]
    target.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def usage_rollup_hours_due(*, now: dt.datetime | None = None) -> list[dt.datetime]:
    """Closed hours to roll up now, oldest first: dirty hours, then every settled hour after the
    last rolled-up one (the last one again too: cheap, and it catches rows that were in flight)."""
    now = now or timezone.now()
    last_settled = hour_floor(now - HOUR_SETTLE) - dt.timedelta(hours=1)
    due = set(RollupHour.objects.filter(dirty=True, pruned_at__isnull=True).values_list("hour", flat=True))
    last = RollupHour.objects.order_by("-hour").values_list("hour", flat=True).first()
    if last is None:
        oldest = UsageRecord.objects.order_by("created_at").values_list("created_at", flat=True).first()
        first = hour_floor(oldest) if oldest else None
    else:
        first = min(last, last_settled)
    hour = first
    while hour is not None and hour <= last_settled and len(due) < MAX_HOURS_PER_PASS:
        due.add(hour)
        hour += dt.timedelta(hours=1)
    return sorted(due)[:MAX_HOURS_PER_PASS]


def usage_rollup_hours() -> int:
    """One pass: roll up every due hour. Returns roll-up rows written."""
    return sum(usage_rollup_hour(hour=h) for h in usage_rollup_hours_due())


def usage_rollup_hours_of_day(*, day: dt.date) -> None:
    """Make sure the day's 24 hours are rolled up (retention calls this before deleting the day)."""
    start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.timezone.utc)
    clean = set(
        RollupHour.objects.filter(hour__gte=start, hour__lt=start + dt.timedelta(days=1))
        .exclude(dirty=True, pruned_at__isnull=True)
        .values_list("hour", flat=True)
    )
    for i in range(24):
        hour = start + dt.timedelta(hours=i)
        if hour not in clean:
            usage_rollup_hour(hour=hour)


def usage_hours_mark_pruned(*, day: dt.date) -> None:
    start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.timezone.utc)
    RollupHour.objects.filter(hour__gte=start, hour__lt=start + dt.timedelta(days=1)).update(pruned_at=timezone.now())


def _weeks(model, field: str):
    """(first, last) UTC days a week apart covering every row of `model` (bounded memory)."""
    first = model.objects.order_by(field).values_list(field, flat=True).first()
    last = model.objects.order_by("-" + field).values_list(field, flat=True).first()
    if first is None:
        return
    as_day = lambda v: v.astimezone(dt.timezone.utc).date() if isinstance(v, dt.datetime) else v  # noqa: E731
    day, last_day = as_day(first), as_day(last)
    while day <= last_day:
        week_end = min(day + dt.timedelta(days=6), last_day)
        yield day, week_end
        day = week_end + dt.timedelta(days=1)


def usage_days_derive_all(*, hourly=HourlyUsage, daily=HourlyUsageDay, org_daily=HourlyUsageOrgDay) -> int:
    """Derive every UTC day that has hourly rows, a week per query (migration 0007, the dashboard
    benchmark). Returns rows written."""
    return sum(usage_days_derive(first=a, last=b, hourly=hourly, daily=daily, org_daily=org_daily)
               for a, b in _weeks(hourly, "hour"))
