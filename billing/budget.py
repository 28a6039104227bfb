"""Monthly budgets with a hard limit, enforced by reservation so concurrency cannot overshoot.

For an organization whose budget mode is "hard", each request reserves its worst-case cost
before it is sent (see `worst_case_cost`) with one atomic check-and-add: admitted only if
spent + reserved + this ≤ budget. When the request is metered its reservation is released and
the real cost added to the month's spend. However many requests race, the money that can be
committed never exceeds the budget.

Each reservation is its own entry with a deadline, so one that is never settled (an instance
killed mid-request) frees itself after RESERVATION_SECONDS instead of holding budget until the
month ends. State lives in shared state (Redis with REDIS_URL: every instance shares it) in
integer units of 1e-10 USD (the ledger's precision), under one hash tag per organization and
month so the scripts also run on a Redis Cluster. The month's spend is loaded from the ledger
the first time it is needed, dropped whenever the organization is saved (its budget or mode may
have changed: reloaded from the ledger on next use), and kept current by every metered request of
an organization that has a budget, whatever its mode.

If shared state is unreachable nothing can be reserved, so the budget cannot be held: requests of
hard-budget organizations are refused (BudgetUnavailable, a 503 the SDKs retry) unless the
operator chose availability over the budget with GATEWAY_BUDGET_FAIL_OPEN=1.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError

from gateway_site.shared_state import STATE_ERRORS, shared_state, state_outage

from .pricing import COST_PLACES, Prices

logger = logging.getLogger(__name__)

UNITS_PER_USD = 10**10  # one unit is COST_PLACES (1e-10 USD)
_KEEP_SECONDS = 40 * 24 * 3600  # a month and then some
# Longer than any request can run (the default provider read timeout is 600 s between bytes).
RESERVATION_SECONDS = 30 * 60

# KEYS: spent, reserved total, reservation amounts (hash), deadlines (zset).
# ARGV: id, amount, limit, now, deadline, ttl. Returns {admitted, spent, reserved};
# spent -1 means "not loaded yet": the caller loads it from the ledger and tries again.
_RESERVE_LUA = """
local spent = redis.call('GET', KEYS[1])
if not spent then return {0, -1, 0} end
local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[4])
for _, id in ipairs(expired) do
  local units = tonumber(redis.call('HGET', KEYS[3], id) or '0')
  redis.call('HDEL', KEYS[3], id)
  redis.call('ZREM', KEYS[4], id)
  redis.call('DECRBY', KEYS[2], units)
end
local reserved = tonumber(redis.call('GET', KEYS[2]) or '0')
spent = tonumber(spent)
if spent + reserved + tonumber(ARGV[2]) > tonumber(ARGV[3]) then return {0, spent, reserved} end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
reserved = redis.call('INCRBY', KEYS[2], ARGV[2])
for i = 2, 4 do redis.call('EXPIRE', KEYS[i], ARGV[6]) end
return {1, spent, reserved}
"""
# KEYS: as above. ARGV: id (may be empty: spend only), cost, ttl.
_SETTLE_LUA = """
if ARGV[1] ~= '' then
  local units = redis.call('HGET', KEYS[3], ARGV[1])
  if units then
    redis.call('HDEL', KEYS[3], ARGV[1])
    redis.call('ZREM', KEYS[4], ARGV[1])
    redis.call('DECRBY', KEYS[2], units)
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('INCRBY', KEYS[1], ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return 1
"""

_ids = itertools.count()
_ID_PREFIX = os.urandom(6).hex()


@dataclass(frozen=True)
class Reservation:
    organization_id: int
    month: str
    id: str
    units: int


class OverBudget(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BudgetUnavailable(Exception):
    """The budget cannot be checked right now (shared state or the ledger is unreachable)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_UNAVAILABLE = ("This organization has a hard monthly budget, and the gateway cannot check it right now "
                "({why}). The request was not sent; retry shortly.")


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


def month_of(now: datetime) -> str:
    return now.strftime("%Y%m")


def _keys(organization_id: int, month: str) -> list[str]:
    tag = f"{{{organization_id}:{month}}}"  # one Redis Cluster slot for all four
    return [f"budget:{tag}:spent", f"budget:{tag}:reserved", f"budget:{tag}:amounts", f"budget:{tag}:deadlines"]


def budget_forget(organization_id: int, now: datetime) -> None:
    """Drop the cached spend (the budget or its mode changed): reloaded from the ledger on next use."""
    try:
        shared_state().delete_sync(_keys(organization_id, month_of(now))[0])
    except STATE_ERRORS as exc:
        state_outage.failed(exc, "dropping a cached budget spend")


def _month_spend_from_db(organization_id: int, month_start: datetime) -> int:
    from django.db import close_old_connections
    from django.db.models import Sum

    from .metering import ledger_flush_sync
    from .models import UsageRecord

    close_old_connections()
    ledger_flush_sync()  # rows still buffered are spend too
    # The month is still open, so it has not been rolled up or pruned: the ledger is the truth.
    total = UsageRecord.objects.filter(
        organization_id=organization_id, created_at__gte=month_start
    ).aggregate(total=Sum("cost"))["total"]
    return to_units(Decimal(total or 0))


def _local_reserve(memory, keys, rid: str, amount: int, limit: int, now: float) -> tuple[int, int, int]:
    spent = memory.get(keys[0])
    if spent is None:
        return 0, -1, 0
    amounts = memory.get(keys[2]) or {}
    deadlines = memory.get(keys[3]) or {}
    for old in [r for r, deadline in deadlines.items() if deadline <= now]:
        memory.incr(keys[1], -amounts.pop(old, 0))
        deadlines.pop(old)
    reserved = int(memory.get(keys[1]) or 0)
    if int(spent) + reserved + amount > limit:
        return 0, int(spent), reserved
    amounts[rid] = amount
    deadlines[rid] = now + RESERVATION_SECONDS
    memory.set(keys[2], amounts, _KEEP_SECONDS)
    memory.set(keys[3], deadlines, _KEEP_SECONDS)
    return 1, int(spent), memory.incr(keys[1], amount, _KEEP_SECONDS)


async def budget_reserve(
    *, organization_id: int, budget_usd: Decimal, amount: Decimal, now: datetime
) -> Reservation | None:
    """Reserve `amount` against the organization's hard monthly budget or raise OverBudget.

    If the budget cannot be checked (shared state unreachable, or the month's spend cannot be
    loaded) raise BudgetUnavailable, or with GATEWAY_BUDGET_FAIL_OPEN let the request through
    unreserved (None): the ledger still records its cost.
    """
    month = month_of(now)
    keys = _keys(organization_id, month)
    units, limit = to_units(amount), to_units(budget_usd)
    rid = f"{_ID_PREFIX}{next(_ids):x}"
    state = shared_state()
    try:
        for _ in range(2):
            clock = time.time()
            admitted, spent, reserved = await state.script(
                _RESERVE_LUA, keys, [rid, units, limit, clock, clock + RESERVATION_SECONDS, _KEEP_SECONDS],
                local=lambda memory: _local_reserve(memory, keys, rid, units, limit, clock),
            )
            if int(spent) >= 0:
                break
            month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            loaded = await sync_to_async(_month_spend_from_db, thread_sensitive=False)(organization_id, month_start)
            await state.set_if_absent(keys[0], str(loaded), ttl=_KEEP_SECONDS)
        else:
            logger.error("budget: the month's spend of org %s keeps disappearing from shared state "
                         "(is Redis evicting keys? use maxmemory-policy noeviction)", organization_id)
            return _unavailable("its spend could not be loaded")
    except STATE_ERRORS as exc:
        state_outage.failed(exc, "reserving budget")
        return _unavailable("shared state is unreachable")
    except DatabaseError as exc:
        logger.error("budget: the month's spend of org %s could not be read from the ledger: %s",
                     organization_id, type(exc).__name__)
        return _unavailable("the usage ledger is unreachable")
    state_outage.succeeded()
    if not int(admitted):
        if int(spent) >= limit:
            message = (f"This organization's monthly budget of ${budget_usd} is used up (${_usd(int(spent))} spent). "
                       "Requests are refused until the operator raises it or the month ends.")
        else:
            message = (f"This request could cost up to ${amount}, which does not fit in what is left of the "
                       f"organization's monthly budget of ${budget_usd} (${_usd(int(spent))} spent, "
                       f"${_usd(int(reserved))} reserved by requests in flight). Lower max_tokens, or ask the "
                       "operator to raise the budget.")
        raise OverBudget(message)
    return Reservation(organization_id=organization_id, month=month, id=rid, units=units)


def _unavailable(why: str) -> None:
    if settings.GATEWAY_BUDGET_FAIL_OPEN:
        return None  # the operator's choice: availability over the budget while it cannot be held
    raise BudgetUnavailable(_UNAVAILABLE.format(why=why))


def _local_settle(memory, keys, rid: str, cost: int) -> int:
    amounts = memory.get(keys[2]) or {}
    deadlines = memory.get(keys[3]) or {}
    if rid and rid in amounts:
        memory.incr(keys[1], -amounts.pop(rid))
        deadlines.pop(rid, None)
    if memory.get(keys[0]) is not None:
        memory.incr(keys[0], cost)
    return 1


async def budget_settle(*, organization_id: int, month: str, cost: Decimal, reservation: Reservation | None) -> None:
    """Release the reservation (if any) and add the request's real cost to the month's spend."""
    keys = _keys(organization_id, month)
    rid = reservation.id if reservation else ""
    cost_units = to_units(cost)
    try:
        await shared_state().script(
            _SETTLE_LUA, keys, [rid, cost_units, _KEEP_SECONDS],
            local=lambda memory: _local_settle(memory, keys, rid, cost_units),
        )
    except STATE_ERRORS as exc:
        # The reservation frees itself at its deadline; the spend is reloaded from the ledger
        # when the cached figure is next dropped.
        state_outage.failed(exc, "settling budget")


def budget_settle_sync(*, organization_id: int, month: str, cost: Decimal, reservation_id: str) -> None:
    """budget_settle for sync callers: a request lost in flight, settled by whoever found it."""
    keys = _keys(organization_id, month)
    cost_units = to_units(cost)
    try:
        shared_state().script_sync(
            _SETTLE_LUA, keys, [reservation_id, cost_units, _KEEP_SECONDS],
            local=lambda memory: _local_settle(memory, keys, reservation_id, cost_units),
        )
    except STATE_ERRORS as exc:
        state_outage.failed(exc, "settling budget")
