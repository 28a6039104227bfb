"""State every gateway instance must share: route cool-downs, rate-limit windows, budget
reservations. (Cache versions live in the database: core.versioned_cache.)

With REDIS_URL set it lives in Redis; otherwise in this process's memory (the embedded default
runs one process, so that is still the whole truth). The request path uses the async methods;
admin and management code (sync) use the `*_sync` ones.

The request path's two round trips (admission, settlement) go through one pipelined connection per
event loop (_Pipelined): what requests send in the same loop turn goes out in one write.

When Redis is unreachable, callers catch STATE_ERRORS, report it to `state_outage` (one log line
per outage, not one per request) and degrade as README "When Redis or the database is
unreachable" documents; `process_fallback` is where per-process stand-ins keep their counts.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import threading
import time
import weakref
from typing import Any

from django.conf import settings

from .outages import Outage

_PREFIX = "gw:"


@functools.lru_cache(maxsize=64)
def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


@functools.lru_cache(maxsize=64)
def _evalsha_prefix(lua: str) -> "_Packed":
    """EVALSHA and the script's digest, packed once per script."""
    return _packed("EVALSHA", _sha1(lua))


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
    """The request path's Redis connections (admission, settlement) where _Pipelined does not
    apply (GATEWAY_REDIS_PIPELINED=0, rediss://, unix://, no hiredis): LIFO, at most `size` open,
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
            await connection.send_packed_command(b"".join(map(resp_pack, commands)), check_health=False)
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


def _encode_arg(value: Any) -> bytes:
    kind = type(value)
    if kind is bytes:
        return value
    if kind is str:
        return value.encode()
    if kind is int:
        return b"%d" % value
    if kind is float:
        return repr(value).encode()
    # What redis-py's encoder refuses (bool, None, ...) is refused here too: a caller's bug.
    from redis.exceptions import DataError

    raise DataError(f"invalid Redis command argument of type {kind.__name__}: {value!r}")


class _Packed(bytes):
    """`count` arguments of a command already in RESP (no array header), packed once and reused."""

    count = 0


def _packed(*args: Any) -> _Packed:
    packed = _Packed(b"".join(b"$%d\r\n%s\r\n" % (len(data), data) for data in map(_encode_arg, args)))
    packed.count = len(args)
    return packed


def resp_pack(command: tuple) -> bytes:
    """One command in RESP, as redis-py writes it, without its per-argument trip through the
    encoder and its buffer bookkeeping (profiled: about a third of the client's CPU on the request
    path). A _Packed element stands for the arguments it already holds."""
    chunks, count = [], len(command)
    for value in command:
        if type(value) is _Packed:
            chunks.append(value)
            count += value.count - 1
            continue
        data = _encode_arg(value)
        chunks.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"*%d\r\n" % count + b"".join(chunks)


@functools.lru_cache(maxsize=4096)
def _packed_keys(keys: tuple[str, ...]) -> _Packed:
    """A script's key count and its keys (named in full), packed once: the same keys come back for
    every request of a key context within a rate-limit minute and a budget window."""
    return _packed(len(keys), *[_PREFIX + key for key in keys])


def _reply_error(error: Exception) -> Exception:
    """hiredis's error reply as the exception class redis-py would give it (NoScriptError, ...)."""
    from redis._parsers.base import BaseParser

    return BaseParser.parse_error(str(error))


class _Pipelined:
    """The request path's Redis connection on one event loop: every caller's commands go down one
    TCP connection, pipelined, and the replies come back in order (Redis answers a connection's
    commands in the order sent).

    Commands issued in the same turn of the event loop are written together on the next turn
    (loop.call_soon, never a timer: no request waits for a clock), so N requests finishing, or
    arriving, together cost one write and usually one read instead of N of each. Each caller's
    commands stay contiguous in the stream, so a MULTI/EXEC block or an EVALSHA is as atomic as
    when sent alone. Replies are parsed by hiredis straight from the protocol's buffer.

    Profiled (issue 12): on loopback a send() costs as much as parsing many replies, and redis-py's
    connection layer (pool checkout, a timeout context per read, its packer) as much again. A reply
    not back within `reply_timeout` fails the connection and everything waiting on it
    (TimeoutError, as a redis-py socket timeout would); a lost connection fails what waits on it
    with ConnectionError; the next call reconnects. A caller cancelled while waiting leaves its
    replies to be read and dropped, so the stream stays in step."""

    def __init__(self, *, host: str, port: int, db: int, username: str | None, password: str | None,
                 connect_timeout: float, reply_timeout: float) -> None:
        import hiredis
        from redis.exceptions import ResponseError

        self._address = (host, port)
        self._handshake: list[tuple] = []
        if password:
            self._handshake.append(("AUTH", username, password) if username else ("AUTH", password))
        if db:
            self._handshake.append(("SELECT", db))
        self._connect_timeout = connect_timeout
        self._reply_timeout = reply_timeout
        self._new_reader = functools.partial(hiredis.Reader, replyError=ResponseError, encoding="utf-8",
                                             errors="replace")
        self._error = ResponseError
        self._reader = self._new_reader()
        self._transport: asyncio.Transport | None = None
        self._ready = False  # connected and through the handshake (AUTH, SELECT)
        self._connecting: asyncio.Future | None = None
        self._out: list[bytes] = []
        # Per call, in the order sent: [future, replies still to come, replies so far, time sent].
        self._waiting: collections.deque[list] = collections.deque()
        self._watchdog: asyncio.TimerHandle | None = None
        self._link: _Link | None = None  # the current connection's protocol

    async def call(self, commands: list[tuple]) -> list:
        """Every reply in order; an error reply is returned as its ResponseError, not raised."""
        if not self._ready:
            await self._connect()
        return await self._send(commands)

    def _send(self, commands: list[tuple]) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._transport is None:
            future.set_exception(_connection_error("Connection to Redis lost"))
            return future
        if not self._out:
            loop.call_soon(self._flush)
        self._out.extend(map(resp_pack, commands))
        self._waiting.append([future, len(commands), [], loop.time()])
        if self._watchdog is None:
            self._watchdog = loop.call_later(self._reply_timeout, self._check)
        return future

    def _flush(self) -> None:
        if self._out and self._transport is not None:
            data = b"".join(self._out)
            self._out.clear()
            self._transport.write(data)

    async def _connect(self) -> None:
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.create_connection(lambda: _Link(self), *self._address), self._connect_timeout)
            if self._handshake:
                for reply in await asyncio.wait_for(self._send(self._handshake), self._connect_timeout):
                    if isinstance(reply, Exception):
                        raise reply
        except BaseException as exc:
            self._fail(exc if isinstance(exc, Exception) else _connection_error("connecting was cancelled"))
            raise
        self._ready = True

    # --- from the current connection's protocol -----------------------------------------------
    def connection_made(self, link: "_Link", transport) -> None:
        self._link, self._transport = link, transport
        self._reader = self._new_reader()

    def data_received(self, data: bytes) -> None:
        reader, waiting, error = self._reader, self._waiting, self._error
        reader.feed(data)
        while True:
            reply = reader.gets()
            if reply is False:
                return
            if isinstance(reply, error):
                reply = _reply_error(reply)
            elif type(reply) is list and any(isinstance(item, error) for item in reply):
                reply = [_reply_error(item) if isinstance(item, error) else item for item in reply]
            if not waiting:  # a reply nobody asked for: the stream is out of step, start afresh
                self._fail(_connection_error("unexpected reply from Redis"))
                return
            entry = waiting[0]
            entry[2].append(reply)
            entry[1] -= 1
            if not entry[1]:
                waiting.popleft()
                if not entry[0].done():
                    entry[0].set_result(entry[2])

    def connection_lost(self, exc: Exception | None) -> None:
        self._link, self._transport, self._ready = None, None, False
        self._fail_waiting(_connection_error(f"Connection to Redis lost ({exc or 'closed by the server'})"))

    # --- failures --------------------------------------------------------------------------------
    def _check(self) -> None:
        self._watchdog = None
        if not self._waiting:
            return
        loop = asyncio.get_running_loop()
        oldest = self._waiting[0][3]
        if loop.time() - oldest >= self._reply_timeout:
            self._fail(asyncio.TimeoutError("no reply from Redis"))
        else:
            self._watchdog = loop.call_at(oldest + self._reply_timeout, self._check)

    def _fail(self, exc: BaseException) -> None:
        transport, self._transport, self._ready, self._link = self._transport, None, False, None
        if transport is not None:
            transport.abort()
        self._fail_waiting(exc)

    def _fail_waiting(self, exc: BaseException) -> None:
        self._out.clear()
        waiting, self._waiting = self._waiting, collections.deque()
        for entry in waiting:
            if not entry[0].done():
                entry[0].set_exception(exc)


class _Link(asyncio.Protocol):
    """One TCP connection of a _Pipelined: passes its events on while it is the current one (a
    connection given up on, e.g. timed out, may still report its end after a new one is up)."""

    def __init__(self, owner: _Pipelined) -> None:
        self._owner = owner

    def connection_made(self, transport) -> None:
        self._owner.connection_made(self, transport)

    def data_received(self, data: bytes) -> None:
        if self._owner._link is self:
            self._owner.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._owner._link is self:
            self._owner.connection_lost(exc)


def _connection_error(message: str) -> Exception:
    from redis.exceptions import ConnectionError

    return ConnectionError(message)


def _pipelined_for(redis_url: str) -> "_Pipelined | None":
    """A _Pipelined connection for `redis_url`, or None where it does not apply (TLS, a Unix
    socket, no hiredis): then the request path uses redis-py's connections (_LeanPool)."""
    from urllib.parse import urlparse

    try:
        import hiredis  # noqa: F401
    except ImportError:
        return None
    from redis.asyncio.connection import parse_url

    if urlparse(redis_url).scheme != "redis":
        return None
    options = parse_url(redis_url)
    if options.get("connection_class") is not None and options["connection_class"].__name__ != "Connection":
        return None
    return _Pipelined(host=options.get("host") or "localhost", port=int(options.get("port") or 6379),
                      db=int(options.get("db") or 0), username=options.get("username"),
                      password=options.get("password"), connect_timeout=1, reply_timeout=5)


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

    def _lean(self) -> "_Pipelined | _LeanPool":
        client = self._async_client()
        pool = client.__dict__.get("_gateway_lean")
        if pool is None:
            pool = _pipelined_for(self.redis_url) if settings.GATEWAY_REDIS_PIPELINED else None
            if pool is None:
                pool = _LeanPool(client.connection_pool.make_connection, 64)
            client.__dict__["_gateway_lean"] = pool
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
            # Redis restarted, or SCRIPT FLUSH: loaded over the same connection (a pooled redis-py
            # one could still be the dead server's).
            (loaded,) = await self._lean().call([("SCRIPT", "LOAD", lua)])
            if isinstance(loaded, Exception):
                raise loaded
        if isinstance(reply, Exception):
            raise reply
        return reply

    def script_command(self, lua: str, keys: list[str], args: list) -> tuple:
        """`lua` as one EVALSHA command, for `transaction`: no extra round trip. If Redis has
        forgotten the script its reply is a NoScriptError (the other commands still run); the
        caller then runs it with `script`, which reloads it."""
        return (_evalsha_prefix(lua), _packed_keys(tuple(keys)), *args)

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
