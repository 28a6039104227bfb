"""The production server (`manage.py serve`, granian) as a real subprocess on the test database:
graceful shutdown mid-stream and client disconnects still leave exact ledger rows."""

from __future__ import annotations

import signal
import threading

import httpx
import pytest

from tests.fake_provider import OPENAI_CHAT, FakeResponse
from tests.server_helpers import ledger_rows_wait

pytestmark = pytest.mark.django_db(transaction=True)


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
    [row] = ledger_rows_wait(1)
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
    [row] = ledger_rows_wait(1)
    assert row.client_disconnected is True and row.tokens_estimated is True and row.status == 499
    assert row.completion_tokens > 0 and row.cost > 0
