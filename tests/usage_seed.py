"""Seeded ledger traffic for the dashboard tests: a few organizations, keys, models, statuses,
latencies and cache tokens over the last days, written through the real ledger path."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from billing.metering import ledger_flush_sync, usage_record_sync
from tests.helpers import usage_event


def record_at(org, when: datetime, **fields):
    return usage_record_sync(usage_event(org, started_at=when, **fields))


def seed_traffic(alice_org, charlie_org, *, now: datetime | None = None) -> None:
    """Alice: 3 days of mock-echo and gpt-4o on two keys, with errors, streams and cache hits;
    Charlie: a little mock-echo. The current hour has rows too (read from the ledger)."""
    now = now or datetime.now(timezone.utc)
    keys = list(alice_org.api_keys.order_by("pk"))
    for back in range(0, 72, 5):
        when = now - timedelta(hours=back, minutes=1)
        for i, key in enumerate(keys):
            record_at(alice_org, when, key_id=key.pk, prompt_tokens=1000 + back, completion_tokens=200 + i,
                      cache_read_tokens=300 if i == 0 else 0, latency_ms=80 + 40 * back, ttft_ms=30 + back, streamed=True)
            record_at(alice_org, when, key_id=key.pk, public_model="gpt-4o", prompt_tokens=500, completion_tokens=50,
                      latency_ms=1500)
        record_at(alice_org, when, key_id=keys[0].pk, status=502, error_type="api_error", prompt_tokens=0,
                  completion_tokens=0, latency_ms=3000)
        record_at(charlie_org, when, prompt_tokens=7000, completion_tokens=700, latency_ms=200)
    record_at(alice_org, now, key_id=keys[0].pk, prompt_tokens=11, completion_tokens=7)
    ledger_flush_sync()
