"""The bridge from a finished proxy call to the billing ledger (billing.metering).

Metering runs as a detached task: it must happen even when the client's request task is being
cancelled (a disconnect mid-stream), and it must never hold up the response.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING

import orjson

from billing.admission import settle
from billing.inflight import inflight_begin, lost_row
from billing.metering import UsageEvent, usage_record_local
from billing.pricing import cost_compute, prices_from_model

from .observe import call_observe
from .priced_options import web_searches_billed
from .unauthenticated import unauthenticated_count

if TYPE_CHECKING:
    from .proxy import ProxyCall

logger = logging.getLogger(__name__)
_pending: set[asyncio.Task] = set()


def _billed_usage(call: "ProxyCall") -> dict | None:
    """The provider's usage plus the searches it bills without reporting them (OpenAI-format search)."""
    if call.usage is None:
        return None
    searches = web_searches_billed(call.body, call.route, call.client_format)
    if not searches:
        return call.usage
    return {**call.usage, "web_search_requests": call.usage.get("web_search_requests", 0) + searches}


def _event(call: "ProxyCall") -> UsageEvent:
    usage = _billed_usage(call) or {}
    key = call.key
    store = bool(key and key.store_content)
    return UsageEvent(
        request_id=call.request_id,
        started_at=call.started_at,
        endpoint=call.endpoint or call.client_format,
        organization_id=key.organization_id if key else None,
        api_key_id=key.key_id if key else None,
        public_model=call.model.public_id if call.model else call.requested_model[:100],
        model_id=call.model.id if call.model else None,
        provider=call.route.provider.name if call.route else "",
        upstream_model=call.route.upstream_model if call.route else "",
        route_id=call.route.id if call.route else None,
        streamed=call.streamed,
        status=call.status,
        error_type=call.error_type,
        prompt_tokens=usage.get("prompt_tokens", 0),
        completion_tokens=usage.get("completion_tokens", 0),
        cache_read_tokens=usage.get("cache_read_tokens", 0),
        cache_write_tokens=usage.get("cache_write_tokens", 0),
        web_search_requests=usage.get("web_search_requests", 0),
        tokens_estimated=call.tokens_estimated,
        latency_ms=call.elapsed_ms(),
        ttft_ms=call.ttft_ms,
        client_ip=call.client_ip,
        client_disconnected=call.client_disconnected,
        prices=prices_from_model(call.model) if call.model else None,
        prompt_text=_prompt_text(call) if store else None,
        completion_text=call.completion_text if store else None,
        in_flight=call.in_flight,
    )


def _prompt_text(call: "ProxyCall") -> str | None:
    if not call.body:
        return None
    # The prompt's fields in every operation's body: chat and messages, Responses (instructions, input).
    keys = ("system", "messages", "instructions", "input")
    return orjson.dumps({k: call.body.get(k) for k in keys if k in call.body}).decode()


def call_cost(call: "ProxyCall") -> Decimal | None:
    usage = _billed_usage(call)
    if call.model is None or usage is None:
        return None
    prices = prices_from_model(call.model)
    if prices is None:
        return None
    try:
        return cost_compute(**usage, prices=prices)
    except ValueError:
        # Inconsistent provider usage must not cost the request its ledger row or its budget
        # settle; usage_record prices the row itself and logs the problem.
        logger.error("usage could not be priced request_id=%s usage=%s", call.request_id, call.usage)
        return None


def call_lost_row(call: "ProxyCall", lost_settle: dict | None) -> dict:
    """The row the request leaves if this process dies before metering it: charged
    `call.worst_case`, and settled (`lost_settle`) against its budgets like any metered request."""
    prompt_tokens, output_tokens = call.worst_tokens
    event = replace(_event(call), prompt_tokens=prompt_tokens, completion_tokens=output_tokens)
    return lost_row(event, call.worst_case, lost_settle)


async def call_inflight_begin(call: "ProxyCall") -> None:
    """Register the admitted request in flight (billing.inflight), unless its admission did."""
    if call.admission is not None and call.admission.in_flight:
        call.in_flight = "redis"  # in the admission script's round trip
        return
    lost_settle = call.admission.lost_settle() if call.admission is not None else None
    try:
        call.in_flight = await inflight_begin(call_lost_row(call, lost_settle))
    except OSError as exc:  # the request is still metered when it ends; only crash cover is missing
        logger.error("request %s not registered in flight: %s", call.request_id, exc)


def call_meter(call: "ProxyCall") -> None:
    if call.metered:
        return  # exactly one ledger row (and one budget settle) per request, whichever path ends it
    call.metered = True
    if call.key is None:
        # Refused before a key was accepted: no organization to bill, and a flood of these must
        # not fill the ledger. Counted for metrics and a rate-limited log line instead.
        unauthenticated_count(call.error_type or "client_disconnected")
        call_observe(call, None, None)
        return
    event = _event(call)
    cost = call_cost(call)  # priced once, for the metrics line and the settle
    call_observe(call, event, cost)  # metrics and the request's log line
    loop = asyncio.get_running_loop()
    try:
        # In process memory (the embedded default): journaled before the response goes out.
        recorded = usage_record_local(event) is not None
    except Exception:
        logger.exception("metering failed request_id=%s", call.request_id)  # never silent, never a 500
        recorded = True
    # Limits and budgets settled with the real usage; the row pushed with them when it goes to
    # Redis (one round trip). Every metered request of a scope with budgets counts toward each
    # window's spend, whatever the mode, so a soft budget made hard later starts from the truth.
    usage = call.usage or {}
    tasks = []
    if not recorded or (call.admission is not None and call.admission.holds):
        tasks.append(loop.create_task(settle(
            call.admission, cost=cost or Decimal(0),
            tokens=usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0),
            event=None if recorded else event,
        )))
    for task in tasks:
        _pending.add(task)
        task.add_done_callback(_metered)


def _metered(task: asyncio.Task) -> None:
    _pending.discard(task)
    if not task.cancelled() and task.exception() is not None:
        # Never silent: a lost ledger row is a billing bug the operator must see.
        logger.error("metering task failed", exc_info=task.exception())


async def metering_drain() -> None:
    """Wait for every metering task this process started (graceful shutdown, tests)."""
    while _pending:
        await asyncio.gather(*list(_pending), return_exceptions=True)
