"""Writes on usage and budgets: the daily roll-up and ledger retention (run by the Celery tasks in
tasks.py), and setting a budget."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .hourly_rollup import usage_hours_mark_pruned, usage_rollup_hours_of_day
from .models import Budget, DailyUsage, RollupDay, UsageRecord
from .selectors import day_start, ledger_groups

logger = logging.getLogger(__name__)

# A day is rolled up automatically only this long after it ends, so requests that started before
# midnight and were recorded after it (long streams, buffered rows) are in it.
ROLLUP_SETTLE = dt.timedelta(hours=1)
DEFAULT_RETENTION_DAYS = 90


def utc_today() -> dt.date:
    return timezone.now().astimezone(dt.timezone.utc).date()


def usage_rollup_day(*, day: dt.date) -> int:
    """Replace the day's DailyUsage rows with fresh sums of its ledger rows. Idempotent.

    Returns the number of roll-up rows written. Refuses today (still open) and days whose ledger
    rows retention already deleted (their roll-up is all that is left of them).
    """
    if day >= utc_today():
        raise ValueError(f"{day} is not over yet (UTC); only closed days can be rolled up")
    start, end = day_start(day), day_start(day + dt.timedelta(days=1))
    with transaction.atomic():
        # The marker row is the day's lock: two roll-ups of one day (beat plus a manual run) queue
        # here instead of both deleting and inserting, which would double the day.
        RollupDay.objects.get_or_create(day=day, defaults={"rolled_up_at": timezone.now()})
        marker = RollupDay.objects.select_for_update().get(day=day)
        if marker.pruned_at is not None:
            logger.info("billing: %s was pruned; keeping its roll-up as is", day)
            return 0
        ledger = UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        groups = list(ledger_groups(ledger))
        DailyUsage.objects.filter(day=day).delete()
        DailyUsage.objects.bulk_create(
            DailyUsage(
                day=day,
                organization_id=g.organization_id,
                api_key_id=g.api_key_id,
                model_name=g.model_name,
                requests=g.requests,
                error_requests=g.error_requests,
                prompt_tokens=g.prompt_tokens,
                completion_tokens=g.completion_tokens,
                cache_read_tokens=g.cache_read_tokens,
                cache_write_tokens=g.cache_write_tokens,
                cost=g.cost,
            )
            for g in groups
        )
        RollupDay.objects.update_or_create(
            day=day,
            defaults={"rolled_up_at": timezone.now(), "ledger_rows": sum(g.requests for g in groups), "dirty": False},
        )
    return len(groups)


def usage_rollup_due() -> list[dt.date]:
    """Closed days to roll up now: every settled day after the last rolled-up one, the most
    recent settled day again (cheap, and it picks up rows recorded late), and every rolled-up day
    the ledger drain has since written rows for (RollupDay.dirty)."""
    dirty = set(RollupDay.objects.filter(dirty=True, pruned_at__isnull=True).values_list("day", flat=True))
    return sorted(dirty.union(_rollup_due_by_calendar()))


def _rollup_due_by_calendar() -> list[dt.date]:
    now = timezone.now()
    last_settled = (now - ROLLUP_SETTLE).astimezone(dt.timezone.utc).date() - dt.timedelta(days=1)
    last_rolled = RollupDay.objects.order_by("-day").values_list("day", flat=True).first()
    if last_rolled is not None:
        first = min(last_rolled, last_settled)
    else:
        oldest = UsageRecord.objects.order_by("created_at").values_list("created_at", flat=True).first()
        if oldest is None:
            return []
        first = oldest.astimezone(dt.timezone.utc).date()
    days = []
    day = first
    while day <= last_settled:
        days.append(day)
        day += dt.timedelta(days=1)
    return days


def ledger_retention_apply(*, today: dt.date | None = None) -> int:
    """Delete raw ledger rows older than BILLING_LEDGER_RETENTION_DAYS, only for rolled-up days.

    Returns the number of ledger rows deleted. A day that was never rolled up keeps its rows.
    """
    keep_days = getattr(settings, "BILLING_LEDGER_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)
    cutoff = (today or utc_today()) - dt.timedelta(days=keep_days)
    deleted = 0
    # A dirty day waits for its re-roll: its late rows must reach DailyUsage before they go.
    for marker in RollupDay.objects.filter(day__lt=cutoff, pruned_at__isnull=True, dirty=False).order_by("day"):
        # The dashboards read hours: the day's hours reach HourlyUsage before its rows go.
        usage_rollup_hours_of_day(day=marker.day)
        with transaction.atomic():
            # Lock the marker so a concurrent roll-up of this day can't interleave with the delete.
            RollupDay.objects.select_for_update().filter(pk=marker.pk).first()
            start, end = day_start(marker.day), day_start(marker.day + dt.timedelta(days=1))
            count, _ = UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end).delete()
            RollupDay.objects.filter(pk=marker.pk).update(pruned_at=timezone.now())
            usage_hours_mark_pruned(day=marker.day)
        deleted += count
    return deleted


@transaction.atomic
def budget_set(
    *,
    organization,
    api_key=None,
    amount_usd: Decimal,
    period: str = "month",
    mode: str | None = None,
    thresholds: str | None = None,
    actor=None,
) -> tuple[Budget, bool]:
    """Create or update the budget of this scope (the organization, or one of its keys) and
    period. Mode and thresholds keep their current values (hard, 50,80,100 for a new budget)
    unless given. Spend is the ledger's: changing the amount never resets it. Returns (budget,
    created); audited like every operator change."""
    from orgs.services import audit_record

    if api_key is not None and api_key.organization_id != organization.pk:
        raise ValidationError({"api_key": "This key belongs to another organization."})
    budget = (
        Budget.objects.select_for_update()
        .filter(organization=organization, api_key=api_key, period=period)
        .order_by()  # Meta.ordering joins the key's table, which FOR UPDATE must not lock
        .first()
    )
    created = budget is None
    before = {} if created else {"amount_usd": str(budget.amount_usd), "mode": budget.mode,
                                 "thresholds": budget.thresholds}
    if created:
        budget = Budget(organization=organization, api_key=api_key, period=period)
    cents = amount_usd.quantize(Decimal("0.01")) if amount_usd.is_finite() else amount_usd
    budget.amount_usd = cents if cents == amount_usd else amount_usd  # "100" is $100.00; "1.005" is refused
    if mode is not None:
        budget.mode = mode
    if thresholds is not None:
        budget.thresholds = thresholds
    budget.full_clean(validate_unique=False)
    budget.save()
    after = {"amount_usd": str(budget.amount_usd), "mode": budget.mode, "thresholds": budget.thresholds}
    changes = {"period": period, **({"key": api_key.prefix} if api_key else {})}
    if created:
        changes.update(after)
    else:
        changes.update({k: {"old": before[k], "new": v} for k, v in after.items() if before[k] != v})
    audit_record(actor=actor, action="set_budget", obj=budget, organization=organization, changes=changes)
    return budget, created


@transaction.atomic
def organization_with_budget_create(*, monthly_budget_usd: Decimal | None = None, actor=None, **fields):
    """A new organization (orgs.services.organization_create takes `fields`) and, with an amount,
    its hard calendar-month budget, in one transaction: `create_org --monthly-budget`."""
    from orgs.services import organization_create

    organization = organization_create(actor=actor, **fields)
    if monthly_budget_usd is not None:
        budget_set(organization=organization, amount_usd=monthly_budget_usd, period="month", actor=actor)
    return organization
