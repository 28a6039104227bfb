"""The request path's Redis connection (core.shared_state._Pipelined): the commands of every request
in one turn of the event loop go out in one write, each caller still gets its own replies and each
script or MULTI block stays atomic, and a dead, silent or restarted Redis fails the callers the way
the request path expects (STATE_ERRORS) and is reconnected to afterwards.

Each test runs its own memory-only redis-server, so the server's own counters (INFO stats) see
nothing but the test's traffic."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
import redis

from core.shared_state import STATE_ERRORS, SharedState, _LeanPool, _Pipelined, _pipelined_for
from tests.server_helpers import REDIS_SERVER, free_port, redis_start

pytestmark = pytest.mark.skipif(not Path(REDIS_SERVER).exists(), reason="needs a redis-server binary")

# A budget-like check-and-add: atomic only if nothing runs between its GET and its SET.
ADD_LUA = """
local v = tonumber(redis.call('GET', KEYS[1]) or '0') + tonumber(ARGV[1])
redis.call('SET', KEYS[1], v)
return v
"""


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request):
    """Every test on asyncio's own loop and on uvloop (what `manage.py serve` runs)."""
    if request.param == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    yield request.param
    asyncio.set_event_loop_policy(None)


@pytest.fixture
def private_redis():
    started = []

    def start(*options: str) -> tuple[str, int, object]:
        port = free_port()
        started.append(redis_start(port, *options))
        return f"redis://127.0.0.1:{port}/3", port, started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)  # in case a test left it stopped
            proc.kill()
            proc.wait()


def test_it_sends_the_commands_of_one_loop_turn_in_one_write(private_redis, settings):
    url, port, _ = private_redis()
    observer = redis.Redis(port=port)  # kept open: each INFO is one read event of its own

    def reads() -> int:
        return int(observer.info("stats")["total_reads_processed"])

    def forty_at_once(state: SharedState) -> tuple[int, list]:
        async def run():
            await state.script(ADD_LUA, ["warm"], [1], local=None)  # connected, script loaded
            redis.Redis.from_url(url).delete("gw:total")
            before = reads()
            results = await asyncio.gather(*(state.script(ADD_LUA, ["total"], [n], local=None)
                                             for n in range(1, 41)))
            return reads() - before - 1, results  # minus the second INFO's own read

        return asyncio.run(run())

    read_events, results = forty_at_once(SharedState(url))
    # 40 requests admitted in the same loop turn: Redis read them in one read event (two if the
    # bytes straddle its buffer), not 40.
    assert read_events <= 2, read_events
    # Each caller got its own reply, and the scripts ran one at a time, in order.
    assert results == [n * (n + 1) // 2 for n in range(1, 41)]
    assert redis.Redis.from_url(url).get("gw:total") == b"820"

    settings.GATEWAY_REDIS_PIPELINED = False  # redis-py's connections: one write per request
    read_events, results = forty_at_once(SharedState(url))
    # (In whatever order the connections were served; still atomic: 40 distinct totals up to 820.)
    assert read_events >= 40 and len(set(results)) == 40 and max(results) == 820


def test_it_keeps_each_transaction_whole_and_its_replies_with_its_caller(private_redis):
    url, _, _ = private_redis()
    state = SharedState(url)

    async def one(n: int):
        return await state.transaction([
            state.script_command(ADD_LUA, [f"t{n}"], [n]),
            ("RPUSH", "gw:list", f"row-{n}"),
            ("INCRBY", "gw:count", n),
        ])

    async def run():
        await state.script(ADD_LUA, ["warm"], [0], local=None)  # a transaction never loads scripts
        return await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(30))), 10)

    replies = asyncio.run(run())
    for n, (added, _, _) in enumerate(replies):
        assert added == n
    client = redis.Redis.from_url(url, decode_responses=True)
    assert sorted(client.lrange("gw:list", 0, -1)) == sorted(f"row-{n}" for n in range(30))
    assert client.get("gw:count") == str(sum(range(30)))


def test_a_script_redis_forgot_is_loaded_again(private_redis):
    url, _, _ = private_redis()
    state = SharedState(url)

    async def run():
        first = await state.script(ADD_LUA, ["k"], [2], local=None)
        redis.Redis.from_url(url).script_flush()
        return first, await state.script(ADD_LUA, ["k"], [3], local=None)

    assert asyncio.run(run()) == (2, 5)


def test_a_caller_that_gives_up_leaves_the_stream_in_step(private_redis):
    url, _, _ = private_redis()
    state = SharedState(url)
    slow = "local t = redis.call('TIME'); local until = t[1] * 1000000 + t[2] + 200000\n" \
           "repeat local n = redis.call('TIME') until n[1] * 1000000 + n[2] >= until\nreturn 'slow'"

    async def run():
        await state.script(ADD_LUA, ["warm"], [1], local=None)
        waiting = asyncio.ensure_future(state.script(slow, [], [], local=None))
        await asyncio.sleep(0.05)
        waiting.cancel()  # e.g. the client disconnected during admission
        # Queued behind the slow script on the same connection: must get its own reply.
        return await state.script(ADD_LUA, ["after"], [7], local=None)

    assert asyncio.run(run()) == 7


def test_a_dead_redis_fails_the_callers_with_a_state_error_and_is_reconnected_to(private_redis):
    url, port, proc = private_redis()
    state = SharedState(url)

    async def run():
        assert await state.script(ADD_LUA, ["k"], [1], local=None) == 1
        proc.kill()
        proc.wait()
        with pytest.raises(STATE_ERRORS):
            await state.script(ADD_LUA, ["k"], [1], local=None)
        with pytest.raises(STATE_ERRORS):  # refused while it is down: fails fast, no hang
            await asyncio.wait_for(state.script(ADD_LUA, ["k"], [1], local=None), 3)
        restarted = redis_start(port)
        try:
            return await state.script(ADD_LUA, ["k"], [5], local=None)  # a new server, a new count
        finally:
            restarted.kill()
            restarted.wait()

    assert asyncio.run(run()) == 5


def test_a_silent_redis_times_out_and_the_next_call_reconnects(private_redis):
    url, _, proc = private_redis()
    connection = _pipelined_for(url)
    connection._reply_timeout = 0.5

    async def run():
        assert await connection.call([("PING",)]) == ["PONG"]
        os.kill(proc.pid, signal.SIGSTOP)
        started = time.monotonic()
        try:
            with pytest.raises(asyncio.TimeoutError):
                await connection.call([("PING",)])
            waited = time.monotonic() - started
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        return waited, await connection.call([("PING",)])

    waited, reply = asyncio.run(run())
    assert 0.4 < waited < 2.0
    assert reply == ["PONG"]


def test_it_authenticates_and_selects_the_database_of_the_url(private_redis):
    url, port, _ = private_redis("--requirepass", "s3cret")
    authed = url.replace("redis://", "redis://:s3cret@")
    state = SharedState(authed)
    assert asyncio.run(state.script(ADD_LUA, ["auth"], [4], local=None)) == 4
    assert redis.Redis(port=port, password="s3cret", db=3).get("gw:auth") == b"4"
    with pytest.raises(STATE_ERRORS):  # a wrong password is a state error, not a hang or a 500
        asyncio.run(SharedState(url.replace("redis://", "redis://:wrong@")).script(ADD_LUA, ["x"], [1], local=None))


def test_urls_it_does_not_speak_and_the_setting_use_redis_pys_connections(private_redis, settings):
    assert _pipelined_for("rediss://127.0.0.1:6380/0") is None
    assert _pipelined_for("unix:///tmp/redis.sock?db=1") is None
    url, _, _ = private_redis()
    assert isinstance(_pipelined_for(url), _Pipelined)

    settings.GATEWAY_REDIS_PIPELINED = False
    state = SharedState(url)

    async def run():
        pool = state._lean()
        await state.script(ADD_LUA, ["warm"], [0], local=None)
        replies = await state.transaction([state.script_command(ADD_LUA, ["lean"], [6]), ("INCRBY", "gw:n", 2)])
        return pool, replies

    pool, replies = asyncio.run(run())
    assert isinstance(pool, _LeanPool)
    assert replies == [6, 2]
