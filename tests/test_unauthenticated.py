"""Requests without a usable key leave no ledger row (a flood would fill the ledger with rows
that belong to nobody): they are counted per process and summarised in the log instead."""

from __future__ import annotations

import logging
import time
from collections import Counter

import anthropic
import httpx
import openai
import pytest

from ai_proxy import unauthenticated

pytestmark = pytest.mark.django_db(transaction=True)
BAD_KEY = "dm_alice_prod_" + "Z" * 40


def _settled_ledger_count() -> int:
    from ai_proxy import metering as proxy_metering
    from billing.metering import ledger_flush_sync
    from billing.models import UsageRecord

    deadline = time.monotonic() + 5
    while proxy_metering._pending and time.monotonic() < deadline:
        time.sleep(0.01)
    ledger_flush_sync()
    return UsageRecord.objects.count()


def test_refused_requests_are_counted_not_written_to_the_ledger(gateway, caplog, monkeypatch):
    # A fresh log interval: earlier tests' refusals are not this one's.
    monkeypatch.setattr(unauthenticated, "_last_log", time.monotonic())
    monkeypatch.setattr(unauthenticated, "_since_log", Counter())
    before = unauthenticated.unauthenticated_totals()
    messages = [{"role": "user", "content": "hi"}]
    with caplog.at_level(logging.WARNING, logger="ai_proxy.unauthenticated"):
        for _ in range(5):
            with pytest.raises(openai.AuthenticationError):
                gateway.openai(api_key=BAD_KEY).chat.completions.create(model="mock-echo", messages=messages)
            with pytest.raises(anthropic.AuthenticationError):
                gateway.anthropic(api_key=BAD_KEY).messages.create(model="mock-echo", max_tokens=5, messages=messages)
        no_key = httpx.post(f"{gateway.url}/api/ai/chat/completions", json={"model": "mock-echo", "messages": messages})
        assert no_key.status_code == 401
        # The interval has passed: the next refusal writes one summary line for all of them.
        monkeypatch.setattr(unauthenticated, "_last_log", time.monotonic() - unauthenticated.LOG_EVERY_SECONDS)
        with pytest.raises(openai.AuthenticationError):
            gateway.openai(api_key=BAD_KEY).chat.completions.create(model="mock-echo", messages=messages)

    assert _settled_ledger_count() == 0
    after = unauthenticated.unauthenticated_totals()
    assert after.get("invalid_api_key", 0) - before.get("invalid_api_key", 0) == 11
    assert after.get("missing_api_key", 0) - before.get("missing_api_key", 0) == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "ai_proxy.unauthenticated"]
    assert len(lines) == 1, lines
    assert "refused 12 unauthenticated requests" in lines[0]
    assert "invalid_api_key=11" in lines[0] and "missing_api_key=1" in lines[0]
    assert BAD_KEY[:20] not in caplog.text


def test_an_authenticated_request_is_still_metered(gateway):
    gateway.openai().chat.completions.create(model="mock-echo", messages=[{"role": "user", "content": "hi"}])
    assert _settled_ledger_count() == 1
