"""State every gateway instance must share: route cool-downs, rate-limit windows, budget
reservations. (Cache versions live in the database: gateway_site.versioned_cache.)

With REDIS_URL set it lives in Redis; otherwise in this process's memory (the embedded default
runs one process, so that is still the whole truth). The request path uses the async methods;
admin and management code (sync) use the `*_sync` ones.

When Redis is unreachable, callers catch STATE_ERRORS, report it to `state_outage` (one log line
per outage, not one per request) and degrade as README "When Redis or the database is
unreachable" documents; `process_fallback` is where per-process stand-ins keep their counts.
"""

from __future__ import annotations

import asyncio
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
        client = self._async_client()
        scripts = client.__dict__.setdefault("_gateway_scripts", {})  # registered per client
        script = scripts.get(lua)
        if script is None:
            script = scripts[lua] = client.register_script(lua)
        return await script(keys=[_PREFIX + k for k in keys], args=args)

    def script_queue(self, pipe, lua: str, keys: list[str], args: list) -> None:
        """Queue `lua` on a pipeline or MULTI of this state's Redis client, by its SHA: no extra
        round trip. If Redis has forgotten the script its reply is a NoScriptError (the other
        commands still run); the caller then runs it with `script`, which reloads it."""
        pipe.evalsha(_sha1(lua), len(keys), *[_PREFIX + k for k in keys], *args)

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
