"""Crashes and restarts of the production server (`manage.py serve`, granian) as real
subprocesses and real signals: completed requests survive SIGKILL, requests in flight at a crash
become ledger rows flagged lost in flight (charged their worst case), SIGTERM drains for at most
GATEWAY_DRAIN_SECONDS, and a worker that dies is replaced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from tests.fake_fixtures import point_catalog_at
from tests.fake_provider import FakeResponse, OPENAI_CHAT
from tests.proxy_helpers import set_budget
from tests.server_helpers import BASE_DIR, ledger_rows_wait
from tests.server_helpers import database_url as _database_url
from tests.server_helpers import free_port as _free_port

pytestmark = pytest.mark.django_db(transaction=True)
needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")


class Server:
    """`manage.py serve` in its own process group (a crash takes the whole instance: granian's
    main process and its workers)."""

    def __init__(self, env: dict[str, str], workers: int = 1) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(self.port), "--workers", str(workers)],
            cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/api/ai/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"serve did not start: {self.proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


@pytest.fixture
def serve_env(fake_provider, monkeypatch, alice_key, tmp_path):
    point_catalog_at(fake_provider.url, monkeypatch)
    env = {**os.environ, "DATABASE_URL": _database_url(), "SECRET_KEY": "test-only", "DEBUG": "0",
           "REDIS_URL": "", "BILLING_JOURNAL_DIR": str(tmp_path / "journal"), "BILLING_INFLIGHT_TTL_SECONDS": "2"}
    servers: list[Server] = []

    def start(workers: int = 1, **overrides: str) -> Server:
        server = Server({**env, **overrides}, workers=workers)
        servers.append(server)
        return server

    yield start, alice_key, fake_provider
    for server in servers:
        server.stop()


def _chat(url: str, key: str, **body) -> httpx.Response:
    return httpx.post(f"{url}/api/ai/chat/completions", headers={"authorization": f"Bearer {key}"}, timeout=30,
                      json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}], **body})


def _stream_in_background(url: str, key: str, **body) -> threading.Event:
    """Start a stream and return once its first chunk arrived; the reader keeps it open."""
    first = threading.Event()

    def read() -> None:
        try:
            with httpx.stream("POST", f"{url}/api/ai/chat/completions", timeout=60,
                              headers={"authorization": f"Bearer {key}"},
                              json={"model": "gpt-4o", "stream": True, "max_tokens": 100,
                                    "messages": [{"role": "user", "content": "count slowly"}], **body}) as response:
                for _ in response.iter_raw():
                    first.set()
        except httpx.TransportError:
            pass  # the server was killed under it

    threading.Thread(target=read, daemon=True).start()
    assert first.wait(15), "the stream started"
    return first


def _assert_charged_worst_case(row) -> None:
    from catalog.models import CatalogModel
    from billing.budget import worst_case_cost
    from billing.pricing import Prices

    assert row.lost_in_flight is True and row.status == 0 and row.error_type == "lost_in_flight"
    assert row.tokens_estimated is True and row.streamed is True
    assert row.completion_tokens == 100, "the request's max_tokens"
    model = CatalogModel.objects.get(public_id="gpt-4o")
    prices = Prices(input=model.input_price_per_mtok, output=model.output_price_per_mtok,
                    cache_read=model.cache_read_price_per_mtok, cache_write=model.cache_write_price_per_mtok)
    assert (row.input_price, row.output_price) == (prices.input, prices.output)
    assert row.cost == worst_case_cost(prices=prices, prompt_tokens=row.prompt_tokens, max_output_tokens=100)
    assert row.cost >= Decimal(100) * prices.output / 1_000_000 > 0


@pytest.mark.parametrize("mode", ["embedded", pytest.param("redis", marks=needs_redis)])
def test_completed_requests_survive_sigkill(serve_env, mode):
    start, key, _ = serve_env
    env = {"REDIS_URL": settings.REDIS_URL} if mode == "redis" else {}
    server = start(**env)
    for _ in range(20):
        assert _chat(server.url, key).status_code == 200
    server.kill()  # as soon as the 20 responses are in
    start(**env)  # the next start replays the dead process's journal (or drains Redis) before serving
    rows = ledger_rows_wait(20, timeout=10)
    assert len(rows) == 20 and all(row.status == 200 and not row.lost_in_flight for row in rows), [(r.request_id, r.status, r.lost_in_flight, r.error_type) for r in rows if r.status != 200]
    assert len({row.request_id for row in rows}) == 20


def test_a_stream_in_flight_at_sigkill_is_charged_its_worst_case_at_the_next_start(serve_env):
    start, key, fake = serve_env
    server = start()
    fake.enqueue(OPENAI_CHAT, FakeResponse(text=" ".join(f"w{i}" for i in range(60)), event_delay=0.2))
    _stream_in_background(server.url, key)
    server.kill()
    assert ledger_rows_wait(1, timeout=1) == [], "nothing was metered before the crash"
    start()
    [row] = ledger_rows_wait(1, timeout=10)
    _assert_charged_worst_case(row)


@needs_redis
def test_with_redis_another_process_records_a_crashed_stream_and_frees_its_reservation(serve_env, alice_org):
    from billing import tasks
    from billing.budget import BudgetSlot
    from core.shared_state import shared_state
    from orgs.selectors import _context_from_db

    set_budget(alice_org, "100")
    start, key, fake = serve_env
    server = start(REDIS_URL=settings.REDIS_URL)
    fake.enqueue(OPENAI_CHAT, FakeResponse(text=" ".join(f"w{i}" for i in range(60)), event_delay=0.2))
    _stream_in_background(server.url, key)
    [rule] = _context_from_db(key).budgets
    reserved_key = BudgetSlot.of(rule, time_now()).keys()[1]
    assert int(shared_state().get_sync(reserved_key)) > 0, "the stream holds a reservation"
    server.kill()
    deadline = time.monotonic() + 15  # the dead process's heartbeat lasts 2 s here
    rows = []
    while not rows and time.monotonic() < deadline:
        tasks.ledger_drain()  # the Celery task, as beat runs it
        rows = ledger_rows_wait(1, timeout=0.5)
    [row] = rows
    _assert_charged_worst_case(row)
    assert int(shared_state().get_sync(reserved_key)) == 0, "the reservation was settled, not left to expire"


def time_now():
    from django.utils import timezone

    return timezone.now()


@needs_redis
def test_a_worker_killed_with_sigkill_is_replaced(serve_env):
    start, key, _ = serve_env
    server = start(workers=2, REDIS_URL=settings.REDIS_URL)
    victim = server.workers()[0]
    os.kill(victim, signal.SIGKILL)
    time.sleep(1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(server.workers()) < 2:
        time.sleep(0.2)
    assert server.proc.poll() is None, "the instance is still up"
    assert victim not in server.workers() and len(server.workers()) == 2, "a new worker took its place"
    assert all(_chat(server.url, key).status_code == 200 for _ in range(10))


def test_sigterm_drains_for_at_most_gateway_drain_seconds_then_the_stalled_stream_is_charged(serve_env):
    start, key, fake = serve_env
    server = start(GATEWAY_DRAIN_SECONDS="3")
    # One event every 5 s: the stream is far from done when the drain time is up.
    fake.enqueue(OPENAI_CHAT, FakeResponse(text=" ".join(f"w{i}" for i in range(60)), event_delay=5))
    _stream_in_background(server.url, key)
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=3 + 10)  # before: granian waited for the stream for minutes
    assert time.monotonic() - t0 < 3 + 10
    # The worker was stopped mid-stream: its request is recorded lost in flight by the next start.
    start()
    [row] = ledger_rows_wait(1, timeout=10)
    _assert_charged_worst_case(row)
