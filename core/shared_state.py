"""State every gateway instance must share: route cool-downs, rate-limit windows, budget
reservations. (Cache versions live in the database: core.versioned_cache.)

With REDIS_URL set it lives in Redis; otherwise in this process's memory (the embedded default
runs one process, so that is still the whole truth). The request path uses the async methods;
admin and management code (sync) use the `*_sync` ones.

When Redis is unreachable, callers catch STATE_ERRORS, report it to `state_outage` (one log line
per outage, not one per request) and degrade as README "When Redis or the database is
unreachable" documents; `process_fallback` is where per-process stand-ins keep their counts.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import threading
import time
import weakref
from typing import Any

from django.conf import settings

from .outages import Outage

_PREFIX = "gw:"


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()

def _noscript(reply: Any) -> bool:
    from redis.exceptions import NoScriptError

    return isinstance(reply, NoScriptError)


try:  # what a Redis outage looks like to callers that must keep serving through one
    from redis.exceptions import RedisError

    STATE_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)
except ImportError:  # pragma: no cover - redis is a hard dependency
    STATE_ERRORS = (OSError, asyncio.TimeoutError)


class _MemoryState:
    def __init__(self) -> None:
        self._data: dict[str, tuple[Any, float | None]] = {}
        # Re-entrant: a script section holds it while calling get/set/incr, which take it too.
        self._lock = threading.RLock()

    def _lock_reentrant(self):
        return self._lock

    def _live(self, key: str) -> Any:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            del self._data[key]
            return None
        return value

    def get(self, key: str) -> Any:
        with self._lock:
            return self._live(key)

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        with self._lock:
            self._data[key] = (value, time.monotonic() + ttl if ttl else None)

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        with self._lock:
            current = self._live(key)
            value = int(current or 0) + amount
            if current is None:
                expires = time.monotonic() + ttl if ttl else None
            else:
                expires = self._data[key][1]
            self._data[key] = (value, expires)
            return value

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


state_outage = Outage(
    "Redis (REDIS_URL)",
    "API keys are still checked against the database; hard budgets refuse requests with 503 "
    "(GATEWAY_BUDGET_FAIL_OPEN=1 admits them instead); rate limits are counted per process; usage "
    "rows are buffered in process memory; GET /api/ai/health answers 503.",
)


class _LeanPool:
    """The request path's Redis connections (admission, settlement): LIFO, at most `size` open,
    callers past that wait for one. Each call is one write and one read of its replies. Profiled
    (issue 12): redis-py's own pool and command layers (blocking-pool condition and timeout, retry
    wrapper, metrics hooks, a readability check of the socket per checkout) cost about as much
    client CPU as parsing the replies; this keeps redis-py's connections and parser and skips
    the rest. A connection that fails or is cancelled mid-call is disconnected by redis-py and
    reconnects on its next use."""

    def __init__(self, make_connection, size: int) -> None:
        self._make = make_connection
        self._size = size
        self._open = 0
        self._free: list = []
        self._waiters: collections.deque[asyncio.Future] = collections.deque()

    async def call(self, commands: list[tuple]) -> list:
        """Every reply in order; an error reply is returned as its ResponseError, not raised."""
        from redis.exceptions import ResponseError

        connection = await self._acquire()
        try:
            await connection.send_packed_command(connection.pack_commands(commands), check_health=False)
            replies = []
            for _ in commands:
                try:
                    replies.append(await connection.read_response())
                except ResponseError as exc:
                    replies.append(exc)
            return replies
        finally:
            self._release(connection)

    async def _acquire(self):
        if self._free:
            return self._free.pop()
        if self._open < self._size:
            self._open += 1
            return self._make()  # connects on its first command
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(waiter.result())  # handed over just as this caller gave up
            raise

    def _release(self, connection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._free.append(connection)


class SharedState:
    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self._memory = _MemoryState() if not redis_url else None
        self._sync_client = None
        # redis.asyncio clients are bound to the loop that created them: one per loop, forgotten
        # with the loop (keyed weakly: a new loop must never inherit a dead loop's client).
        self._async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @property
    def uses_redis(self) -> bool:
        return self._memory is None

    def _async_client(self):
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            import redis.asyncio as aioredis

            # A blocking pool: past its size, commands wait for a connection instead of failing
            # (the default pool raises MaxConnectionsError under a burst of requests).
            pool = aioredis.BlockingConnectionPool.from_url(
                self.redis_url, decode_responses=True, max_connections=64, timeout=2,
                socket_connect_timeout=1, socket_timeout=5,
            )
            client = aioredis.Redis(connection_pool=pool)
            self._async_clients[loop] = client
        return client

    def _sync(self):
        if self._sync_client is None:
            import redis

            self._sync_client = redis.Redis.from_url(
                self.redis_url, decode_responses=True, socket_connect_timeout=1, socket_timeout=10
            )
        return self._sync_client

    def _lean(self) -> _LeanPool:
        client = self._async_client()
        pool = client.__dict__.get("_gateway_lean")
        if pool is None:
            pool = client.__dict__["_gateway_lean"] = _LeanPool(client.connection_pool.make_connection, 64)
        return pool

    def redis_async(self):
        """This loop's Redis client, for modules with their own key layout (the usage ledger)."""
        return self._async_client()

    def redis_sync(self):
        return self._sync()

    # --- async, for the request path ---------------------------------------------------
    async def get(self, key: str) -> str | None:
        if self._memory is not None:
            value = self._memory.get(key)
            return None if value is None else str(value)
        return await self._async_client().get(_PREFIX + key)

    async def get_many(self, keys: list[str]) -> list[str | None]:
        if self._memory is not None:
            return [None if (v := self._memory.get(k)) is None else str(v) for k in keys]
        return await self._async_client().mget([_PREFIX + k for k in keys])

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        if self._memory is not None:
            self._memory.set(key, value, ttl)
            return
        await self._async_client().set(_PREFIX + key, value, px=int(ttl * 1000) if ttl else None)

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        if self._memory is not None:
            return self._memory.incr(key, amount, ttl)
        client = self._async_client()
        async with client.pipeline(transaction=True) as pipe:
            pipe.incrby(_PREFIX + key, amount)
            if ttl:
                pipe.pexpire(_PREFIX + key, int(ttl * 1000), nx=True)
            result = await pipe.execute()
        return int(result[0])

    async def delete(self, key: str) -> None:
        if self._memory is not None:
            self._memory.delete(key)
            return
        await self._async_client().delete(_PREFIX + key)

    async def set_if_absent(self, key: str, value: str, ttl: float | None = None) -> bool:
        if self._memory is not None:
            if self._memory.get(key) is not None:
                return False
            self._memory.set(key, value, ttl)
            return True
        return bool(await self._async_client().set(_PREFIX + key, value, px=int(ttl * 1000) if ttl else None, nx=True))

    async def script(self, lua: str, keys: list[str], args: list, *, local):
        """Run an atomic check-and-update: the Lua script on Redis, or `local(memory)` in process.

        In memory mode the whole update runs without an await, so on the one event loop of the
        embedded default it is as atomic as the script is on Redis.
        """
        if self._memory is not None:
            with self._memory._lock_reentrant():
                return local(self._memory)
        command = self.script_command(lua, keys, args)
        for _ in range(2):
            (reply,) = await self._lean().call([command])
            if not _noscript(reply):
                break
            await self._async_client().script_load(lua)  # Redis restarted, or SCRIPT FLUSH
        if isinstance(reply, Exception):
            raise reply
        return reply

    def script_command(self, lua: str, keys: list[str], args: list) -> tuple:
        """`lua` as one EVALSHA command, for `transaction`: no extra round trip. If Redis has
        forgotten the script its reply is a NoScriptError (the other commands still run); the
        caller then runs it with `script`, which reloads it."""
        return ("EVALSHA", _sha1(lua), len(keys), *[_PREFIX + k for k in keys], *args)

    async def transaction(self, commands: list[tuple]) -> list:
        """`commands` (raw, keys already named in full) in one MULTI/EXEC, one round trip; their
        replies, an error reply as its exception (not raised)."""
        from redis.exceptions import ResponseError

        replies = await self._lean().call([("MULTI",), *commands, ("EXEC",)])
        for reply in replies[:-1]:
            if isinstance(reply, ResponseError):
                raise reply  # refused while queueing: EXEC aborted, nothing ran
        if isinstance(replies[-1], Exception):
            raise replies[-1]
        return replies[-1]

    # --- sync, for admin, commands and signals ---------------------------------------------
    def script_sync(self, lua: str, keys: list[str], args: list, *, local):
        """`script` for sync callers (the ledger's drain thread, Celery)."""
        if self._memory is not None:
            with self._memory._lock_reentrant():
                return local(self._memory)
        client = self._sync()
        scripts = client.__dict__.setdefault("_gateway_scripts", {})
        script = scripts.get(lua)
        if script is None:
            script = scripts[lua] = client.register_script(lua)
        return script(keys=[_PREFIX + k for k in keys], args=args)

    def get_sync(self, key: str) -> str | None:
        if self._memory is not None:
            value = self._memory.get(key)
            return None if value is None else str(value)
        return self._sync().get(_PREFIX + key)

    def get_many_sync(self, keys: list[str]) -> list[str | None]:
        if self._memory is not None:
            return [None if (v := self._memory.get(k)) is None else str(v) for k in keys]
        return self._sync().mget([_PREFIX + k for k in keys]) if keys else []

    def set_sync(self, key: str, value: str, ttl: float | None = None) -> None:
        if self._memory is not None:
            self._memory.set(key, value, ttl)
        else:
            self._sync().set(_PREFIX + key, value, px=int(ttl * 1000) if ttl else None)

    def incr_sync(self, key: str, amount: int = 1) -> int:
        if self._memory is not None:
            return self._memory.incr(key, amount)
        return int(self._sync().incrby(_PREFIX + key, amount))

    def delete_sync(self, key: str) -> None:
        if self._memory is not None:
            self._memory.delete(key)
        else:
            self._sync().delete(_PREFIX + key)

    def clear_sync(self) -> None:
        """Forget everything (tests). With Redis only the gateway's own keys go."""
        if self._memory is not None:
            self._memory.clear()
            return
        client = self._sync()
        keys = list(client.scan_iter(match=_PREFIX + "*", count=1000))
        if keys:
            client.delete(*keys)

    def ping_sync(self) -> bool:
        if self._memory is not None:
            return True
        return bool(self._sync().ping())

    async def ping(self) -> bool:
        if self._memory is not None:
            return True
        return bool(await self._async_client().ping())


_state: SharedState | None = None
# Per-process stand-in for counters normally kept in Redis, used only while it is unreachable.
process_fallback = _MemoryState()


def shared_state() -> SharedState:
    global _state
    if _state is None or _state.redis_url != settings.REDIS_URL:
        _state = SharedState(settings.REDIS_URL)
    return _state
