"""Admission: every rate limit and every budget of a request, checked and held in one step, and
settled in one step when the request is metered.

`admit` counts the request against each limit that applies (the key's and its organization's RPM
and TPM) and reserves its worst case against each hard budget (the key's and the organization's,
every period); soft budgets never refuse but are tracked too, so their thresholds can alert. All
must pass: if anything refuses, nothing is counted or reserved. `settle` corrects TPM to the
tokens really used, releases the reservations and adds the real cost to each budget's window,
and signals an alert evaluation when that crossed one of a budget's thresholds.

One round trip each way (issue 12): with Redis, admission is one Lua script (_ADMIT_LUA) over
every counter and reservation, which returns what the headers and refusals need; settlement is
one script (_SETTLE_LUA) sent in the same MULTI as the ledger row's push and the end of its
in-flight entry (billing.metering.usage_record). A window whose spend is not in shared state yet
is loaded from the ledger and handed to the script's retry, which stores it only if still absent.
In memory mode the same logic runs as one local function under the state's lock. Requests with
no limit and no budget never touch shared state.

Redis unreachable: limits are counted in this process (shared_state.process_fallback); a hard
budget cannot be held, so its requests get BudgetUnavailable (503) unless GATEWAY_BUDGET_FAIL_OPEN;
soft budgets are skipped.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable

from asgiref.sync import sync_to_async
from django.db import DatabaseError
from django.utils import timezone

from core.shared_state import STATE_ERRORS, process_fallback, shared_state, state_outage

from .budget import (
    RESERVATION_SECONDS, BudgetSlot, budget_spend_units, budget_state_keys, budget_unavailable,
    over_budget, to_units,
)
from .ratelimit import KEEP_MS, REQUESTS, TOKENS, RateLimit, RateLimitStatus, rate_limited, window_of
from .scopes import Scope

if TYPE_CHECKING:
    from orgs.selectors import KeyContext

    from .metering import UsageEvent

logger = logging.getLogger(__name__)

ADMITTED, REFUSED, NEEDS_LOAD = 1, 0, 2

# KEYS: one counter per limit, then four per budget (billing.budget.budget_state_keys), then
# optionally this process's in-flight hash (billing.inflight).
# ARGV: now, deadline, reservation id, #limits, #budgets; per limit: limit, amount, ttl ms; per
# budget: limit units (-1: soft, never refuses), units to reserve, ttl s, spend to store if absent
# ('' if not loaded yet); with the in-flight hash: request id, its lost row. Returns {status, used
# per limit..., (ok, spent, reserved) per budget...}; ok -1 means that budget's spend is not loaded
# (status NEEDS_LOAD). Nothing is counted, reserved or registered unless everything passes;
# expired reservations are freed on the way.
# The in-flight hash is not under the organization's hash tag: this script assumes one Redis (as
# the ledger's MULTI and the in-flight claim do already); on a Redis Cluster the hash would move
# under the tag, one per process and organization.
_ADMIT_LUA = """
local now, deadline, rid = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local nl, nb = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {1}
local refused, missing = false, false
for i = 1, nl do
  local a = 5 + (i - 1) * 3
  local used = tonumber(redis.call('GET', KEYS[i]) or '0') + tonumber(ARGV[a + 2])
  if used > tonumber(ARGV[a + 1]) then refused = true end
  out[#out + 1] = used
end
for j = 1, nb do
  local k = nl + (j - 1) * 4
  local a = 5 + nl * 3 + (j - 1) * 4
  local spent = redis.call('GET', KEYS[k + 1])
  if not spent and ARGV[a + 4] ~= '' then
    redis.call('SET', KEYS[k + 1], ARGV[a + 4], 'EX', ARGV[a + 3])
    spent = ARGV[a + 4]
  end
  if not spent then
    missing = true
    out[#out + 1] = -1; out[#out + 1] = 0; out[#out + 1] = 0
  else
    local expired = redis.call('ZRANGEBYSCORE', KEYS[k + 4], '-inf', now)
    for _, id in ipairs(expired) do
      local units = tonumber(redis.call('HGET', KEYS[k + 3], id) or '0')
      redis.call('HDEL', KEYS[k + 3], id)
      redis.call('ZREM', KEYS[k + 4], id)
      redis.call('DECRBY', KEYS[k + 2], units)
    end
    spent = tonumber(spent)
    local reserved = tonumber(redis.call('GET', KEYS[k + 2]) or '0')
    local limit = tonumber(ARGV[a + 1])
    local ok = 1
    if limit >= 0 and spent + reserved + tonumber(ARGV[a + 2]) > limit then ok = 0; refused = true end
    out[#out + 1] = ok; out[#out + 1] = spent; out[#out + 1] = reserved
  end
end
if missing then out[1] = 2; return out end
if refused then out[1] = 0; return out end
for i = 1, nl do
  local a = 5 + (i - 1) * 3
  redis.call('INCRBY', KEYS[i], ARGV[a + 2])
  redis.call('PEXPIRE', KEYS[i], ARGV[a + 3], 'NX')
end
for j = 1, nb do
  local k = nl + (j - 1) * 4
  local a = 5 + nl * 3 + (j - 1) * 4
  local units = tonumber(ARGV[a + 2])
  if units > 0 then
    redis.call('HSET', KEYS[k + 3], rid, units)
    redis.call('ZADD', KEYS[k + 4], deadline, rid)
    redis.call('INCRBY', KEYS[k + 2], units)
  end
  for i = 1, 4 do redis.call('EXPIRE', KEYS[k + i], ARGV[a + 3]) end
end
if #KEYS > nl + nb * 4 then
  local a = 5 + nl * 3 + nb * 4
  redis.call('HSET', KEYS[#KEYS], ARGV[a + 1], ARGV[a + 2])
end
return out
"""
# KEYS: one TPM counter per limit to correct, then four per budget. ARGV: reservation id (may be
# ''), #limits, #budgets; per limit: tokens to add (may be negative), ttl ms; per budget: cost
# units, ttl s. Returns each budget's spend after (-1: not loaded, left for the ledger to say).
_SETTLE_LUA = """
local rid = ARGV[1]
local nl, nb = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for i = 1, nl do
  local a = 3 + (i - 1) * 2
  redis.call('INCRBY', KEYS[i], ARGV[a + 1])
  redis.call('PEXPIRE', KEYS[i], ARGV[a + 2], 'NX')
end
for j = 1, nb do
  local k = nl + (j - 1) * 4
  local a = 3 + nl * 2 + (j - 1) * 2
  if rid ~= '' then
    local units = redis.call('HGET', KEYS[k + 3], rid)
    if units then
      redis.call('HDEL', KEYS[k + 3], rid)
      redis.call('ZREM', KEYS[k + 4], rid)
      redis.call('DECRBY', KEYS[k + 2], units)
    end
  end
  if redis.call('EXISTS', KEYS[k + 1]) == 1 then
    out[j] = redis.call('INCRBY', KEYS[k + 1], ARGV[a + 1])
    redis.call('EXPIRE', KEYS[k + 1], ARGV[a + 2])
  else
    out[j] = -1
  end
end
return out
"""

_ids = itertools.count()
_ID_PREFIX = os.urandom(6).hex()


@dataclass
class Admission:
    """What a request holds between admission and settlement."""

    limits: RateLimitStatus | None = None  # for the x-ratelimit-* headers
    tpm: tuple[RateLimit, ...] = ()  # TPM limits the prompt bound was counted against
    counted_tokens: int = 0
    slots: tuple[BudgetSlot, ...] = ()  # every budget of the request, settled with the real cost
    reservation_id: str = ""  # "" when nothing was reserved
    fallback: bool = False  # the limits were counted in this process's memory (Redis down)
    in_flight: bool = False  # registered in flight by the admission script (billing.inflight)

    @property
    def holds(self) -> bool:
        """Whether settling it has anything to do (TPM to correct, budgets to settle)."""
        return bool(self.tpm or self.slots)

    def lost_settle(self) -> dict | None:
        """What settles this request if its process dies before metering it (billing.inflight)."""
        return _lost_settle(self.slots, self.reservation_id, timezone.now())


def _lost_settle(slots, reservation_id: str, now: datetime) -> dict | None:
    if not slots:
        return None
    return {"rid": reservation_id, "budgets": [[slot.base, slot.ttl(now)] for slot in slots]}


NOTHING = Admission()


class _KeyPlan:
    """What admission derives from one cached key context, kept with it so the request path does
    not rebuild it per request (profiled, issue 12): its limits, each budget's slot for the
    window in force, and the limits' state keys for the current minute. Keyed by the context
    object: a key context reloaded after a change (billing.budget, orgs.selectors' versioned
    cache) is a new object and gets a new plan."""

    __slots__ = ("key", "limits", "slots", "window", "limit_keys")

    def __init__(self, key: "KeyContext") -> None:
        self.key = key
        self.limits = _limits(key)
        self.slots: list[BudgetSlot | None] = [None] * len(key.budgets)
        self.window = -1
        self.limit_keys: tuple[str, ...] = ()

    def slots_at(self, now: datetime) -> list[BudgetSlot]:
        slots = self.slots
        for i, slot in enumerate(slots):
            if slot is None or not slot.covers(now):
                slots[i] = BudgetSlot.of(self.key.budgets[i], now)
        return list(slots)

    def keys_for(self, window: int) -> tuple[str, ...]:
        if window != self.window:
            self.limit_keys, self.window = tuple(limit.key(window) for limit in self.limits), window
        return self.limit_keys


_key_plans: dict[int, _KeyPlan] = {}


def _key_plan(key: "KeyContext") -> _KeyPlan:
    plan = _key_plans.get(id(key))
    if plan is None or plan.key is not key:
        if len(_key_plans) >= 4096:  # contexts come and go with the key cache: forget old ones
            _key_plans.clear()
        plan = _key_plans[id(key)] = _KeyPlan(key)
    return plan


def _limits(key: "KeyContext") -> list[RateLimit]:
    """Every limit on this key's requests, RPM before TPM (a refusal names the first that fails)."""
    key_scope, org_scope = Scope.key(key.key_id, key.organization_id), Scope.organization(key.organization_id)
    limits = []
    for kind, key_limit, org_limit in ((REQUESTS, key.rpm_limit, key.org_rpm_limit),
                                       (TOKENS, key.tpm_limit, key.org_tpm_limit)):
        if key_limit:
            limits.append(RateLimit(key_scope, kind, key_limit))
        if org_limit:
            limits.append(RateLimit(org_scope, kind, org_limit))
    return limits


@dataclass
class _Plan:
    charges: list[tuple[RateLimit, int]]  # each limit and what this request adds to it
    slots: list[BudgetSlot]
    units: int  # the worst case, in units, reserved against each hard budget
    window: int
    reservation_id: str
    now: datetime
    loaded: dict[str, int] = field(default_factory=dict)  # slot base -> spend from the ledger
    in_flight: tuple[str, str, bytes] | None = None  # (in-flight hash, request id, lost row)
    limit_keys: tuple[str, ...] | None = None  # the charges' keys in this window, if known

    def keys(self) -> tuple[str, ...]:
        keys = self.limit_keys
        if keys is None:
            keys = tuple(limit.key(self.window) for limit, _ in self.charges)
        for slot in self.slots:
            keys += slot.state_keys
        if self.in_flight:
            keys += (self.in_flight[0],)
        return keys

    def args(self, clock: float) -> list:
        args: list = [clock, clock + RESERVATION_SECONDS, self.reservation_id, len(self.charges), len(self.slots)]
        for limit, amount in self.charges:
            args.extend([limit.limit, amount, KEEP_MS])
        for slot in self.slots:
            hard = slot.rule.hard
            args.extend([to_units(slot.rule.amount_usd) if hard else -1, self.units if hard else 0,
                         slot.ttl(self.now), self.loaded.get(slot.base, "")])
        if self.in_flight:
            args.extend(self.in_flight[1:])
        return args


def _admit_local(memory, plan: _Plan, clock: float) -> list[int]:
    """_ADMIT_LUA on process memory (the embedded default, and per-process limits while Redis is
    down), called under the memory's lock."""
    keys, args = plan.keys(), plan.args(clock)
    nl, nb = len(plan.charges), len(plan.slots)
    out, refused, missing = [ADMITTED], False, False
    for i, (limit, amount) in enumerate(plan.charges):
        used = int(memory.get(keys[i]) or 0) + amount
        refused = refused or used > limit.limit
        out.append(used)
    for j in range(nb):
        spent_key, reserved_key, amounts_key, deadlines_key = keys[nl + 4 * j: nl + 4 * j + 4]
        limit, _, ttl, init = args[5 + 3 * nl + 4 * j: 5 + 3 * nl + 4 * j + 4]
        spent = memory.get(spent_key)
        if spent is None and init != "":
            memory.set(spent_key, int(init), ttl)
            spent = init
        if spent is None:
            missing = True
            out.extend([-1, 0, 0])
            continue
        amounts = memory.get(amounts_key) or {}
        deadlines = memory.get(deadlines_key) or {}
        for old in [r for r, deadline in deadlines.items() if deadline <= clock]:
            memory.incr(reserved_key, -amounts.pop(old, 0))
            deadlines.pop(old)
        reserved = int(memory.get(reserved_key) or 0)
        ok = 0 if limit >= 0 and int(spent) + reserved + args[6 + 3 * nl + 4 * j] > limit else 1
        refused = refused or not ok
        out.extend([ok, int(spent), reserved])
    if missing:
        out[0] = NEEDS_LOAD
        return out
    if refused:
        out[0] = REFUSED
        return out
    for i, (_, amount) in enumerate(plan.charges):
        memory.incr(keys[i], amount, KEEP_MS / 1000)
    for j, slot in enumerate(plan.slots):
        spent_key, reserved_key, amounts_key, deadlines_key = keys[nl + 4 * j: nl + 4 * j + 4]
        units = plan.units if slot.rule.hard else 0
        if units > 0:
            ttl = slot.ttl(plan.now)
            amounts = memory.get(amounts_key) or {}
            deadlines = memory.get(deadlines_key) or {}
            amounts[plan.reservation_id] = units
            deadlines[plan.reservation_id] = clock + RESERVATION_SECONDS
            memory.set(amounts_key, amounts, ttl)
            memory.set(deadlines_key, deadlines, ttl)
            memory.incr(reserved_key, units, ttl)
    return out


async def admit(
    key: "KeyContext", *, started_at: datetime, prompt_tokens: int, worst_case: Decimal, budgets: bool = True,
    in_flight: "tuple[str, Callable[[dict | None], dict]] | None" = None,
) -> Admission:
    """Count the request against every limit and reserve it against every budget of its key and
    organization, or raise: RateLimited (checked first), OverBudget, BudgetUnavailable.

    `prompt_tokens` is an upper bound on the request's input (counted against TPM until
    settle), `worst_case` the most it can cost (reserved against hard budgets). `budgets=False`
    for calls that cost nothing (count_tokens): rate limits only. `in_flight`: (request id, a
    function from what settles it if lost to its lost row, billing.inflight.lost_row): with Redis
    the script registers the admitted request in flight in the same round trip
    (Admission.in_flight says it did).
    """
    key_plan = _key_plan(key)
    limits = key_plan.limits
    slots = key_plan.slots_at(started_at) if budgets and key.budgets else []
    if not limits and not slots:
        return NOTHING
    clock = time.time()
    window, reset_at = window_of(clock)
    charges = [(limit, 1 if limit.kind == REQUESTS else prompt_tokens) for limit in limits]
    units = to_units(worst_case)
    rid = f"{_ID_PREFIX}{next(_ids):x}" if any(slot.rule.hard for slot in slots) else ""
    plan = _Plan(charges, slots, units, window, rid, started_at, limit_keys=key_plan.keys_for(window))
    fallback = False
    state = shared_state()
    if in_flight is not None and state.uses_redis:
        from .inflight import inflight_hash, inflight_line

        hash_key = await inflight_hash()
        if hash_key is not None:
            request_id, lost_row = in_flight
            plan.in_flight = (hash_key, request_id, inflight_line(lost_row(_lost_settle(slots, rid, started_at))))
    try:
        for _ in range(3):
            result = await state.script(_ADMIT_LUA, plan.keys(), plan.args(clock),
                                        local=lambda memory: _admit_local(memory, plan, clock))
            result = [int(value) for value in result]
            if result[0] != NEEDS_LOAD:
                break
            await _load(plan, result)
        else:
            logger.error("admission: budget spend keeps disappearing from shared state "
                         "(is Redis evicting keys? use maxmemory-policy noeviction)")
            _drop_missing(plan, result, "its spend could not be loaded")
            result = [int(v) for v in await state.script(_ADMIT_LUA, plan.keys(), plan.args(clock),
                                                         local=lambda memory: _admit_local(memory, plan, clock))]
        state_outage.succeeded()
    except STATE_ERRORS as exc:
        state_outage.failed(exc, "admitting a request (rate limits, budgets)")
        for slot in plan.slots:
            if slot.rule.hard:
                budget_unavailable(slot.rule, "shared state is unreachable")
        # Budgets cannot be held: the limits are counted in this process; slots are still settled
        # (to shared state, if it is back by then) with nothing reserved.
        fallback, kept = True, plan.slots
        plan.slots, plan.reservation_id, plan.in_flight = [], "", None
        with process_fallback._lock:
            result = _admit_local(process_fallback, plan, clock)
        plan.slots = kept
        result = result + [1, 0, 0] * len(kept)
    return _outcome(plan, result, reset_at=reset_at, prompt_tokens=prompt_tokens, worst_case=worst_case,
                    fallback=fallback)


async def _load(plan: _Plan, result: list[int]) -> None:
    """Read the spend of the windows the script found missing from the ledger (the retry stores
    them if still absent). A ledger that cannot be read drops soft budgets from this request and
    refuses hard ones (unless fail-open)."""
    missing = [slot for j, slot in enumerate(plan.slots) if result[1 + len(plan.charges) + 3 * j] == -1]
    try:
        plan.loaded.update(await sync_to_async(budget_spend_units, thread_sensitive=False)(missing))
    except DatabaseError as exc:
        logger.error("admission: period spend could not be read from the ledger: %s", type(exc).__name__)
        _drop_missing(plan, result, "the usage ledger is unreachable")


def _drop_missing(plan: _Plan, result: list[int], why: str) -> None:
    kept = []
    for j, slot in enumerate(plan.slots):
        if result[1 + len(plan.charges) + 3 * j] == -1 and slot.base not in plan.loaded:
            if slot.rule.hard:
                budget_unavailable(slot.rule, why)  # raises unless fail-open
            continue
        kept.append(slot)
    plan.slots = kept


def _outcome(plan: _Plan, result: list[int], *, reset_at: float, prompt_tokens: int, worst_case: Decimal,
             fallback: bool) -> Admission:
    from .alerts import budget_alert_signal

    used = {limit: result[1 + i] for i, (limit, _) in enumerate(plan.charges)}
    status = RateLimitStatus.tightest(used, reset_at) if used else None
    if result[0] == REFUSED:
        for limit, _ in plan.charges:
            if used[limit] > limit.limit:
                raise rate_limited(limit, used=used[limit], prompt_tokens=prompt_tokens, status=status)
        refusal = None
        for j, slot in enumerate(plan.slots):
            ok, spent, reserved = result[1 + len(plan.charges) + 3 * j: 4 + len(plan.charges) + 3 * j]
            if ok == 0:
                budget_alert_signal(budget_id=slot.rule.id, refused=True)  # counts as crossing 100%
                refusal = refusal or over_budget(slot.rule, spent=spent, reserved=reserved, amount=worst_case)
        raise refusal
    tpm = tuple(limit for limit, _ in plan.charges if limit.kind == TOKENS)
    return Admission(
        limits=status, tpm=tpm, counted_tokens=prompt_tokens if tpm else 0, slots=tuple(plan.slots),
        reservation_id=plan.reservation_id if any(s.rule.hard for s in plan.slots) else "", fallback=fallback,
        in_flight=plan.in_flight is not None,
    )


# --- settlement ---------------------------------------------------------------------------------


def _settle_call(admission: Admission, cost_units: int, tokens: int, now: datetime) -> tuple[list, list, list]:
    """(keys, args, the TPM corrections kept in process memory) for _SETTLE_LUA."""
    corrections = []
    difference = tokens - admission.counted_tokens
    if difference and admission.tpm:
        window, _ = window_of(time.time())
        corrections = [(limit.key(window), difference) for limit in admission.tpm]
    shared = [] if admission.fallback else corrections
    keys = [key for key, _ in shared]
    args: list = [admission.reservation_id, len(shared), len(admission.slots)]
    for _, amount in shared:
        args.extend([amount, KEEP_MS])
    for slot in admission.slots:
        keys.extend(slot.keys())
        args.extend([cost_units, slot.ttl(now)])
    return keys, args, corrections if admission.fallback else []


def _settle_local(memory, keys: list[str], args: list) -> list[int]:
    rid, nl, nb = args[0], args[1], args[2]
    for i in range(nl):
        memory.incr(keys[i], args[3 + 2 * i], args[4 + 2 * i] / 1000)
    out = []
    for j in range(nb):
        spent_key, reserved_key, amounts_key, deadlines_key = keys[nl + 4 * j: nl + 4 * j + 4]
        cost = args[3 + 2 * nl + 2 * j]
        amounts = memory.get(amounts_key) or {}
        if rid and rid in amounts:
            memory.incr(reserved_key, -amounts.pop(rid))
            (memory.get(deadlines_key) or {}).pop(rid, None)
        out.append(memory.incr(spent_key, cost) if memory.get(spent_key) is not None else -1)
    return out


async def settle(admission: Admission | None, *, cost: Decimal, tokens: int,
                 event: "UsageEvent | None" = None) -> None:
    """Settle what `admission` holds with the request's real `cost` and `tokens`, and (given
    `event`) push its ledger row in the same round trip. Never raises for a shared-state outage:
    a reservation left behind frees itself at its deadline."""
    from .metering import usage_record_settling

    admission = admission or NOTHING
    now = timezone.now()
    cost_units = to_units(cost)
    try:
        keys, args, in_process = _settle_call(admission, cost_units, tokens, now)
    except Exception:  # whatever went wrong here, the ledger row below must still be pushed
        logger.exception("admission: settle could not be prepared")
        keys, args, in_process = [], [], []
    for key, amount in in_process:
        process_fallback.incr(key, amount, ttl=KEEP_MS / 1000)
    script = (_SETTLE_LUA, keys, args) if keys else None
    result = None
    if event is not None:
        _, result = await usage_record_settling(event, script=script)
    if script is not None and result is None:
        try:
            result = await shared_state().script(_SETTLE_LUA, keys, args,
                                                 local=lambda memory: _settle_local(memory, keys, args))
        except STATE_ERRORS as exc:
            state_outage.failed(exc, "settling rate limits and budgets")
            return
    if result is not None and cost_units > 0:
        _thresholds_signal(admission.slots, [int(v) for v in result], cost_units)


def _thresholds_signal(slots, spent_after: list[int], cost_units: int) -> None:
    """Signal an alert evaluation for each budget whose spend this settle took across one of its
    thresholds (the periodic scan catches the rest: windows not loaded, forecasts)."""
    from .alerts import budget_alert_signal

    for slot, after in zip(slots, spent_after):
        if after < 0:
            continue
        before, amount = after - cost_units, to_units(slot.rule.amount_usd)
        if any(before * 100 < amount * t <= after * 100 for t in slot.rule.thresholds):
            budget_alert_signal(budget_id=slot.rule.id, refused=False)


def admission_settle_lost(settle: dict[str, Any], cost: Decimal) -> None:
    """Settle the budgets of a request lost in flight (billing.inflight), found by whoever
    noticed its process dead: its reservation released, its worst case added as spend."""
    keys: list[str] = []
    args: list = [settle.get("rid") or "", 0, len(settle.get("budgets") or [])]
    for base, ttl in settle.get("budgets") or []:
        keys.extend(budget_state_keys(base))
        args.extend([to_units(cost), ttl])
    if not keys:
        return
    try:
        shared_state().script_sync(_SETTLE_LUA, keys, args, local=lambda memory: _settle_local(memory, keys, args))
    except STATE_ERRORS as exc:
        state_outage.failed(exc, "settling budget")

