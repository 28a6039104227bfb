"""Requests in flight: admitted (they can cost money) but not yet metered.

A process that dies (SIGKILL, OOM, a lost machine) never meters them, yet the providers bill
them. So each admitted request is registered with the row it would leave if it were lost: status
0, error_type `lost_in_flight`, `lost_in_flight` set, charged its reserved worst case
(tokens_estimated). The row the request really ends with replaces the registration.

- With REDIS_URL: a hash per gateway process (request id -> that row), one HSET at admission,
  done by the admission script itself when the request has limits or budgets (billing.admission:
  admitted and registered together, so a refusal leaves nothing to undo); the end is folded into
  the ledger push (HDEL in the same MULTI). The process keeps a heartbeat key
  alive (INFLIGHT_TTL_SECONDS). Whoever notices the heartbeat gone (another gateway process's
  background task, the Celery `ledger_drain` task) claims the hash with one script that moves its
  rows onto the ledger queue, then settles every budget of each request at its worst case (each
  reservation it held released, the worst case added to each window's spend).
- Otherwise: a begin line in this process's ledger journal (billing.journal), replayed by the next
  process to start (or any live one) once this one is dead.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import replace
from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings

from .journal import BEGIN, dead_journals, journal_dir, journal_read, journal_remove
from .metering import (
    LEDGER_KEY, UsageEvent, _async_redis, _encode, _flusher_ensure, _insert, _journal, _redis_failed,
    _redis_usable, _row, _sync_redis,
)

logger = logging.getLogger(__name__)

LOST_IN_FLIGHT = "lost_in_flight"
PROCS_KEY = "gw:billing:open:procs"  # gateway processes that may have requests in flight
OPEN_STATE_KEY = "billing:open:req:"  # as shared_state names it (it adds the "gw:" prefix)
OPEN_PREFIX = "gw:" + OPEN_STATE_KEY  # + process id: hash of request id -> its lost row
ALIVE_PREFIX = "gw:billing:open:alive:"  # + process id: the heartbeat
SETTLE = "_settle"  # billing.admission.Admission.lost_settle(): the budgets to settle if lost

# Atomic: a process whose heartbeat is back (or another claimer) never has its rows taken twice.
_CLAIM_LUA = """
if redis.call('EXISTS', KEYS[3]) == 1 then return false end
local rows = redis.call('HVALS', KEYS[4])
for i = 1, #rows do redis.call('RPUSH', KEYS[2], rows[i]) end
redis.call('DEL', KEYS[4])
redis.call('SREM', KEYS[1], ARGV[1])
return rows
"""

_process: dict[str, Any] = {"pid": None, "id": "", "registered": False, "beat": 0.0, "checked": 0.0}
_reap_lock = threading.Lock()


def _ttl() -> float:
    return float(settings.BILLING_INFLIGHT_TTL_SECONDS)


def process_id() -> str:
    if _process["pid"] != os.getpid():  # a forked worker is a process of its own
        _process.update(pid=os.getpid(), id=f"{socket.gethostname()}-{os.getpid()}-{os.urandom(4).hex()}",
                        registered=False, beat=0.0)
    return _process["id"]


def lost_row(event: UsageEvent, worst_case: Decimal, settle: dict | None) -> dict[str, Any]:
    """The ledger row this request leaves if its process dies before metering it."""
    lost = replace(event, status=0, error_type=LOST_IN_FLIGHT, tokens_estimated=True, lost_in_flight=True,
                   latency_ms=0, ttft_ms=None)
    row = _row(lost, worst_case)
    row[BEGIN] = 1
    if settle is not None:
        row[SETTLE] = settle
    return row


async def inflight_hash() -> str | None:
    """This process's in-flight hash as a shared-state key (without the "gw:" prefix), for the
    admission script to register the request in the same round trip; None when Redis is not
    usable (then `inflight_begin`, which journals). The process's heartbeat and membership are
    written first, once, so an entry is never orphaned."""
    if not _redis_usable():
        return None
    proc = process_id()
    if not _process["registered"]:
        import redis

        try:
            async with _async_redis().pipeline(transaction=True) as pipe:
                pipe.sadd(PROCS_KEY, proc)
                pipe.set(ALIVE_PREFIX + proc, "1", px=int(_ttl() * 1000))
                await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            _redis_failed(exc)
            return None
        _process.update(registered=True, beat=time.monotonic())
    _flusher_ensure()  # the heartbeat
    return OPEN_STATE_KEY + proc


def inflight_line(row: dict[str, Any]) -> bytes:
    """A lost row as the in-flight hash stores it."""
    return _encode(row)


async def inflight_begin(row: dict[str, Any]) -> str:
    """Register an admitted request; returns where ("redis" or "journal")."""
    request_id = row["request_id"]
    line = _encode(row)
    if _redis_usable():
        import redis

        proc = process_id()
        try:
            client = _async_redis()
            if _process["registered"]:
                await client.hset(OPEN_PREFIX + proc, request_id, line)
            else:
                # The heartbeat exists before the first entry, so the entry is never orphaned.
                async with client.pipeline(transaction=True) as pipe:
                    pipe.sadd(PROCS_KEY, proc)
                    pipe.set(ALIVE_PREFIX + proc, "1", px=int(_ttl() * 1000))
                    pipe.hset(OPEN_PREFIX + proc, request_id, line)
                    await pipe.execute()
                _process.update(registered=True, beat=time.monotonic())
            _flusher_ensure()
            return "redis"
        except (redis.RedisError, OSError) as exc:
            _redis_failed(exc)
    journal = _journal()
    with journal.lock:
        journal.begin(request_id, line + b"\n")
    _flusher_ensure()
    return "journal"


async def inflight_heartbeat() -> None:
    """Called by the background flusher: tell the other processes this one is alive."""
    if not (_process["registered"] and _process["pid"] == os.getpid()):
        return
    if time.monotonic() - _process["beat"] < _ttl() / 3:
        return
    proc = process_id()
    async with _async_redis().pipeline(transaction=True) as pipe:
        pipe.sadd(PROCS_KEY, proc)  # again, in case a peer judged this process dead
        pipe.set(ALIVE_PREFIX + proc, "1", px=int(_ttl() * 1000))
        await pipe.execute()
    _process["beat"] = time.monotonic()


def inflight_recover_sync(*, force: bool = False) -> int:
    """Write the rows of requests lost by dead processes (and their journaled rows). Returns
    rows handled. Cheap to call often; does real work at most every TTL/6 unless forced."""
    now = time.monotonic()
    if not force and now - _process["checked"] < max(0.5, _ttl() / 6):
        return 0
    if not _reap_lock.acquire(blocking=False):
        return 0
    try:
        _process["checked"] = now
        handled = _journals_replay()
        if settings.REDIS_URL:
            handled += _redis_reap()
        return handled
    finally:
        _reap_lock.release()


def _journals_replay() -> int:
    directory = journal_dir()
    own = _journal(create=False)
    handled = 0
    for owner, fd in dead_journals(directory, exclude=own.owner if own else None):
        try:
            rows, lost = journal_read(directory, owner)
            if rows or lost:
                _insert(rows + lost)
                _settle_lost(lost)
        except Exception:
            if fd is not None:
                os.close(fd)
            raise
        journal_remove(directory, owner, fd)
        if rows or lost:
            logger.warning("ledger: replayed the journal of a dead process: %d rows, %d lost in flight",
                           len(rows), len(lost))
        handled += len(rows) + len(lost)
    return handled


def _redis_reap() -> int:
    client = _sync_redis()
    if not hasattr(client, "_inflight_claim"):
        client._inflight_claim = client.register_script(_CLAIM_LUA)
    own = process_id() if _process["registered"] else None
    handled = 0
    for proc in client.smembers(PROCS_KEY):
        if proc == own:
            continue
        rows = client._inflight_claim(keys=[PROCS_KEY, LEDGER_KEY, ALIVE_PREFIX + proc, OPEN_PREFIX + proc],
                                      args=[proc])
        if not rows:
            continue
        lost = [orjson.loads(row) for row in rows]
        logger.warning("ledger: gateway process %s stopped with %d requests in flight; recorded as lost",
                       proc, len(lost))
        _settle_lost(lost)
        handled += len(lost)
    return handled


def _settle_lost(lost: list[dict[str, Any]]) -> None:
    from .admission import admission_settle_lost

    for row in lost:
        settle = row.get(SETTLE)
        if isinstance(settle, dict):
            admission_settle_lost(settle, Decimal(str(row["cost"])))
