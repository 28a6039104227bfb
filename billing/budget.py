"""Monthly budgets with a hard limit, enforced by reservation so concurrency cannot overshoot.

For an organization whose budget mode is "hard", each request reserves its worst-case cost
before it is sent (prompt estimate at the input price plus its output allowance at the output
price) with one atomic check-and-add: admitted only if spent + reserved + this ≤ budget. When
the request is metered the reservation is released and the real cost added to the month's
spend. So however many requests race, the money that can be committed never exceeds the budget.

State lives in shared state (Redis with REDIS_URL, so every instance shares one ledger of
reservations), in integer units of 1e-10 USD (the ledger's precision), keyed by organization and
UTC month. The month's spend is loaded from the database the first time it is needed (and after
Redis loses it), then kept current by every settle. Organizations without a budget, or in
"alert" mode, pay nothing here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from asgiref.sync import sync_to_async

from gateway_site.shared_state import STATE_ERRORS, shared_state

from .pricing import COST_PLACES, Prices

logger = logging.getLogger(__name__)

UNITS_PER_USD = 10**10  # one unit is COST_PLACES (1e-10 USD)
_KEEP_SECONDS = 40 * 24 * 3600  # a month and then some

# KEYS: spent, reserved. ARGV: amount, limit, ttl. Returns {admitted, spent, reserved}; spent -1
# means "not loaded yet": the caller loads it from the database and tries again.
_RESERVE_LUA = """
local spent = redis.call('GET', KEYS[1])
if not spent then return {0, -1, 0} end
local reserved = tonumber(redis.call('GET', KEYS[2]) or '0')
spent = tonumber(spent)
if spent + reserved + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return {0, spent, reserved} end
reserved = redis.call('INCRBY', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return {1, spent, reserved}
"""
# KEYS: spent, reserved. ARGV: reserved amount to release, cost to add, ttl.
_SETTLE_LUA = """
local reserved = redis.call('DECRBY', KEYS[2], ARGV[1])
if reserved < 0 then redis.call('SET', KEYS[2], 0) end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('INCRBY', KEYS[1], ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return 1
"""


@dataclass(frozen=True)
class Reservation:
    organization_id: int
    month: str
    units: int


class OverBudget(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def to_units(amount: Decimal) -> int:
    return int((amount * UNITS_PER_USD).to_integral_value())


def _usd(units: int) -> Decimal:
    return (Decimal(units) / UNITS_PER_USD).quantize(COST_PLACES)


def worst_case_cost(*, prices: Prices, prompt_tokens: int, max_output_tokens: int) -> Decimal:
    """The most this request can cost: every input token uncached, every allowed output token used."""
    total = Decimal(prompt_tokens) * prices.input + Decimal(max_output_tokens) * prices.output
    return (total / Decimal(1_000_000)).quantize(COST_PLACES)


def _keys(organization_id: int, month: str) -> list[str]:
    return [f"budget:spent:{organization_id}:{month}", f"budget:reserved:{organization_id}:{month}"]


def _month_spend_from_db(organization_id: int, month_start: datetime) -> int:
    from django.db import close_old_connections
    from django.db.models import Sum

    from .models import UsageRecord

    close_old_connections()
    # The month is still open, so it has not been rolled up or pruned: the ledger is the truth.
    total = UsageRecord.objects.filter(
        organization_id=organization_id, created_at__gte=month_start
    ).aggregate(total=Sum("cost"))["total"]
    return to_units(Decimal(total or 0))


def _local_reserve(memory, keys: list[str], amount: int, limit: int) -> tuple[int, int, int]:
    spent = memory.get(keys[0])
    if spent is None:
        return 0, -1, 0
    reserved = int(memory.get(keys[1]) or 0)
    if int(spent) + reserved + amount > limit:
        return 0, int(spent), reserved
    return 1, int(spent), memory.incr(keys[1], amount, _KEEP_SECONDS)


async def budget_reserve(
    *, organization_id: int, budget_usd: Decimal, amount: Decimal, now: datetime
) -> Reservation | None:
    """Reserve `amount` against the organization's hard monthly budget or raise OverBudget.

    If shared state is unreachable the request is let through and logged: the ledger still
    records its cost, and refusing all traffic during a Redis outage would be worse.
    """
    month = now.strftime("%Y%m")
    keys = _keys(organization_id, month)
    units, limit = to_units(amount), to_units(budget_usd)
    state = shared_state()
    try:
        for _ in range(2):
            admitted, spent, reserved = await state.script(
                _RESERVE_LUA, keys, [units, limit, _KEEP_SECONDS],
                local=lambda memory: _local_reserve(memory, keys, units, limit),
            )
            if int(spent) >= 0:
                break
            month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            loaded = await sync_to_async(_month_spend_from_db, thread_sensitive=False)(organization_id, month_start)
            await state.set_if_absent(keys[0], str(loaded), ttl=_KEEP_SECONDS)
    except STATE_ERRORS as exc:
        logger.warning("budget not enforced (shared state unreachable): %s", type(exc).__name__)
        return None
    if not int(admitted):
        spent_usd, reserved_usd = format(_usd(int(spent)), "f"), format(_usd(int(reserved)), "f")
        if int(spent) >= limit:
            message = (f"This organization's monthly budget of ${budget_usd} is used up (${spent_usd} spent). "
                       "Requests are refused until the operator raises it or the month ends.")
        else:
            message = (f"This request could cost up to ${amount}, which does not fit in what is left of the "
                       f"organization's monthly budget of ${budget_usd} (${spent_usd} spent, ${reserved_usd} "
                       "reserved by requests in flight). Lower max_tokens, or ask the operator to raise the budget.")
        raise OverBudget(message)
    return Reservation(organization_id=organization_id, month=month, units=units)


def _local_settle(memory, keys: list[str], release: int, cost: int) -> int:
    reserved = memory.incr(keys[1], -release)
    if reserved < 0:
        memory.set(keys[1], 0, _KEEP_SECONDS)
    if memory.get(keys[0]) is not None:
        memory.incr(keys[0], cost)
    return 1


async def budget_settle(reservation: Reservation, cost: Decimal) -> None:
    """Release the reservation and add the request's real cost to the month's spend."""
    keys = _keys(reservation.organization_id, reservation.month)
    cost_units = to_units(cost)
    try:
        await shared_state().script(
            _SETTLE_LUA, keys, [reservation.units, cost_units, _KEEP_SECONDS],
            local=lambda memory: _local_settle(memory, keys, reservation.units, cost_units),
        )
    except STATE_ERRORS as exc:
        # The reservation expires with the month key; the spend is reloaded from the ledger then.
        logger.warning("budget settle failed (shared state unreachable): %s", type(exc).__name__)
