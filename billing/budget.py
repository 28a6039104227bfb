"""Budgets on the request path: what applies to a request, its shared state, and its refusals.

A budget (billing.models.Budget) belongs to an organization or one key and has a period. Each
request of a scope with budgets is admitted against every one of them by billing.admission, in
one atomic step: a hard budget reserves the request's worst case (`worst_case_cost`), admitted
only if spent + reserved + this <= amount, so however many requests race, the money that can be
committed never exceeds it; a soft one never refuses. When the request is metered its
reservation is released and the real cost added to each budget's period spend.

State per (scope, period, window) lives in shared state (Redis with REDIS_URL: every instance
shares it) in integer units of 1e-10 USD (the ledger's precision): the window's spend, loaded from
the ledger the first time it is needed (billing.selectors.budget_spends) and kept current by every
metered request of the scope, whatever the mode; the total reserved; and each reservation with a
deadline, so one that is never settled (an instance killed mid-request) frees itself after
RESERVATION_SECONDS. Spend is never a counter anyone resets: a new window is a new key, loaded
from the ledger; editing a budget drops the cached figure, which is then reloaded, never zeroed.

If shared state is unreachable nothing can be reserved, so a hard budget cannot be held: its
requests are refused (BudgetUnavailable, a 503 the SDKs retry) unless the operator chose
availability over the budget with GATEWAY_BUDGET_FAIL_OPEN=1.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings

from core.shared_state import STATE_ERRORS, shared_state, state_outage

from .periods import PeriodWindow, window
from .pricing import COST_PLACES, Prices
from .scopes import ORGANIZATION, Scope

logger = logging.getLogger(__name__)

UNITS_PER_USD = 10**10  # one unit is COST_PLACES (1e-10 USD)
# Longer than any request can run (the default provider read timeout is 600 s between bytes).
RESERVATION_SECONDS = 30 * 60
# A "total" window never ends: its state is kept this long after last use, then reloaded.
_TOTAL_KEEP_SECONDS = 40 * 24 * 3600
# Past a window's end its state lingers this long (requests that started in it still settle).
_AFTER_WINDOW_SECONDS = 24 * 3600

HARD, SOFT = "hard", "soft"
_ADJECTIVE = {"day": "daily", "week": "weekly", "month": "monthly", "total": "total"}
_ENDS = {"day": "the day ends", "week": "the week ends", "month": "the month ends"}


@dataclass(frozen=True)
class BudgetRule:
    """A Budget row as the request path holds it (cached with the key: orgs.selectors.KeyContext)."""

    id: int
    scope: Scope
    period: str
    amount_usd: Decimal
    mode: str  # HARD or SOFT
    thresholds: tuple[int, ...]
    timezone: str  # the organization's IANA zone, "" for UTC

    @property
    def hard(self) -> bool:
        return self.mode == HARD

    def describe(self) -> str:
        """ "the organization's monthly budget of $100.00" """
        return f"the {self.scope.kind}'s {_ADJECTIVE.get(self.period, self.period)} budget of ${self.amount_usd}"


@dataclass(frozen=True)
class BudgetSlot:
    """One budget in its current period window: where its shared state lives."""

    rule: BudgetRule
    window: PeriodWindow

    @classmethod
    def of(cls, rule: BudgetRule, now: datetime) -> "BudgetSlot":
        return cls(rule, window(rule.period, now, rule.timezone))

    # Cached on the slot (admission reuses a slot for its whole window: billing.admission).
    @functools.cached_property
    def base(self) -> str:
        # The period is part of the name: a day and a month can start at the same instant.
        return budget_state_base(self.rule.scope, self.rule.period, self.window.key)

    @functools.cached_property
    def state_keys(self) -> tuple[str, ...]:
        return tuple(budget_state_keys(self.base))

    def keys(self) -> list[str]:
        return list(self.state_keys)

    def covers(self, now: datetime) -> bool:
        """Whether `now` falls in this slot's window (a "total" window covers every instant)."""
        start, end = self.window.start, self.window.end
        return start is None or (start <= now and (end is None or now < end))

    def ttl(self, now: datetime) -> int:
        if self.window.end is None:
            return _TOTAL_KEEP_SECONDS
        return max(60, int((self.window.end - now).total_seconds())) + _AFTER_WINDOW_SECONDS


def budget_state_base(scope: Scope, period: str, window_key: str) -> str:
    return f"budget:{scope.state_prefix}:{period}:{window_key}"


def budget_state_keys(base: str) -> list[str]:
    """Spent, reserved total, reservation amounts (hash), deadlines (zset)."""
    return [f"{base}:spent", f"{base}:reserved", f"{base}:amounts", f"{base}:deadlines"]


class OverBudget(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BudgetUnavailable(Exception):
    """The budget cannot be checked right now (shared state or the ledger is unreachable)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def to_units(amount: Decimal) -> int:
    return int((amount * UNITS_PER_USD).to_integral_value())


def _usd(units: int) -> str:
    return format((Decimal(units) / UNITS_PER_USD).quantize(COST_PLACES), "f")


def worst_case_cost(*, prices: Prices, prompt_tokens: int, max_output_tokens: int, choices: int = 1) -> Decimal:
    """The most this request can cost: `prompt_tokens`, an upper bound on its input (never an
    estimate: see ai_proxy.tokens.tokens_upper_bound), at the dearest input rate (a cache write
    can cost more than plain input), every allowed output token of every choice at the output
    price."""
    input_rate = max(prices.input, prices.cache_write or prices.input)
    total = Decimal(prompt_tokens) * input_rate + Decimal(max_output_tokens) * Decimal(max(choices, 1)) * prices.output
    return (total / Decimal(1_000_000)).quantize(COST_PLACES)


def over_budget(rule: BudgetRule, *, spent: int, reserved: int, amount: Decimal) -> OverBudget:
    """The refusal of a request whose worst case `amount` does not fit in `rule`."""
    scope = "This organization's" if rule.scope.kind == ORGANIZATION else "This key's"
    budget = f"{_ADJECTIVE.get(rule.period, rule.period)} budget of ${rule.amount_usd}"
    if spent >= to_units(rule.amount_usd):
        until = f"the operator raises it or {_ENDS[rule.period]}" if rule.period in _ENDS else "the operator raises it"
        return OverBudget(f"{scope} {budget} is used up (${_usd(spent)} spent). Requests are refused until {until}.")
    return OverBudget(
        f"This request could cost up to ${amount}, which does not fit in what is left of {rule.describe()} "
        f"(${_usd(spent)} spent, ${_usd(reserved)} reserved by requests in flight). Lower max_tokens, or ask the "
        "operator to raise the budget."
    )


def budget_unavailable(rule: BudgetRule, why: str) -> None:
    """Refuse (BudgetUnavailable) a request whose hard budget cannot be checked, or return if the
    operator chose availability over the budget (GATEWAY_BUDGET_FAIL_OPEN): the ledger still
    records its cost."""
    if settings.GATEWAY_BUDGET_FAIL_OPEN:
        return
    raise BudgetUnavailable(
        f"This {rule.scope.kind} has a hard {_ADJECTIVE.get(rule.period, rule.period)} budget, and the gateway "
        f"cannot check it right now ({why}). The request was not sent; retry shortly."
    )


def budget_spend_units(slots: list[BudgetSlot]) -> dict[str, int]:
    """Each slot's period spend from the ledger, in units: {slot base: units}. Flushes what this
    process and the shared queue still buffer first (those rows are spend too). Sync: call it in
    a worker thread."""
    from django.db import close_old_connections

    from .metering import ledger_flush_sync
    from .models import Budget
    from .selectors import budget_spends

    close_old_connections()
    ledger_flush_sync()
    pairs = []
    for slot in slots:
        scope = slot.rule.scope
        budget = Budget(pk=slot.rule.id, organization_id=scope.organization_id,
                        api_key_id=None if scope.kind == ORGANIZATION else scope.id)
        pairs.append((budget, slot.window))
    spends = budget_spends(pairs)
    return {slot.base: to_units(spends[slot.rule.id]) for slot in slots}


def budget_forget(slot: BudgetSlot) -> None:
    """Drop the cached spend of this window (its budget changed): reloaded from the ledger on
    next use. Never zeroed: the ledger is the truth."""
    try:
        shared_state().delete_sync(slot.keys()[0])
    except STATE_ERRORS as exc:
        state_outage.failed(exc, "dropping a cached budget spend")
