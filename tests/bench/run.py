"""`make bench`: the gateway's throughput, added latency and streaming memory, on loopback, in
both modes side by side: embedded (the default: SQLite, in-process state) and production
(PostgreSQL + Redis, with an organization budget and a key with RPM/TPM limits, high enough never
to refuse, so every request goes through admission and settlement in Redis).

Starts the fake provider (tests/fake_provider.py, standalone) and one `manage.py serve` per mode on
fresh bench databases, then drives them with wrk, which is C and so does not steal the gateway's
CPU the way a Python load generator would. For every scenario the same load also goes to the fake
provider directly, so the table shows what the gateway adds:

- requests/s at 32 connections, and the gateway's own CPU time per request meanwhile (its process
  tree's user + system time over the requests served: on a shared machine this moves far less
  with other processes' load than requests/s; "embedded / production CPU" is the throughput ratio
  a gateway bound by its one core would show),
- p50 and p99 latency at one connection, and the added p50 (gateway minus direct).

Then, per mode, 2,000 concurrent streams held open ~20 s against a slowed fake, measuring the
gateway's resident memory (VmRSS summed over its process tree) before and at peak; and production
with two workers against one.

    make bench                                   # 10 s per measurement, both modes
    make bench ARGS="--quick"                    # 3 s per measurement
    make bench ARGS="--duration 5 --streams 0"   # no streams test
    make bench ARGS="--modes production --streams 500 --skip-wrk"

Production uses --database-url (default postgres://postgres@127.0.0.1:5432/gateway_bench, dropped
and recreated) and --redis-url (default redis://127.0.0.1:6379/12, flushed). Ports 127.0.0.1:19000
(embedded), 19001 (production), 19100 (fake); every child process is killed on exit.
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

    def stop(self, proc: subprocess.Popen) -> None:
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
        if proc in self.procs:
            self.procs.remove(proc)

    def kill_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


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


def _tree(pid: int) -> list[int]:
    """`pid` and all its descendants (granian's workers are child processes)."""
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
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_rss_mb(pid: int) -> float:
    """VmRSS summed over `pid` and all its descendants."""
    total_kb = 0
    for current in _tree(pid):
        try:
            with open(f"/proc/{current}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


def tree_cpu_seconds(pid: int) -> float:
    """User plus system CPU time used so far by `pid` and all its descendants."""
    ticks = 0
    for current in _tree(pid):
        try:
            with open(f"/proc/{current}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


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
    # The gateway's own CPU time per request (its process tree, user + system), when measured:
    # what the gateway costs, far less moved by other processes on a shared machine than req/s.
    cpu_ms: float | None = None


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


MODES = ("embedded", "production")
SCALE_SCENARIOS = 2  # the first N scenarios (OpenAI non-streaming, streaming) for one vs two workers


@dataclass
class Mode:
    """One gateway under test: the embedded default, or production (PostgreSQL + Redis)."""

    name: str
    env: dict[str, str]
    port: int
    key: str = ""
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _redis_db_reset(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def mode_prepare(mode: Mode, fake: str) -> None:
    """A fresh database (and Redis database) for `mode`, migrated and seeded, with the bench
    organization, its key, and the providers pointed at the fake."""
    env = mode.env
    if mode.name == "embedded":
        database = ROOT / "var" / "bench.sqlite3"
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        env["DATABASE_URL"] = f"sqlite:///{database}"
    else:
        from tests.bench.dashboard import _database_reset

        _database_reset(env["DATABASE_URL"])
        _redis_db_reset(env["REDIS_URL"])
    manage(env, "migrate", "--noinput")
    manage(env, "seed_catalog")
    org = ["create_org", "bench", "--name", "Benchmark"]
    key = ["issue_key", "bench", "--label", "make bench"]
    if mode.name == "production":
        # Budgets and limits on, high enough never to refuse: every request is admitted against
        # the key's RPM and TPM and reserved against the organization's hard monthly budget.
        org += ["--monthly-budget", "100000000"]
        key += ["--rpm", "10000000", "--tpm", "2000000000"]
    manage(env, *org)
    mode.key = manage(env, *key).strip().splitlines()[-1]
    manage(env, "set_provider", "openai", "--base-url", f"{fake}/v1", "--api-key-env", "BENCH_FAKE_KEY")
    manage(env, "set_provider", "anthropic", "--base-url", fake, "--api-key-env", "BENCH_FAKE_KEY")


def mode_start(children: Children, mode: Mode, *, workers: int, cpus: set[int], tag: str = "") -> None:
    mode.proc = children.start([PY, "manage.py", "serve", "--port", str(mode.port), "--workers", str(workers)],
                               env=mode.env, cpus=cpus, log_path=ROOT / "var" / f"bench-gateway-{mode.name}{tag}.log")
    wait_http(f"{mode.url}/api/ai/health", mode.proc, f"the {mode.name} gateway")


def mode_stop(children: Children, mode: Mode) -> None:
    children.stop(mode.proc)
    mode.proc = None


def measure(wrk: str, target: Target, *, connections: int, seconds: float, cpus: set[int],
            pid: int | None = None) -> tuple[WrkResult, WrkResult]:
    """(requests/s at `connections`, latency at one connection), after a short warm-up; with the
    gateway's `pid`, its CPU time per request at `connections` too."""
    run_wrk(wrk, target, connections=connections, seconds=min(2, seconds), cpus=cpus)
    cpu_before = tree_cpu_seconds(pid) if pid else 0.0
    busy = run_wrk(wrk, target, connections=connections, seconds=seconds, cpus=cpus)
    if pid and busy.requests:
        busy.cpu_ms = (tree_cpu_seconds(pid) - cpu_before) / busy.requests * 1000
    return busy, run_wrk(wrk, target, connections=1, seconds=seconds, cpus=cpus)


def _safe_targets(database_url: str, redis_url: str) -> None:
    """The bench drops and recreates what it is given: never CI's database or Redis db."""
    from urllib.parse import urlparse

    if urlparse(database_url).path.strip("/") in ("", "test", "postgres"):
        raise SystemExit(f"--database-url must name the bench's own database, not {database_url!r}")
    if (urlparse(redis_url).path.strip("/") or "0") == "15":
        raise SystemExit("--redis-url must not be Redis database 15 (the test suite's)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per measurement (default 10).")
    parser.add_argument("--quick", action="store_true", help="3 s per measurement.")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--gateway-port", type=int, default=19000, help="Embedded gateway; production on +1.")
    parser.add_argument("--fake-port", type=int, default=19100)
    parser.add_argument("--streams", type=int, default=2000, help="Concurrent streams (0 skips that test).")
    parser.add_argument("--stream-seconds", type=float, default=20.0, help="How long each stream lasts.")
    parser.add_argument("--stream-delay-ms", type=float, default=100.0, help="Fake's pause between events.")
    parser.add_argument("--skip-wrk", action="store_true", help="Only the concurrent-streams test.")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="Comma-separated: embedded (SQLite, in-process state), production (PostgreSQL + "
                             "Redis, org budget, key RPM/TPM). Default: both.")
    parser.add_argument("--workers-compare", type=int, default=2,
                        help="Production with this many workers against one (0 skips; needs production).")
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gateway_bench"),
        help="Production's PostgreSQL database (dropped and recreated; env BENCH_DATABASE_URL).")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
                        help="Production's Redis database (flushed; env BENCH_REDIS_URL).")
    parser.add_argument("--ledger-drain", choices=("celery", "process"),
                        default=os.environ.get("GATEWAY_LEDGER_DRAIN", "celery"),
                        help="Production's GATEWAY_LEDGER_DRAIN (default celery: a Celery worker with beat runs "
                             "beside the gateway, on the fake's core, and writes the ledger rows).")
    args = parser.parse_args(argv)
    seconds = 3.0 if args.quick else args.duration
    modes_wanted = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes_wanted or any(m not in MODES for m in modes_wanted):
        raise SystemExit(f"--modes takes a comma-separated list of {', '.join(MODES)}")
    if "production" in modes_wanted:
        _safe_targets(args.database_url, args.redis_url)

    # A SIGTERM (e.g. from make or CI) unwinds like Ctrl-C, so the finally below kills the children.
    signal.signal(signal.SIGTERM, _interrupt)
    raise_fd_limit()
    wrk = None if args.skip_wrk else ensure_wrk()
    ports = {"embedded": args.gateway_port, "production": args.gateway_port + 1}
    for port in [ports[m] for m in modes_wanted] + [args.fake_port]:
        if not port_free(port):
            raise SystemExit(f"127.0.0.1:{port} is in use (a `make run` gateway?): stop it or pick another port.")
    gateway_cpus, fake_cpus, load_cpus = cpu_layout()
    all_cpus = set(os.sched_getaffinity(0))
    machine = machine_info()  # before this process pins itself to the load generator's CPUs
    load_before = os.getloadavg()

    var = ROOT / "var"
    var.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    base |= {"DEBUG": "0", "BENCH_FAKE_KEY": FAKE_KEY, "PYTHONPATH": str(ROOT),
             "DJANGO_SETTINGS_MODULE": "gateway_site.settings"}
    if not base.get("SECRET_KEY") and not (var / "env").exists():
        base["SECRET_KEY"] = secrets.token_urlsafe(50)  # settings read var/env themselves when it exists
    modes = {"embedded": Mode("embedded", dict(base), ports["embedded"]),
             "production": Mode("production", base | {"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
                                                      "GATEWAY_LEDGER_DRAIN": args.ledger_drain},
                                ports["production"])}
    modes = {name: modes[name] for name in modes_wanted}

    fake = f"http://127.0.0.1:{args.fake_port}"
    children = Children()
    # results[scenario name][mode name] = (busy, single) or a skip reason
    results: dict[str, dict[str, tuple[WrkResult, WrkResult] | str]] = {}
    direct: dict[str, tuple[WrkResult, WrkResult]] = {}  # scenario name -> the fake alone
    scale: dict[str, dict[int, WrkResult]] = {}
    streams: dict[str, dict] = {}
    serve_lines: list[str] = []
    pending: tuple[int, int] | None = None
    try:
        for mode in modes.values():
            log(f"setting up the {mode.name} bench database ...")
            mode_prepare(mode, fake)

        log("starting the fake provider and the gateways ...")
        fake_proc = children.start([PY, "-m", "tests.fake_provider", "--port", str(args.fake_port)], env=base,
                                   cpus=fake_cpus, log_path=var / "bench-fake.log")
        wait_http(f"{fake}/v1/models", fake_proc, "the fake provider")
        production = modes.get("production")
        if production and args.ledger_drain == "celery":
            # As deployed: the worker's beat runs ledger_drain every 5 s (rows wait in Redis meanwhile).
            children.start([PY, "-m", "celery", "-A", "gateway_site", "worker", "--beat", "--pool", "solo",
                            "--loglevel", "WARNING", "--schedule", str(var / "bench-celerybeat-schedule")],
                           env=production.env, cpus=fake_cpus, log_path=var / "bench-celery.log")
        for mode in modes.values():
            mode_start(children, mode, workers=1, cpus=gateway_cpus)
            log_path = var / f"bench-gateway-{mode.name}.log"
            serve_lines += [f"{mode.name}: {line}" for line in log_path.read_text(errors="replace").splitlines()[:1]]

        if wrk:
            direct_seen: dict[str, tuple[WrkResult, WrkResult]] = {}
            for name, _, direct_target in scenarios("", fake, ""):
                results[name] = {}
                direct_id = direct_target.url + json.dumps(direct_target.body)
                if direct_id not in direct_seen:
                    log(f"direct: {name} ...")
                    direct_seen[direct_id] = measure(wrk, direct_target, connections=args.connections,
                                                     seconds=seconds, cpus=load_cpus)
                direct[name] = direct_seen[direct_id]
                # The modes one after the other for each scenario, so a machine that gets busier
                # during the run does not favour one of them.
                for mode in modes.values():
                    via_gateway = next(t for n, t, _ in scenarios(mode.url, fake, mode.key) if n == name)
                    skipped = preflight(via_gateway)
                    if skipped:
                        log(f"{mode.name}: {name}: {skipped}")
                        results[name][mode.name] = skipped
                        continue
                    log(f"{mode.name}: {name} ...")
                    results[name][mode.name] = measure(wrk, via_gateway, connections=args.connections,
                                                       seconds=seconds, cpus=load_cpus, pid=mode.proc.pid)

        if args.streams > 0:
            os.sched_setaffinity(0, load_cpus)  # the client must not compete with the gateway either
            for mode in modes.values():
                # The other gateway is stopped: its idle memory and background tasks stay out of it.
                for other in modes.values():
                    if other is not mode and other.proc is not None:
                        mode_stop(children, other)
                if mode.proc is None:
                    mode_start(children, mode, workers=1, cpus=gateway_cpus)
                target = Target(f"{mode.url}/api/ai/chat/completions", chat_body(True), mode.key)
                skipped = preflight(target)
                if skipped:
                    log(f"{mode.name}: concurrent streams: {skipped}")
                    continue
                log(f"{mode.name}: {args.streams} concurrent streams of ~{args.stream_seconds:.0f} s ...")
                streams[mode.name] = asyncio.run(concurrent_streams(
                    target.url, mode.key, fake, mode.proc.pid, count=args.streams, seconds=args.stream_seconds,
                    delay_ms=args.stream_delay_ms))

        if wrk and production and args.workers_compare > 1:
            # One worker against several, each allowed every core (on 2 cores the fake and wrk share them).
            for workers in (1, args.workers_compare):
                for mode in modes.values():
                    if mode.proc is not None:
                        mode_stop(children, mode)
                mode_start(children, production, workers=workers, cpus=all_cpus, tag=f"-{workers}w")
                for name, via_gateway, _ in scenarios(production.url, fake, production.key)[:SCALE_SCENARIOS]:
                    if preflight(via_gateway):
                        continue
                    log(f"production, {workers} worker(s), all cores: {name} ...")
                    run_wrk(wrk, via_gateway, connections=args.connections, seconds=min(2, seconds), cpus=all_cpus)
                    scale.setdefault(name, {})[workers] = run_wrk(
                        wrk, via_gateway, connections=args.connections, seconds=seconds, cpus=all_cpus)
        if production:
            pending = ledger_settled(production.env)
    finally:
        children.kill_all()

    report(args, seconds=seconds, modes=list(modes), results=results, direct=direct, scale=scale,
           streams=streams, machine=machine, serve_lines=serve_lines, load=(load_before, os.getloadavg()),
           cpus=(gateway_cpus, fake_cpus, load_cpus), pending=pending)
    return 0


STREAM_LIMIT_MB = 200


def ledger_settled(env: dict[str, str], wait: float = 15.0) -> tuple[int, int]:
    """(rows in the database, rows still queued in Redis) once the drain had `wait` seconds."""
    import psycopg
    import redis

    client = redis.Redis.from_url(env["REDIS_URL"])
    deadline = time.monotonic() + wait
    while client.llen("gw:billing:ledger") and time.monotonic() < deadline:
        time.sleep(0.5)
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        rows = conn.execute("SELECT count(*) FROM billing_usagerecord").fetchone()[0]
    return rows, client.llen("gw:billing:ledger")


def report(args, *, seconds: float, modes: list[str], results, direct, scale, streams, machine, serve_lines,
           load, cpus, pending) -> None:
    gateway_cpus, fake_cpus, load_cpus = cpus
    print("\n### Benchmark (`make bench`)\n")
    print(f"{args.connections} connections for requests/s, 1 connection for latency; {seconds:g} s per "
          "measurement; wrk on loopback. Embedded: SQLite, in-process state, no budget or limit. Production: "
          "PostgreSQL + Redis, the organization's hard monthly budget and the key's RPM/TPM limits on (never "
          "refusing).\n")
    if results:
        head = ["scenario", f"direct req/s @{args.connections}", "direct p50 @1"]
        for mode in modes:
            head += [f"{mode} req/s", f"{mode} p50 @1", f"{mode} p99 @1", f"{mode} added p50",
                     f"{mode} CPU/request"]
        if len(modes) == 2:
            head += ["production / embedded", "embedded / production CPU"]
        print("| " + " | ".join(head) + " |")
        print("|---|" + "---:|" * (len(head) - 1))
    for name, by_mode in results.items():
        busy_direct, single_direct = direct[name]
        cells = [name, f"{busy_direct.rps:,.0f}", fmt_ms(single_direct.p50_ms)]
        for mode in modes:
            measured = by_mode.get(mode)
            if measured is None or isinstance(measured, str):
                cells += [measured or "-", "", "", "", ""]
                continue
            busy, single = measured
            errors = busy.errors + single.errors
            cells += [f"{busy.rps:,.0f}" + (f" ({errors} errors)" if errors else ""), fmt_ms(single.p50_ms),
                      fmt_ms(single.p99_ms), f"{single.p50_ms - single_direct.p50_ms:+.2f} ms",
                      "-" if busy.cpu_ms is None else f"{busy.cpu_ms:.3f} ms"]
        if len(modes) == 2:
            both = [by_mode.get(m) for m in modes]
            ratio = cpu_ratio = "-"
            if all(isinstance(b, tuple) for b in both):
                ratio = f"{both[1][0].rps / both[0][0].rps:.0%}"
                if both[0][0].cpu_ms and both[1][0].cpu_ms:
                    cpu_ratio = f"{both[0][0].cpu_ms / both[1][0].cpu_ms:.0%}"
            cells += [ratio, cpu_ratio]
        print("| " + " | ".join(cells) + " |")
    for mode in modes:
        s = streams.get(mode)
        if not s:
            continue
        errors = ", ".join(f"{n} {k}" for k, n in sorted(s["errors"].items())) or "none"
        growth = s["rss_peak"] - s["rss_before"]
        ok = s["max_open"] == s["count"] == s["completed"] and growth < STREAM_LIMIT_MB
        print(f"\n**{s['count']:,} concurrent streams, {mode}** ({s['events']} events, one every "
              f"{s['delay_ms']:g} ms): {s['max_open']:,} open at once, {s['completed']:,} completed, errors: "
              f"{errors}; gateway RSS {s['rss_before']:.0f} MB before, {s['rss_peak']:.0f} MB at peak, growth "
              f"**{growth:.0f} MB** (target under {STREAM_LIMIT_MB} MB: {'met' if ok else 'NOT met'}); "
              f"{s['wall']:.0f} s wall (nominal {args.stream_seconds:g} s).")
    if scale:
        counts = sorted({w for by in scale.values() for w in by})
        print(f"\n**Production, {' vs '.join(f'{w} worker(s)' for w in counts)}** (requests/s @{args.connections}; "
              "the gateway may use every core here, and on this machine the load generator and the fake "
              "provider share those cores with it, so more workers mostly compete with them):\n")
        print("| scenario | " + " | ".join(f"{w} worker(s)" for w in counts) + " |")
        print("|---|" + "---:|" * len(counts))
        for name, by in scale.items():
            print(f"| {name} | " + " | ".join(f"{by[w].rps:,.0f}" if w in by else "-" for w in counts) + " |")
    print("\nMachine: " + "; ".join(machine))
    print(f"Load average (1, 5, 15 min) at start {', '.join(f'{v:.2f}' for v in load[0])}, at end "
          f"{', '.join(f'{v:.2f}' for v in load[1])}.")
    for line in serve_lines:
        print(f"Gateway {line}")
    if "production" in modes:
        print(f"Production ledger drain: GATEWAY_LEDGER_DRAIN={args.ledger_drain}"
              + (" (a Celery worker with beat on the fake's core)." if args.ledger_drain == "celery" else "."))
        if pending:
            print(f"Production ledger: {pending[0]:,} rows in PostgreSQL, {pending[1]:,} still queued in Redis "
                  "15 s after the last request.")
    print(f"CPUs: gateway {sorted(gateway_cpus)}, fake {sorted(fake_cpus)}, load {sorted(load_cpus)}.")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted: child processes stopped.")
        sys.exit(130)
