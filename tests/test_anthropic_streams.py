"""Anthropic Messages streams through the gateway, event by event: native Claude streams passed
through, OpenAI streams re-framed into Anthropic's event sequence, and the ledger row a
finished native stream leaves."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from tests.fake_provider import ANTHROPIC_MESSAGES, FakeResponse, anthropic_stream_events, anthropic_usage
from tests.helpers import ledger_rows

pytestmark = pytest.mark.django_db(transaction=True)


def _events(response: httpx.Response) -> list[tuple[str | None, str]]:
    """(event name, data) per SSE event, in arrival order; comments and blank events skipped."""
    events, name, data = [], None, []
    for line in response.iter_lines():
        if line == "":
            if name is not None or data:
                events.append((name, "\n".join(data)))
            name, data = None, []
        elif line.startswith("event:"):
            name = line[len("event:"):].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:"):].strip())
    if name is not None or data:
        events.append((name, "\n".join(data)))
    return events


# The fake streams "echo: a b" one word per delta: three text deltas.
DELTAS = ["content_block_delta"] * 3


@pytest.mark.parametrize("model,expected", [
    # Native: the fake's own (Anthropic's) order, passed through unchanged.
    ("claude-3-haiku", ["message_start", "content_block_start", "ping", *DELTAS, "content_block_stop",
                        "message_delta", "message_stop"]),
    # Translated: ChatStreamToAnthropic sends ping right after message_start, and opens the text
    # block with the first text delta.
    ("gpt-4o", ["message_start", "ping", "content_block_start", *DELTAS, "content_block_stop",
                "message_delta", "message_stop"]),
])
def test_it_streams_anthropic_events_in_order(gateway, model, expected):
    with httpx.stream("POST", f"{gateway.url}/api/ai/anthropic/v1/messages",
                      headers={"x-api-key": gateway.key, "anthropic-version": "2023-06-01"},
                      json={"model": model, "max_tokens": 50, "stream": True,
                            "messages": [{"role": "user", "content": "a b"}]}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response)
    assert [name for name, _ in events] == expected
    payloads = [json.loads(data) for _, data in events]
    assert [p["type"] for p in payloads] == expected
    assert payloads[0]["message"]["model"] == model
    text = "".join(p["delta"]["text"] for p in payloads if p["type"] == "content_block_delta")
    assert text == "echo: a b"
    assert payloads[-2]["delta"]["stop_reason"] == "end_turn"
    assert payloads[-2]["usage"]["output_tokens"] == 3
    [row] = ledger_rows(1)
    assert row.streamed is True and row.completion_tokens == 3 and row.tokens_estimated is False


def test_it_meters_a_finished_native_stream_with_cache_tokens(gateway):
    gateway.fake.enqueue(ANTHROPIC_MESSAGES, FakeResponse(events=anthropic_stream_events(
        id="msg_s1", model="claude-sonnet-4-5-20250929", pieces=["Hello", " there"],
        usage=anthropic_usage(100, 20, cache_read=1000, cache_write=50))))
    with gateway.anthropic().messages.stream(model="claude-3-5-sonnet", max_tokens=100,
                                             messages=[{"role": "user", "content": "hi"}]) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "Hello there"
    assert final.usage.input_tokens == 100 and final.usage.output_tokens == 20
    [row] = ledger_rows(1)
    assert (row.prompt_tokens, row.completion_tokens, row.cache_read_tokens, row.cache_write_tokens) == (
        1150, 20, 1000, 50)
    assert row.tokens_estimated is False and row.streamed is True and row.status == 200
    assert row.provider == "anthropic" and row.upstream_model == "claude-sonnet-4-5-20250929"
    expected = ((100 * Decimal("3") + 20 * Decimal("15") + 1000 * Decimal("0.30") + 50 * Decimal("3.75"))
                / Decimal(1_000_000)).quantize(Decimal("1e-10"))
    assert row.cost == expected == Decimal("0.0010875000")
