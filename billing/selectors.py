"""Reads on usage: the ledger for days not yet rolled up, daily roll-ups for the rest.

Every read takes the organization (or is explicitly operator-wide, for the admin export).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import BigIntegerField, Count, F, FloatField, Func, Q, QuerySet, Sum, Value
from django.db.models.functions import Cast, TruncDate

from .models import DailyUsage, RollupDay, UsageRecord
from .periods import PeriodWindow
from .periods import window as period_window
from .pricing import COST_PLACES

UTC = dt.timezone.utc
# The dates a usage query may name: past the last, the day after to_date is not a date.
USAGE_DATE_MIN = dt.date(2000, 1, 1)
USAGE_DATE_MAX = dt.date(9998, 12, 31)
_SCALE = 10**10  # cost columns have 10 decimal places


def cost_sum(field: str = "cost"):
    """An exact SUM of a cost column on every backend.

    PostgreSQL sums NUMERIC exactly. SQLite stores DECIMAL as a double and sums doubles, which can
    drift in the last places over many rows, so there we sum the value scaled to whole units of
    1e-10 as integers (exact up to 9e8 USD per sum).
    """
    if connection.vendor == "postgresql":
        return Sum(field)
    scaled = Func(F(field) * Value(_SCALE), function="ROUND", output_field=FloatField())
    return Sum(Cast(scaled, BigIntegerField()))


def cost_value(value) -> Decimal:
    """Turn what cost_sum() returned into Decimal dollars with 10 places."""
    if value is None:
        return Decimal(0).quantize(COST_PLACES)
    if isinstance(value, int):
        return Decimal(value).scaleb(-10).quantize(COST_PLACES)
    return Decimal(value).quantize(COST_PLACES)


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=UTC)


@dataclass
class UsageGroup:
    """Usage of one organization, key and model on one UTC day."""

    organization_id: int | None
    day: dt.date
    api_key_id: int | None
    model_name: str
    requests: int = 0
    error_requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost: Decimal = Decimal(0)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _ledger_ranges(from_date: dt.date, to_date: dt.date) -> list[tuple[dt.date, dt.date]]:
    """Inclusive day ranges within [from_date, to_date] to read from the ledger: days not rolled
    up (today always) and rolled-up days that rows arrived for since (dirty, until re-rolled)."""
    rolled = sorted(
        RollupDay.objects.filter(day__range=(from_date, to_date))
        .exclude(dirty=True, pruned_at__isnull=True)
        .values_list("day", flat=True)
    )
    ranges = []
    start = from_date
    for day in rolled:
        if day > start:
            ranges.append((start, day - dt.timedelta(days=1)))
        start = day + dt.timedelta(days=1)
    if start <= to_date:
        ranges.append((start, to_date))
    return ranges


def ledger_groups(queryset: QuerySet[UsageRecord]) -> Iterator[UsageGroup]:
    """Aggregate ledger rows per organization, UTC day, key and model."""
    rows = (
        queryset.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("organization_id", "day", "api_key_id", "model_name")
        .annotate(
            requests=Count("id"),
            error_requests=Count("id", filter=Q(status__gte=400)),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            cache_read=Sum("cache_read_tokens"),
            cache_write=Sum("cache_write_tokens"),
            total_cost=cost_sum("cost"),
        )
        .order_by()
    )
    for row in rows:
        yield UsageGroup(
            organization_id=row["organization_id"],
            day=row["day"],
            api_key_id=row["api_key_id"],
            model_name=row["model_name"],
            requests=row["requests"],
            error_requests=row["error_requests"],
            prompt_tokens=row["prompt"] or 0,
            completion_tokens=row["completion"] or 0,
            cache_read_tokens=row["cache_read"] or 0,
            cache_write_tokens=row["cache_write"] or 0,
            cost=cost_value(row["total_cost"]),
        )


def usage_groups(*, from_date: dt.date, to_date: dt.date, organization_id: int | None) -> list[UsageGroup]:
    """Usage per organization, day, key and model; organization_id=None means every organization
    (operator export only). Closed, rolled-up days come from DailyUsage; the rest from the ledger."""
    daily = DailyUsage.objects.filter(day__range=(from_date, to_date))
    ledger = UsageRecord.objects.all()
    if organization_id is not None:
        daily = daily.filter(organization_id=organization_id)
        ledger = ledger.filter(organization_id=organization_id)
    ranges = _ledger_ranges(from_date, to_date)
    rolled_out = Q()
    for start, end in ranges:
        rolled_out |= Q(day__range=(start, end))
    if ranges:
        # A day read from the ledger is never also read from DailyUsage.
        daily = daily.exclude(rolled_out)
    # Tuples, not model instances: a year of roll-ups is thousands of rows.
    groups = [
        UsageGroup(*row)
        for row in daily.order_by().values_list(
            "organization_id", "day", "api_key_id", "model_name", "requests", "error_requests", "prompt_tokens",
            "completion_tokens", "cache_read_tokens", "cache_write_tokens", "cost",
        )
    ]
    if ranges:
        window = Q()
        for start, end in ranges:
            window |= Q(created_at__gte=day_start(start), created_at__lt=day_start(end + dt.timedelta(days=1)))
        groups.extend(ledger_groups(ledger.filter(window)))
    return groups


def usage_summary(*, organization_id: int, from_date: dt.date, to_date: dt.date) -> dict:
    """The /usage body for one organization (without the organization/currency envelope)."""
    from orgs.models import ApiKey

    groups = usage_groups(from_date=from_date, to_date=to_date, organization_id=organization_id)
    zero = Decimal(0).quantize(COST_PLACES)
    totals = {"requests": 0, "errors": 0, "prompt": 0, "completion": 0, "cost": zero}
    by_model: dict[str, dict] = {}
    by_day: dict[dt.date, dict] = {}
    by_key_id: dict[int | None, dict] = {}
    for g in groups:
        totals["requests"] += g.requests
        totals["errors"] += g.error_requests
        totals["prompt"] += g.prompt_tokens
        totals["completion"] += g.completion_tokens
        totals["cost"] += g.cost
        for bucket in (
            by_model.setdefault(g.model_name, {"requests": 0, "tokens": 0, "cost": zero}),
            by_day.setdefault(g.day, {"requests": 0, "tokens": 0, "cost": zero}),
            by_key_id.setdefault(g.api_key_id, {"requests": 0, "tokens": 0, "cost": zero}),
        ):
            bucket["requests"] += g.requests
            bucket["tokens"] += g.total_tokens
            bucket["cost"] += g.cost
    keys = {
        k.pk: k
        for k in ApiKey.objects.filter(organization_id=organization_id, pk__in=[i for i in by_key_id if i is not None])
    }
    by_key = {}
    for key_id, bucket in sorted(by_key_id.items(), key=lambda item: (item[0] is None, item[0] or 0)):
        key = keys.get(key_id)
        prefix = key.prefix if key else "deleted"
        by_key[prefix] = {"label": key.label if key else "(deleted key)", **bucket}
    return {
        "total_cost": totals["cost"],
        "total_requests": totals["requests"],
        "total_tokens": totals["prompt"] + totals["completion"],
        "prompt_tokens": totals["prompt"],
        "completion_tokens": totals["completion"],
        "error_requests": totals["errors"],
        "by_model": dict(sorted(by_model.items())),
        "by_day": [{"date": day.isoformat(), **bucket} for day, bucket in sorted(by_day.items())],
        "by_key": by_key,
    }


# --- budget spend ----------------------------------------------------------------------------


def budget_window(budget, now: dt.datetime) -> PeriodWindow:
    """The budget's current period window, in its organization's time zone (UTC when unset)."""
    return period_window(budget.period, now, budget.organization.timezone)


def budget_spend(budget, window: PeriodWindow) -> Decimal:
    """What the budget's scope spent in the window, from the ledger (Decimal dollars)."""
    return budget_spends([(budget, window)])[budget.pk]


def budget_spends(pairs: list[tuple]) -> dict[int, Decimal]:
    """Spend of many (budget, window) pairs: {budget id: Decimal}, in one aggregate query per
    distinct window and scope kind (a handful however many budgets), never one per budget.

    The ledger is the truth; only for days whose raw rows retention already deleted (a "total"
    budget older than BILLING_LEDGER_RETENTION_DAYS) the day's roll-up stands in for them.
    """
    groups: dict[tuple, list] = {}
    for budget, window in pairs:
        groups.setdefault((window.start, window.end, bool(budget.api_key_id)), []).append(budget)
    pruned = list(RollupDay.objects.filter(pruned_at__isnull=False).values_list("day", flat=True)) if pairs else []
    spends: dict[int, Decimal] = {}
    for (start, end, by_key), budgets in groups.items():
        column = "api_key_id" if by_key else "organization_id"
        ids = {getattr(b, column) for b in budgets}
        ledger = UsageRecord.objects.filter(**{f"{column}__in": ids})
        if start is not None:
            ledger = ledger.filter(created_at__gte=start, created_at__lt=end)
        totals = {
            row[column]: cost_value(row["total"])
            for row in ledger.values(column).annotate(total=cost_sum("cost")).order_by()
        }
        days = [d for d in pruned if start is None or start <= day_start(d) < end]
        if days:
            daily = DailyUsage.objects.filter(**{f"{column}__in": ids}, day__in=days)
            for row in daily.values(column).annotate(total=cost_sum("cost")).order_by():
                totals[row[column]] = totals.get(row[column], cost_value(None)) + cost_value(row["total"])
        for budget in budgets:
            spends[budget.pk] = totals.get(getattr(budget, column), cost_value(None))
    return spends


def percent_of(spent: Decimal, amount: Decimal) -> Decimal | None:
    """Percent of the amount used, 2 places; None for a zero budget (any spend is infinitely over)."""
    if amount <= 0:
        return None
    return (spent * 100 / amount).quantize(Decimal("0.01"))


@dataclass
class BudgetStatus:
    budget: object  # billing.models.Budget
    window: PeriodWindow
    spent: Decimal
    percent_used: Decimal | None


def budget_statuses(budgets, now: dt.datetime) -> list[BudgetStatus]:
    """Each budget with its current window and spend (budgets with organization and api_key
    selected: their zone and key prefix are read)."""
    budgets = list(budgets)
    windows = {b.pk: budget_window(b, now) for b in budgets}
    spends = budget_spends([(b, windows[b.pk]) for b in budgets])
    return [BudgetStatus(b, windows[b.pk], spends[b.pk], percent_of(spends[b.pk], b.amount_usd)) for b in budgets]


def organization_budget_statuses(*, organization_id: int, now: dt.datetime) -> list[BudgetStatus]:
    """Every budget of one organization (its own and its keys'), with spend this period."""
    from .models import Budget

    budgets = (
        Budget.objects.filter(organization_id=organization_id)
        .select_related("organization", "api_key")
        # The organization's own first, then its keys', on every backend (NULLs sort apart).
        .order_by(F("api_key__prefix").asc(nulls_first=True), "period")
    )
    return budget_statuses(budgets, now)
