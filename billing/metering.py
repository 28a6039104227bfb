"""Metering: one ledger row per request, recorded off the hot path and never lost.

`usage_record` prices the request and hands the row to a buffer; it never touches the database.
- With REDIS_URL the buffer is a Redis list, so it survives a gateway restart. Drainers (the
  `ledger_drain` Celery task and a background task in every gateway process) claim batches with a
  Lua script that moves them to a per-claim "in flight" list, insert them, then drop the claim. A
  failed insert puts the rows back; a drainer that died mid-batch has its claim re-queued after
  STALE_CLAIM_SECONDS. The insert ignores conflicts on the unique request_id, so rows that do get
  replayed are never billed twice.
- Without Redis (the embedded single-process default) it is an in-process deque flushed every
  FLUSH_SECONDS or FLUSH_ROWS rows, and at shutdown (the ASGI lifespan hook in gateway_site.asgi,
  plus an atexit fallback). Every row is first appended to this process's write-ahead journal
  (billing.journal), so a SIGKILL loses none: the next process to start replays it.
Requests admitted but not yet metered are registered too (billing.inflight), so a process that
dies mid-request still leaves a row for each, flagged lost in flight.
If Redis is unreachable, rows fall back to the in-process buffer rather than being dropped.
"""

from __future__ import annotations

import asyncio
import atexit
import ipaddress
import logging
import os
import threading
import time
import uuid
import weakref
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DataError, IntegrityError, close_old_connections, connection, connections, transaction

from core.shared_state import STATE_ERRORS, shared_state, state_outage

from .pricing import Prices, cost_compute

logger = logging.getLogger(__name__)
UTC = timezone.utc

LEDGER_KEY = "gw:billing:ledger"
# Rows the database refused outright (never dropped; see _dead_letter).
DEAD_LETTER_KEY = "gw:billing:ledger:dead"
CLAIMS_KEY = "gw:billing:ledger:claims"
INFLIGHT_PREFIX = "gw:billing:ledger:inflight:"
BATCH_ROWS = 500
FLUSH_SECONDS = 0.5
FLUSH_ROWS = 200
STALE_CLAIM_SECONDS = 300
# After a Redis error the hot path writes to memory for this long instead of waiting on Redis again.
_REDIS_RETRY_SECONDS = 5.0

# Atomic so that two drainers never take the same rows and a crash mid-batch loses none.
_CLAIM_LUA = """
local items = redis.call('LPOP', KEYS[1], ARGV[1])
if not items then return {} end
redis.call('RPUSH', KEYS[2], unpack(items))
redis.call('ZADD', KEYS[3], ARGV[2], KEYS[2])
return items
"""
_REQUEUE_LUA = """
local items = redis.call('LRANGE', KEYS[2], 0, -1)
for i = #items, 1, -1 do redis.call('LPUSH', KEYS[1], items[i]) end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], KEYS[2])
return #items
"""


@dataclass(slots=True)
class UsageEvent:
    request_id: str
    started_at: datetime
    endpoint: str  # "openai" | "anthropic" | "count_tokens" | "embeddings" (UsageRecord.Endpoint)
    organization_id: int | None  # None only when authentication failed
    api_key_id: int | None
    public_model: str  # what the client asked for, "" if absent
    model_id: int | None
    provider: str
    upstream_model: str
    route_id: int | None
    streamed: bool
    status: int
    error_type: str  # "" on success
    prompt_tokens: int = 0  # total input, cached included (OpenAI convention)
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    web_search_requests: int = 0  # billed per search at prices.web_search_per_1k, included in the cost
    tokens_estimated: bool = False
    latency_ms: int = 0
    ttft_ms: int | None = None
    client_ip: str | None = None
    client_disconnected: bool = False
    prices: Prices | None = None
    prompt_text: str | None = None  # only when the organization's store_content is on
    completion_text: str | None = None
    lost_in_flight: bool = False
    in_flight: str = ""  # where the request was registered in flight ("redis", "journal" or "")


# Rows not yet in the database (memory mode, or Redis unreachable). deque appends are thread-safe.
_buffer: deque[dict[str, Any]] = deque()
dead_letters: deque[dict[str, Any]] = deque(maxlen=100_000)
# Held while a batch is between its buffer and a committed insert, so ledger_flush_sync() returns
# only after this process's in-flight rows are in the database.
_write_lock = threading.Lock()
# Drains from async code run on one dedicated thread: one database connection per process for
# the ledger, however many event loops record into it.
_drain_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="billing-ledger")
_flushers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop -> Task
_wakeups: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop -> asyncio.Event
_redis_down_until = 0.0
_last_stale_check = 0.0
_journals: dict[int, Any] = {}  # pid -> this process's Journal (a forked child opens its own)


def _journal(*, create: bool = True):
    from .journal import Journal, journal_dir

    journal = _journals.get(os.getpid())
    if journal is None and create:
        journal = _journals[os.getpid()] = Journal(journal_dir())
    return journal


def _buffer_put(row: dict[str, Any]) -> None:
    """Journal the row, then buffer it: from here on a crash cannot lose it."""
    try:
        journal = _journal()
    except OSError as exc:  # an unwritable journal directory must not cost the row
        logger.error("ledger journal unavailable (%s); row %s is in memory only", exc, row["request_id"])
        _buffer.append(row)
        return
    with journal.lock:
        journal.row(row["request_id"], _encode(row) + b"\n")
        _buffer.append(row)


def _row(event: UsageEvent, cost: Decimal) -> dict[str, Any]:
    if event.started_at.tzinfo is None:
        raise ValueError("UsageEvent.started_at must be an aware (UTC) datetime")
    prices = event.prices
    return {
        "request_id": event.request_id,
        "created_at": event.started_at,
        "endpoint": event.endpoint,
        "organization_id": event.organization_id,
        "api_key_id": event.api_key_id,
        "requested_model": event.public_model,
        "model_id": event.model_id,
        "provider": event.provider,
        "upstream_model": event.upstream_model,
        "route_id": event.route_id,
        "streamed": event.streamed,
        "status": event.status,
        "error_type": event.error_type,
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.completion_tokens,
        "cache_read_tokens": event.cache_read_tokens,
        "cache_write_tokens": event.cache_write_tokens,
        "tokens_estimated": event.tokens_estimated,
        "cost": cost,
        "input_price": prices.input if prices else None,
        "output_price": prices.output if prices else None,
        "cache_read_price": prices.cache_read if prices else None,
        "cache_write_price": prices.cache_write if prices else None,
        "latency_ms": event.latency_ms,
        "ttft_ms": event.ttft_ms,
        "client_ip": event.client_ip,
        "client_disconnected": event.client_disconnected,
        "prompt_text": event.prompt_text,
        "completion_text": event.completion_text,
        "lost_in_flight": event.lost_in_flight,
    }


def _cost(event: UsageEvent) -> Decimal:
    return cost_compute(
        prompt_tokens=event.prompt_tokens,
        completion_tokens=event.completion_tokens,
        cache_read_tokens=event.cache_read_tokens,
        cache_write_tokens=event.cache_write_tokens,
        web_search_requests=event.web_search_requests,
        prices=event.prices,
    )


def _json_default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)  # as a string: a float would round the money
    raise TypeError(f"cannot encode {type(value).__name__} in a ledger row")


def _encode(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, default=_json_default)


def _redis_usable() -> bool:
    return bool(settings.REDIS_URL) and time.monotonic() >= _redis_down_until


def _redis_failed(exc: BaseException) -> None:
    global _redis_down_until
    _redis_down_until = time.monotonic() + _REDIS_RETRY_SECONDS
    state_outage.failed(exc, "buffering a usage row")


def _async_redis():
    return shared_state().redis_async()


def _sync_redis():
    """The shared sync client, with the ledger's claim and requeue scripts registered on it once."""
    client = shared_state().redis_sync()
    if not hasattr(client, "_ledger_claim"):
        client._ledger_claim = client.register_script(_CLAIM_LUA)
        client._ledger_requeue = client.register_script(_REQUEUE_LUA)
    return client


async def usage_record(event: UsageEvent) -> Decimal:
    """Price the request and buffer its ledger row; returns the cost. Never waits on the database."""
    cost, _ = await usage_record_settling(event)
    return cost


async def usage_record_settling(event: UsageEvent, *, script: tuple[str, list, list] | None = None) -> tuple[Decimal, Any]:
    """usage_record, plus a shared-state script (billing.admission's settle: `(lua, keys, args)`)
    in the same MULTI as the row's push and the end of its in-flight entry: one round trip,
    applied all together or not at all. Returns (cost, the script's result); the result is None
    when the script did not run (Redis unusable, or it had forgotten the script): run it alone."""
    cost = _cost(event)
    row = _row(event, cost)
    result = None
    if _redis_usable():
        import redis

        try:
            state = shared_state()
            commands = [state.script_command(*script)] if script is not None else []
            commands.append(("RPUSH", LEDGER_KEY, _encode(row)))
            if event.in_flight == "redis":
                from .inflight import OPEN_PREFIX, process_id

                # The row and the end of the in-flight entry together: never both, never neither.
                commands.append(("HDEL", OPEN_PREFIX + process_id(), event.request_id))
            replies = await state.transaction(commands)
            if script is not None and not isinstance(replies[0], Exception):
                result = replies[0]
            for reply in replies[1 if script is not None else 0:]:
                if isinstance(reply, Exception):
                    raise reply
            if event.in_flight == "journal":
                journal = _journal()
                with journal.lock:
                    journal.end(event.request_id)
        except (redis.RedisError, OSError, asyncio.TimeoutError) as exc:
            _redis_failed(exc)
            _buffer_put(row)
            result = None
    else:
        _buffer_put(row)
    _flusher_ensure()
    return cost, result


def usage_record_local(event: UsageEvent) -> Decimal | None:
    """Journal and buffer the row right now when it goes to process memory (so a response the
    client has is never lost to a crash a moment later); None when it goes to Redis (then
    `await usage_record(event)`)."""
    if _redis_usable():
        return None
    cost = _cost(event)
    _buffer_put(_row(event, cost))
    _flusher_ensure()
    return cost


def usage_record_sync(event: UsageEvent) -> Decimal:
    """usage_record for sync callers. Rows reach the database at the next flush or drain."""
    cost = _cost(event)
    row = _row(event, cost)
    if _redis_usable():
        import redis

        try:
            _sync_redis().rpush(LEDGER_KEY, _encode(row))
            return cost
        except (redis.RedisError, OSError) as exc:
            _redis_failed(exc)
    _buffer_put(row)
    return cost


# --- the background flusher (one asyncio task per event loop, started on first use) -----------


def _flusher_ensure() -> None:
    loop = asyncio.get_running_loop()
    task = _flushers.get(loop)
    if task is None or task.done():
        _wakeups[loop] = asyncio.Event()
        _flushers[loop] = loop.create_task(_flusher_run(_wakeups[loop]), name="billing-ledger-flusher")
    elif len(_buffer) >= FLUSH_ROWS:
        _wakeups[loop].set()


async def _flusher_run(wakeup: asyncio.Event) -> None:
    from .inflight import inflight_heartbeat

    failures = 0
    while True:
        try:
            await asyncio.wait_for(wakeup.wait(), FLUSH_SECONDS)
        except asyncio.TimeoutError:
            pass
        wakeup.clear()
        try:
            # On the event loop, not the drain thread: a slow database must not make this
            # process look dead to its peers.
            await inflight_heartbeat()
            await sync_to_async(_drain, thread_sensitive=False, executor=_drain_executor)(
                max_batches=20, recover=True, redis=settings.GATEWAY_LEDGER_DRAIN == "process")
            failures = 0
        except Exception:
            # Rows stay buffered (or go back to Redis); back off so a database outage isn't a log flood.
            failures += 1
            logger.exception("ledger: flush failed (attempt %d); rows kept for the next attempt", failures)
            await asyncio.sleep(min(30.0, FLUSH_SECONDS * 2**failures))


# --- draining into the database -------------------------------------------------------------


def _drain(*, max_batches: int | None = None, recover: bool = False, redis: bool = True) -> int:
    """Write buffered rows (memory, then Redis) to the database. Returns rows handled.
    `recover`: also write what dead processes left (their journals, their requests in flight).
    `redis=False`: leave the Redis list to the Celery task (GATEWAY_LEDGER_DRAIN=celery)."""
    if not connection.in_atomic_block:
        close_old_connections()  # a flusher thread must not keep reusing a connection that died
    handled = 0
    error: Exception | None = None
    if recover:
        from .inflight import inflight_recover_sync

        try:
            handled += inflight_recover_sync()
        except Exception as exc:
            error = exc
    with _write_lock:
        try:
            handled += _drain_memory(max_batches)
        except Exception as exc:
            error = exc
        if settings.REDIS_URL and redis:
            try:
                handled += _drain_redis(max_batches)
                state_outage.succeeded()
            except STATE_ERRORS as exc:
                # Rows queued in Redis wait there (or in their claim) until it is back; the
                # outage is logged once, not as a traceback per flush.
                state_outage.failed(exc, "draining the ledger")
            except Exception as exc:
                error = error or exc
    if error is not None:
        raise error
    return handled


def _drain_memory(max_batches: int | None) -> int:
    journal = _journal(create=False)
    if journal is not None:
        journal.rotate_if_big(_buffer)
    handled = batches = 0
    while _buffer and (max_batches is None or batches < max_batches):
        batch = []
        while _buffer and len(batch) < BATCH_ROWS:
            batch.append(_buffer.popleft())
        try:
            _insert(batch)
        except Exception:
            _buffer.extendleft(reversed(batch))
            raise
        handled += len(batch)
        batches += 1
        if journal is not None:
            journal.committed(len(batch), _buffer)
    if journal is not None:
        journal.committed(0, _buffer)
    return handled


def _drain_redis(max_batches: int | None) -> int:
    client = _sync_redis()
    _requeue_stale(client)
    handled = batches = 0
    while max_batches is None or batches < max_batches:
        inflight = INFLIGHT_PREFIX + uuid.uuid4().hex
        keys = [LEDGER_KEY, inflight, CLAIMS_KEY]
        items = client._ledger_claim(keys=keys, args=[BATCH_ROWS, time.time()])
        if not items:
            break
        try:
            _insert([orjson.loads(item) for item in items])
        except Exception:
            client._ledger_requeue(keys=keys)
            raise
        with client.pipeline(transaction=True) as pipe:
            pipe.delete(inflight)
            pipe.zrem(CLAIMS_KEY, inflight)
            pipe.execute()
        handled += len(items)
        batches += 1
    return handled


def _requeue_stale(client, *, force: bool = False) -> int:
    """Put back batches claimed by a drainer that died before finishing them."""
    global _last_stale_check
    now = time.time()
    if not force and now - _last_stale_check < 60:
        return 0
    _last_stale_check = now
    requeued = 0
    for inflight in client.zrangebyscore(CLAIMS_KEY, "-inf", now - STALE_CLAIM_SECONDS):
        requeued += client._ledger_requeue(keys=[LEDGER_KEY, inflight, CLAIMS_KEY])
    if requeued:
        logger.warning("ledger: re-queued %d rows from abandoned drain batches", requeued)
    return requeued


_TEXT_LIMITS = {"request_id": 64, "requested_model": 200, "provider": 60, "upstream_model": 200, "error_type": 60}
_COUNTS = ("prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens", "latency_ms")
_MONEY = ("cost", "input_price", "output_price", "cache_read_price", "cache_write_price")


def _instance(row: dict[str, Any]):
    from .models import UsageRecord

    # Keys starting with "_" are bookkeeping (billing.journal, billing.inflight), not columns.
    data = {name: value for name, value in row.items() if not name.startswith("_")}
    created = data["created_at"]
    data["created_at"] = datetime.fromisoformat(created) if isinstance(created, str) else created
    for name in _MONEY:
        if data[name] is not None:
            data[name] = Decimal(str(data[name]))
    # Client-supplied strings are cut to the column and lose NUL characters (PostgreSQL refuses
    # them in text), so one odd request can't poison a batch.
    for name, limit in _TEXT_LIMITS.items():
        data[name] = (data[name] or "").replace("\x00", "")[:limit]
    for name in ("prompt_text", "completion_text"):
        if data[name]:
            data[name] = data[name].replace("\x00", "")
    for name in _COUNTS:
        data[name] = max(0, int(data[name] or 0))
    if data["ttft_ms"] is not None:
        data["ttft_ms"] = max(0, int(data["ttft_ms"]))
    data["client_ip"] = _valid_ip(data["client_ip"])
    data["model_name"] = data["requested_model"][:200]
    return UsageRecord(**data)


def _valid_ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _insert(rows: list[dict[str, Any]]) -> None:
    from catalog.models import CatalogModel


    records, kept = [], []
    for row in rows:
        try:
            records.append(_instance(row))
            kept.append(row)
        except (ValueError, TypeError, KeyError) as exc:
            _dead_letter(row, exc)
    rows = kept
    model_ids = {r.model_id for r in records if r.model_id is not None}
    if model_ids:
        names = dict(CatalogModel.objects.filter(pk__in=model_ids).values_list("pk", "public_id"))
        for r in records:
            r.model_name = names.get(r.model_id, r.model_name)
    try:
        _insert_ignoring_duplicates(records)
    except IntegrityError:
        # An organization or key deleted after its request: keep the row (the money happened),
        # drop only the dangling link, and try once more.
        _unlink_missing(records)
        _insert_rows_apart_on_data_error(records, rows)
    except DataError:
        _insert_rows_apart_on_data_error(records, rows)
    _rolled_up_days_mark_dirty(records)


def _rolled_up_days_mark_dirty(records: list) -> None:
    """Flag closed days these rows belong to, so a roll-up made before they arrived is redone.

    Runs after the rows are committed: a roll-up holding the day's marker lock either saw them,
    or finishes first and this flag, written after it, sends the day round again.
    """
    from .models import RollupDay

    today = datetime.now(UTC).date()
    days = {day for day in (r.created_at.astimezone(UTC).date() for r in records) if day < today}
    if days:
        RollupDay.objects.filter(day__in=days, pruned_at__isnull=True, dirty=False).update(dirty=True)
    _rolled_up_hours_mark_dirty(records)


def _rolled_up_hours_mark_dirty(records: list) -> None:
    """The same for closed hours (HourlyUsage): the next hourly pass rolls them up again."""
    from .models import RollupHour

    current = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hours = {h for h in (r.created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0) for r in records) if h < current}
    if hours:
        RollupHour.objects.filter(hour__in=hours, pruned_at__isnull=True, dirty=False).update(dirty=True)


def _insert_rows_apart_on_data_error(records: list, rows: list[dict[str, Any]]) -> None:
    """A value the database refuses must cost one row, not every row queued behind it: insert
    one by one and set aside (never drop) what is refused. Connection errors still raise, so
    the whole batch is retried."""
    try:
        _insert_ignoring_duplicates(records)
        return
    except (DataError, IntegrityError):
        pass
    for record, row in zip(records, rows):
        try:
            _insert_ignoring_duplicates([record])
        except (DataError, IntegrityError) as exc:
            _dead_letter(row, exc)


def _dead_letter(row: dict[str, Any], exc: BaseException) -> None:
    """Keep a row the database refused where an operator can find it, and say so loudly."""
    logger.error(
        "ledger: row %s refused (%s: %s); kept in the dead-letter list %s",
        row.get("request_id"), type(exc).__name__, str(exc)[:200], DEAD_LETTER_KEY,
    )
    if settings.REDIS_URL:
        try:
            _sync_redis().rpush(DEAD_LETTER_KEY, _encode(row))
            return
        except Exception:  # Redis down too: memory is the last place left
            pass
    dead_letters.append(row)


def _insert_ignoring_duplicates(records: list) -> None:
    """One executemany INSERT ... ON CONFLICT (request_id) DO NOTHING.

    bulk_create does the same with ignore_conflicts but spends ~0.1 ms a row compiling SQL per
    batch; profiling showed that in the gateway process itself (the background flusher) at a
    sixth of a core under load, so the statement is built once and values prepared directly.
    """
    from .models import UsageRecord

    fields = _insert_fields()
    conn = connections[DEFAULT_DB_ALIAS]  # the object itself: the `connection` proxy costs a lookup per use
    table = conn.ops.quote_name(UsageRecord._meta.db_table)
    columns = ", ".join(conn.ops.quote_name(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = (
        f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) "
        f"ON CONFLICT ({conn.ops.quote_name('request_id')}) DO NOTHING"
    )
    adapters = [(f.attname, _adapter(f, conn)) for f in fields]
    values = [[adapt(getattr(r, name)) if adapt else getattr(r, name) for name, adapt in adapters] for r in records]
    with transaction.atomic(), conn.cursor() as cursor:
        cursor.executemany(sql, values)


def _adapter(field, conn):
    """What get_db_prep_save would do for this column, minus its per-value dispatch."""
    from django.db import models

    if isinstance(field, models.DecimalField):
        return lambda v: None if v is None else conn.ops.adapt_decimalfield_value(
            v, field.max_digits, field.decimal_places)
    if isinstance(field, models.DateTimeField):
        return lambda v: None if v is None else conn.ops.adapt_datetimefield_value(v)
    if isinstance(field, models.GenericIPAddressField):
        return lambda v: conn.ops.adapt_ipaddressfield_value(v or None)
    if isinstance(field, (models.IntegerField, models.BooleanField, models.CharField, models.TextField)):
        return None  # the driver takes these as they are
    return lambda v: field.get_db_prep_save(v, conn)


def _insert_fields() -> list:
    from .models import UsageRecord

    return [f for f in UsageRecord._meta.concrete_fields if not f.primary_key]


def _unlink_missing(records: list) -> None:
    from orgs.models import ApiKey, Organization

    orgs = set(
        Organization.objects.filter(pk__in={r.organization_id for r in records}).values_list("pk", flat=True)
    )
    keys = set(ApiKey.objects.filter(pk__in={r.api_key_id for r in records}).values_list("pk", flat=True))
    for r in records:
        if r.organization_id not in orgs:
            r.organization_id = None
        if r.api_key_id not in keys:
            r.api_key_id = None


def ledger_flush_sync(*, max_batches: int | None = None) -> int:
    """Write what is buffered now, at most max_batches batches from each buffer (None: all), and
    wait for this process's in-flight batch. Returns rows written."""
    return _drain(max_batches=max_batches)


async def ledger_flush() -> int:
    return await sync_to_async(_drain, thread_sensitive=False, executor=_drain_executor)()


def ledger_connections_close() -> None:
    """Close the drain thread's database connection (at shutdown, and so test databases can be dropped)."""
    _drain_executor.submit(connections.close_all).result()


def ledger_drain_sync(*, max_batches: int | None = 200) -> int:
    """One drain pass for the Celery task: bounded, so a huge backlog is spread over runs."""
    from .inflight import inflight_recover_sync

    if settings.REDIS_URL:
        _requeue_stale(_sync_redis(), force=True)
    if not connection.in_atomic_block:
        close_old_connections()
    recovered = inflight_recover_sync(force=True)  # a dead gateway's requests in flight and journal
    return recovered + _drain(max_batches=max_batches)


def ledger_recover_sync() -> int:
    """At start-up: write what dead processes left (their journals, their requests in flight)."""
    from .inflight import inflight_recover_sync

    if not connection.in_atomic_block:
        close_old_connections()
    return inflight_recover_sync(force=True)


async def ledger_start() -> None:
    """Lifespan start-up: recover what dead processes left, then keep the background task running
    (it also watches for peers that die)."""
    try:
        recovered = await sync_to_async(ledger_recover_sync, thread_sensitive=False, executor=_drain_executor)()
        if recovered:
            logger.warning("ledger: %d rows recovered from processes that stopped without a shutdown", recovered)
    except Exception:
        logger.exception("ledger: recovery at start-up failed; the background task retries")
    _flusher_ensure()


def ledger_journal_close() -> None:
    """After the last flush of a clean shutdown: this process's journal has nothing left to replay."""
    journal = _journal(create=False)
    if journal is not None and journal.close():
        _journals.pop(os.getpid(), None)  # a row recorded after this opens a new one


def ledger_pending_sync() -> int:
    """Rows buffered but not yet in the database (this process's memory plus the shared Redis list)."""
    pending = len(_buffer)
    if settings.REDIS_URL:
        pending += int(_sync_redis().llen(LEDGER_KEY))
    return pending


@atexit.register
def _flush_at_exit() -> None:
    # Last resort for a process that exits without the ASGI lifespan shutdown (memory mode only:
    # Redis-buffered rows survive the process anyway).
    if not _buffer:
        ledger_journal_close()
        return
    try:
        with _write_lock:
            _drain_memory(None)
        ledger_journal_close()
    except Exception:
        logger.exception("ledger: %d usage rows could not be written at exit", len(_buffer))
