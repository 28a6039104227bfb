"""Real processes for tests: the production server (`manage.py serve`, granian), management
commands run as separate processes, and a private Redis server that a test may kill."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def database_url() -> str:
    """The test database, for processes started by a test."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    return f"postgres://{user}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_env(**overrides: str) -> dict[str, str]:
    """This environment pointed at the test database, plus `overrides`."""
    # No line per request: tests read these processes' stderr through a pipe they may never drain.
    return {**os.environ, "DATABASE_URL": database_url(), "SECRET_KEY": "test-only", "DEBUG": "0",
            "GATEWAY_REQUEST_LOG": "0", **overrides}


def serve_start(env: dict[str, str], *, workers: int | None = None, stderr=subprocess.PIPE) -> tuple[str, subprocess.Popen]:
    """`manage.py serve` on a free port, once its health check answers 200."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port), *(["--workers", str(workers)] if workers else [])],
        cwd=BASE_DIR, env=env,
        stdout=subprocess.DEVNULL, stderr=stderr,
        # Its own process group, so stopping it can reach granian's workers too: a worker orphaned
        # by a SIGKILL of the main process would keep draining the test's Redis into the test
        # database, under later tests.
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/api/ai/health", timeout=1).status_code == 200:
                return url, proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            _group_kill(proc)
            output = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            raise RuntimeError(f"serve did not start: {output}")
        time.sleep(0.1)


def _group_kill(proc: subprocess.Popen) -> None:
    """SIGKILL the process and everything in its process group (granian's workers)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def process_stop(proc: subprocess.Popen) -> int | None:
    """SIGTERM (a graceful shutdown), then SIGKILL to the whole group if it hangs; and in any case
    no worker of it outlives the test."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # workers left behind by a main process that exited
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait()
    return proc.returncode


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """A management command in its own process, as an operator runs it."""
    return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env,
                          capture_output=True, text=True, timeout=60, check=True)


def redis_start(port: int, *options: str) -> subprocess.Popen:
    """A private, memory-only Redis on loopback that the test may kill (`options`: more
    redis-server arguments, e.g. "--requirepass", "secret")."""
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)


def poll(predicate, timeout: float = 5.0, every: float = 0.1):
    """The first truthy value of `predicate()` within `timeout` seconds, else its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def ledger_rows_wait(count: int, timeout: float = 15.0) -> list:
    """Every ledger row, once there are at least `count` (or the timeout passed): a server
    subprocess writes its rows a moment after answering."""
    from billing.models import UsageRecord

    deadline = time.monotonic() + timeout
    while True:
        rows = list(UsageRecord.objects.order_by("created_at", "id"))
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)
