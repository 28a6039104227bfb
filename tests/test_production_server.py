"""The production server (`manage.py serve`, granian) as a real subprocess on the test database:
graceful shutdown mid-stream and client disconnects still leave exact ledger rows."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection

from tests.fake_fixtures import point_catalog_at
from tests.fake_provider import OPENAI_CHAT, FakeResponse

pytestmark = pytest.mark.django_db(transaction=True)
BASE_DIR = Path(__file__).resolve().parent.parent


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    return f"postgres://{user}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(fake_provider, monkeypatch, alice_key):
    point_catalog_at(fake_provider.url, monkeypatch)
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": _database_url(), "SECRET_KEY": "test-only", "DEBUG": "0",
           "REDIS_URL": settings.REDIS_URL}
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)], cwd=BASE_DIR, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/api/ai/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"serve did not start: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.1)
    yield url, proc, alice_key, fake_provider
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _ledger(count: int, timeout: float = 15.0):
    from billing.models import UsageRecord

    deadline = time.monotonic() + timeout
    while True:
        rows = list(UsageRecord.objects.order_by("created_at", "id"))
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_a_graceful_shutdown_finishes_the_stream_and_records_it(served):
    url, proc, key, fake = served
    words = " ".join(f"w{i}" for i in range(30))
    fake.enqueue(OPENAI_CHAT, FakeResponse(text=words, event_delay=0.05))
    received: list[bytes] = []
    first_chunk = threading.Event()

    def stream() -> None:
        with httpx.stream("POST", f"{url}/api/ai/chat/completions", timeout=30,
                          headers={"authorization": f"Bearer {key}"},
                          json={"model": "gpt-4o", "stream": True,
                                "messages": [{"role": "user", "content": "count"}]}) as response:
            for chunk in response.iter_raw():
                received.append(chunk)
                first_chunk.set()

    reader = threading.Thread(target=stream)
    reader.start()
    assert first_chunk.wait(10)
    proc.send_signal(signal.SIGTERM)  # mid-stream
    reader.join(30)
    assert proc.wait(timeout=30) == 0
    body = b"".join(received)
    assert body.endswith(b"data: [DONE]\n\n"), "the in-flight stream was allowed to finish"
    [row] = _ledger(1)
    assert row.status == 200 and row.streamed and not row.client_disconnected
    assert row.completion_tokens == 30 and row.tokens_estimated is False  # the fake's own count: 30 words
    assert row.cost > 0


def test_a_client_leaving_mid_stream_is_recorded_by_the_production_server(served):
    url, proc, key, fake = served
    fake.enqueue(OPENAI_CHAT, FakeResponse(text=" ".join(f"w{i}" for i in range(60)), event_delay=0.05))
    with httpx.stream("POST", f"{url}/api/ai/chat/completions", timeout=30,
                      headers={"authorization": f"Bearer {key}"},
                      json={"model": "gpt-4o", "stream": True,
                            "messages": [{"role": "user", "content": "count"}]}) as response:
        for index, _ in enumerate(response.iter_raw()):
            if index >= 3:
                break
    [row] = _ledger(1)
    assert row.client_disconnected is True and row.tokens_estimated is True and row.status == 499
    assert row.completion_tokens > 0 and row.cost > 0
