"""`make bench`: the gateway's throughput, added latency and streaming memory, on loopback.

Starts the fake provider (tests/fake_provider.py, standalone) and the production server
(`manage.py serve`) on a fresh bench database, then drives them with wrk, which is C and so does
not steal the gateway's CPU the way a Python load generator would. For every scenario the same
load also goes to the fake provider directly, so the table shows what the gateway adds:

- requests/s at 32 connections,
- p50 and p99 latency at one connection, and the added p50 (gateway minus direct).

Then 2,000 concurrent streams held open ~20 s against a slowed fake, measuring the gateway's
resident memory (VmRSS summed over its process tree) before and at peak.

    make bench                       # 10 s per measurement
    make bench ARGS="--quick"        # 3 s per measurement
    make bench ARGS="--streams 500 --skip-wrk"

Ports 19000 (gateway) and 19100 (fake) on 127.0.0.1; every child process is killed on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
LUA = Path(__file__).resolve().parent / "post.lua"
PY = sys.executable
FAKE_KEY = "bench-fake-key"
ANTHROPIC_VERSION = "2023-06-01"
PROMPT = "Say hello to the benchmark in one short sentence"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Processes


class Children:
    """Every process we start, each in its own session so its whole group can be killed."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], *, env: dict[str, str], cpus: set[int] | None, log_path: Path) -> subprocess.Popen:
        out = open(log_path, "wb")  # noqa: SIM115 - closed with the process below

        def pin() -> None:
            if cpus:
                os.sched_setaffinity(0, cpus)

        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=pin)
        proc._bench_log = out  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in reversed(self.procs):
            for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                if proc.poll() is not None:
                    break
                try:
                    os.killpg(proc.pid, sig)  # the server's worker processes share its group
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    continue
            proc._bench_log.close()  # type: ignore[attr-defined]
        self.procs.clear()


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}; see its log in var/")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s")


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing: install it with `sudo apt-get install -y wrk` and run again.")
    log("wrk is missing: installing it from Debian's packages ...")
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=600)
        subprocess.run(install, check=True, capture_output=True, timeout=600)
    return shutil.which("wrk") or "wrk"


def raise_fd_limit() -> None:
    # Thousands of open streams need thousands of sockets, in this process and (inherited) in children.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))


def cpu_layout() -> tuple[set[int], set[int], set[int]]:
    """(gateway, fake, load generator) CPU sets: the gateway gets its cores to itself when it can."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 3:
        return set(cpus[:-2]), {cpus[-1]}, {cpus[-2]}
    if len(cpus) == 2:
        return {cpus[0]}, {cpus[1]}, {cpus[1]}
    return set(cpus), set(cpus), set(cpus)


def tree_rss_mb(pid: int) -> float:
    """VmRSS summed over `pid` and all its descendants (granian's workers are child processes)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    total_kb, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            with open(f"/proc/{current}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


# ---------------------------------------------------------------------------------------------
# Load


@dataclass
class Target:
    url: str
    body: dict
    key: str
    auth: str = "bearer"  # or "x-api-key"
    anthropic: bool = False


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def run_wrk(wrk: str, target: Target, *, connections: int, seconds: float, cpus: set[int]) -> WrkResult:
    env = {**os.environ, "BENCH_BODY": json.dumps(target.body), "BENCH_KEY": target.key, "BENCH_AUTH": target.auth,
           "BENCH_ANTHROPIC_VERSION": ANTHROPIC_VERSION if target.anthropic else ""}
    threads = max(1, min(connections, len(cpus)))
    args = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
            "-s", str(LUA), target.url]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=seconds + 60,
                            preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    match = re.search(r"BENCH_RESULT requests=(\d+) duration_us=(\d+) p50_us=(\d+) p99_us=(\d+) "
                      r"non2xx=(\d+) socket_errors=(\d+)", result.stdout)
    if not match:
        raise RuntimeError(f"wrk gave no result:\n{result.stdout}{result.stderr}")
    requests, duration_us, p50, p99, non2xx, socket_errors = map(int, match.groups())
    return WrkResult(rps=requests / (duration_us / 1e6), p50_ms=p50 / 1000, p99_ms=p99 / 1000,
                     requests=requests, errors=non2xx + socket_errors)


def preflight(target: Target) -> str | None:
    """None if the target answers this request properly, else why it is not measured."""
    headers = {"content-type": "application/json"}
    headers["x-api-key" if target.auth == "x-api-key" else "authorization"] = (
        target.key if target.auth == "x-api-key" else f"Bearer {target.key}")
    if target.anthropic:
        headers["anthropic-version"] = ANTHROPIC_VERSION
    try:
        response = httpx.post(target.url, json=target.body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        return f"n/a: {type(exc).__name__}"
    if response.status_code != 200:
        return f"n/a: endpoint returned {response.status_code} {response.text[:120]!r}"
    if target.body.get("stream") and "[DONE]" not in response.text and "message_stop" not in response.text:
        return "n/a: stream did not finish"
    return None


def chat_body(stream: bool) -> dict:
    body: dict = {"model": "gpt-4o", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 64}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


def messages_body(model: str, stream: bool) -> dict:
    body: dict = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        body["stream"] = True
    return body


def scenarios(gateway: str, fake: str, key: str) -> list[tuple[str, Target, Target]]:
    """(name, through the gateway, the same load sent to the fake directly)."""
    rows = []
    for stream in (False, True):
        kind = "streaming" if stream else "non-streaming"
        rows.append((f"OpenAI chat/completions gpt-4o, {kind}",
                     Target(f"{gateway}/api/ai/chat/completions", chat_body(stream), key),
                     Target(f"{fake}/v1/chat/completions", chat_body(stream), FAKE_KEY)))
    for model, label in (("claude-3-5-sonnet", "native"), ("gpt-4o", "translated to OpenAI")):
        for stream in (False, True):
            kind = "streaming" if stream else "non-streaming"
            direct_body = messages_body("claude-sonnet-4-5-20250929", stream)
            rows.append((f"Anthropic messages {model} ({label}), {kind}",
                         Target(f"{gateway}/api/ai/anthropic/v1/messages", messages_body(model, stream), key,
                                auth="x-api-key", anthropic=True),
                         Target(f"{fake}/v1/messages", direct_body, FAKE_KEY, auth="x-api-key", anthropic=True)))
    return rows


# ---------------------------------------------------------------------------------------------
# 2,000 concurrent streams


async def concurrent_streams(url: str, key: str, fake: str, gateway_pid: int, *, count: int, seconds: float,
                             delay_ms: float) -> dict:
    import aiohttp

    words = max(1, int(seconds * 1000 / delay_ms) - 4)  # role, finish, usage and [DONE] events add 4
    payload = json.dumps({**chat_body(True), "max_tokens": words + 16,
                          "messages": [{"role": "user", "content": " ".join(["word"] * words)}]})
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    state = {"open": 0, "max_open": 0, "completed": 0}
    errors: Counter[str] = Counter()
    rss_before = tree_rss_mb(gateway_pid)
    rss_peak = rss_before

    async def one(session: aiohttp.ClientSession) -> None:
        opened = False
        try:
            async with session.post(url, data=payload, headers=headers) as response:
                if response.status != 200:
                    errors[f"HTTP {response.status}"] += 1
                    await response.read()
                    return
                tail = b""
                async for chunk in response.content.iter_any():
                    if not opened:
                        opened = True  # open = the client has its first bytes of the stream
                        state["open"] += 1
                        state["max_open"] = max(state["max_open"], state["open"])
                    tail = (tail + chunk)[-64:]
                if b"data: [DONE]" in tail:
                    state["completed"] += 1
                else:
                    errors["ended without [DONE]"] += 1
        except Exception as exc:  # counted, not raised: the report says how many failed and how
            errors[type(exc).__name__] += 1
        finally:
            if opened:
                state["open"] -= 1

    async def sample(stop: asyncio.Event) -> None:
        nonlocal rss_peak
        while not stop.is_set():
            rss_peak = max(rss_peak, tree_rss_mb(gateway_pid))
            try:
                await asyncio.wait_for(stop.wait(), 0.25)
            except asyncio.TimeoutError:
                pass

    async with aiohttp.ClientSession() as control:
        await control.post(f"{fake}/_fake/config", json={"stream_delay_ms": delay_ms})
    started = time.monotonic()
    try:
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        timeout = aiohttp.ClientTimeout(total=seconds + 120, sock_connect=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample(stop))
            tasks = []
            for i in range(count):  # ramp over ~1 s so the listen backlog is not the thing measured
                tasks.append(asyncio.create_task(one(session)))
                if i % 100 == 99:
                    await asyncio.sleep(0.05)
            await asyncio.wait(tasks, timeout=seconds + 180)
            stop.set()
            await sampler
    finally:
        async with aiohttp.ClientSession() as control:
            await control.post(f"{fake}/_fake/config", json={"stream_delay_ms": 0})
    return {"count": count, "max_open": state["max_open"], "completed": state["completed"], "errors": dict(errors),
            "rss_before": rss_before, "rss_peak": rss_peak, "wall": time.monotonic() - started,
            "events": words + 4, "delay_ms": delay_ms}


# ---------------------------------------------------------------------------------------------
# Report


def machine_info() -> list[str]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return [f"nproc {os.cpu_count()} ({len(os.sched_getaffinity(0))} usable), CPU {model}",
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}"]


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per measurement (default 10).")
    parser.add_argument("--quick", action="store_true", help="3 s per measurement.")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--gateway-port", type=int, default=19000)
    parser.add_argument("--fake-port", type=int, default=19100)
    parser.add_argument("--streams", type=int, default=2000, help="Concurrent streams (0 skips that test).")
    parser.add_argument("--stream-seconds", type=float, default=20.0, help="How long each stream lasts.")
    parser.add_argument("--stream-delay-ms", type=float, default=100.0, help="Fake's pause between events.")
    parser.add_argument("--skip-wrk", action="store_true", help="Only the concurrent-streams test.")
    args = parser.parse_args(argv)
    seconds = 3.0 if args.quick else args.duration

    # A SIGTERM (e.g. from make or CI) unwinds like Ctrl-C, so the finally below kills the children.
    signal.signal(signal.SIGTERM, _interrupt)
    raise_fd_limit()
    wrk = None if args.skip_wrk else ensure_wrk()
    for port in (args.gateway_port, args.fake_port):
        if not port_free(port):
            raise SystemExit(f"127.0.0.1:{port} is in use (a `make run` gateway?): stop it or pick another port.")
    gateway_cpus, fake_cpus, load_cpus = cpu_layout()
    machine = machine_info()  # before this process pins itself to the load generator's CPUs

    var = ROOT / "var"
    var.mkdir(exist_ok=True)
    env = {**os.environ, "DEBUG": "0", "BENCH_FAKE_KEY": FAKE_KEY, "PYTHONPATH": str(ROOT),
           "DJANGO_SETTINGS_MODULE": "gateway_site.settings"}
    if not env.get("SECRET_KEY") and not (var / "env").exists():
        env["SECRET_KEY"] = secrets.token_urlsafe(50)  # settings read var/env themselves when it exists
    if not env.get("DATABASE_URL"):
        database = var / "bench.sqlite3"
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        env["DATABASE_URL"] = f"sqlite:///{database}"
    database_kind = env["DATABASE_URL"].split(":", 1)[0]

    gateway = f"http://127.0.0.1:{args.gateway_port}"
    fake = f"http://127.0.0.1:{args.fake_port}"
    children = Children()
    try:
        log("setting up the bench database ...")
        manage(env, "migrate", "--noinput")
        manage(env, "seed_catalog")
        try:
            manage(env, "create_org", "bench", "--name", "Benchmark")
        except RuntimeError as exc:
            if "already exists" not in str(exc):  # a caller-provided database keeps its org
                raise
        key = manage(env, "issue_key", "bench", "--label", "make bench").strip().splitlines()[-1]
        manage(env, "set_provider", "openai", "--base-url", f"{fake}/v1", "--api-key-env", "BENCH_FAKE_KEY")
        manage(env, "set_provider", "anthropic", "--base-url", fake, "--api-key-env", "BENCH_FAKE_KEY")

        log("starting the fake provider and the gateway ...")
        fake_proc = children.start([PY, "-m", "tests.fake_provider", "--port", str(args.fake_port)], env=env,
                                   cpus=fake_cpus, log_path=var / "bench-fake.log")
        gateway_proc = children.start([PY, "manage.py", "serve", "--port", str(args.gateway_port)], env=env,
                                      cpus=gateway_cpus, log_path=var / "bench-gateway.log")
        wait_http(f"{fake}/v1/models", fake_proc, "the fake provider")
        wait_http(f"{gateway}/api/ai/health", gateway_proc, "the gateway")
        serve_line = (var / "bench-gateway.log").read_text(errors="replace").splitlines()[:1]

        rows: list[tuple[str, str, WrkResult | None, WrkResult | None, str | None]] = []
        direct_cache: dict[str, tuple[WrkResult, WrkResult]] = {}
        if wrk:
            for name, via_gateway, direct in scenarios(gateway, fake, key):
                direct_id = direct.url + json.dumps(direct.body)
                if direct_id not in direct_cache:
                    log(f"direct: {name} ...")
                    run_wrk(wrk, direct, connections=args.connections, seconds=min(2, seconds), cpus=load_cpus)
                    direct_cache[direct_id] = (
                        run_wrk(wrk, direct, connections=args.connections, seconds=seconds, cpus=load_cpus),
                        run_wrk(wrk, direct, connections=1, seconds=seconds, cpus=load_cpus))
                    rows.append((f"fake provider directly: {name.split(' ', 1)[0]} "
                                 f"{'streaming' if direct.body.get('stream') else 'non-streaming'}",
                                 "direct", *direct_cache[direct_id], None))
                skipped = preflight(via_gateway)
                if skipped:
                    log(f"gateway: {name}: {skipped}")
                    rows.append((f"gateway: {name}", direct_id, None, None, skipped))
                    continue
                log(f"gateway: {name} ...")
                run_wrk(wrk, via_gateway, connections=args.connections, seconds=min(2, seconds), cpus=load_cpus)
                rows.append((f"gateway: {name}", direct_id,
                             run_wrk(wrk, via_gateway, connections=args.connections, seconds=seconds, cpus=load_cpus),
                             run_wrk(wrk, via_gateway, connections=1, seconds=seconds, cpus=load_cpus), None))

        streams = None
        if args.streams > 0:
            target = Target(f"{gateway}/api/ai/chat/completions", chat_body(True), key)
            skipped = preflight(target)
            if skipped:
                log(f"concurrent streams: {skipped}")
            else:
                log(f"{args.streams} concurrent streams of ~{args.stream_seconds:.0f} s ...")
                os.sched_setaffinity(0, load_cpus)  # the client must not compete with the gateway either
                streams = asyncio.run(concurrent_streams(
                    target.url, key, fake, gateway_proc.pid, count=args.streams, seconds=args.stream_seconds,
                    delay_ms=args.stream_delay_ms))
    finally:
        children.kill_all()

    print("\n### Benchmark (`make bench`)\n")
    print(f"{args.connections} connections for requests/s, 1 connection for latency; {seconds:g} s per "
          "measurement; wrk on loopback.\n")
    if rows:
        print(f"| scenario | requests/s @{args.connections} | p50 @1 | p99 @1 | added p50 vs direct |")
        print("|---|---:|---:|---:|---:|")
    for name, direct_id, busy, single, skipped in rows:
        if skipped:
            print(f"| {name} | {skipped} | | | |")
            continue
        added = "-"
        if direct_id != "direct":
            added = f"{single.p50_ms - direct_cache[direct_id][1].p50_ms:+.2f} ms"
        errors = busy.errors + single.errors
        note = f" ({errors} errors)" if errors else ""
        print(f"| {name} | {busy.rps:,.0f}{note} | {fmt_ms(single.p50_ms)} | {fmt_ms(single.p99_ms)} | {added} |")
    if streams:
        errors = ", ".join(f"{n} {k}" for k, n in sorted(streams["errors"].items())) or "none"
        print(f"\n**{streams['count']:,} concurrent streams** ({streams['events']} events, one every "
              f"{streams['delay_ms']:g} ms): {streams['max_open']:,} open at once, {streams['completed']:,} "
              f"completed, errors: {errors}; gateway RSS {streams['rss_before']:.0f} MB before, "
              f"{streams['rss_peak']:.0f} MB at peak, growth **{streams['rss_peak'] - streams['rss_before']:.0f} MB** "
              f"(limit 300 MB); {streams['wall']:.0f} s wall (nominal {args.stream_seconds:g} s).")
        growth = streams["rss_peak"] - streams["rss_before"]
        ok = streams["max_open"] == streams["count"] == streams["completed"] and growth < 300
        print(f"Target (all {streams['count']:,} open at once and completed, growth under 300 MB): "
              f"{'met' if ok else 'NOT met'}.")
    print("\nMachine: " + "; ".join(machine))
    print(f"Gateway: {' '.join(serve_line) or 'manage.py serve'}; database {database_kind}, "
          f"{'Redis' if env.get('REDIS_URL') else 'embedded shared state'}; CPUs gateway {sorted(gateway_cpus)}, "
          f"fake {sorted(fake_cpus)}, load {sorted(load_cpus)}.")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted: child processes stopped.")
        sys.exit(130)
