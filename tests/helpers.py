"""Helpers shared by the test modules: ledger rows, usage events, spend, admin forms, waiting.

One module, so no test module imports another (importing a test module also collects its tests'
fixtures and runs its autouse ones where they were not meant to). Shared fixtures live in
tests/fixtures.py, which conftest.py loads as a plugin.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import date, datetime, time as clock_time, timezone
from decimal import Decimal as D
from html.parser import HTMLParser

from rest_framework.test import APIClient

from billing import metering
from billing.metering import UsageEvent, ledger_flush_sync, usage_record_sync
from billing.pricing import Prices

MOCK_PRICES = Prices(input=D("1"), output=D("2"), cache_read=D("0.10"), cache_write=D("1.25"))


# --- the ledger ---------------------------------------------------------------------------------


def usage_event(org=None, key_id=None, **overrides) -> UsageEvent:
    """A successful non-streamed mock-echo request by `org`; override any field."""
    fields = dict(
        request_id="req_" + uuid.uuid4().hex,
        started_at=datetime.now(timezone.utc),
        endpoint="openai",
        organization_id=org.pk if org else None,
        api_key_id=key_id if key_id is not None else (org.api_keys.first().pk if org and org.api_keys.exists() else None),
        public_model="mock-echo",
        model_id=None,
        provider="mock",
        upstream_model="mock-echo",
        route_id=None,
        streamed=False,
        status=200,
        error_type="",
        prompt_tokens=100,
        completion_tokens=20,
        latency_ms=12,
        ttft_ms=None,
        client_ip="127.0.0.1",
        prices=MOCK_PRICES,
    )
    fields.update(overrides)
    return UsageEvent(**fields)


def at(day: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.combine(day, clock_time(hour, minute), tzinfo=timezone.utc)


def record(org, day: date, hour: int = 12, **fields):
    """One ledger row for `org` at `hour` UTC on `day` (a usage_event with `fields` overridden)."""
    return usage_record_sync(usage_event(org, started_at=at(day, hour), **fields))


def spend(org, usd: str, at: datetime, key=None) -> None:
    """Record a request costing exactly `usd` (mock prices: $1 per million input tokens)."""
    tokens = int(D(usd) * 1_000_000)
    usage_record_sync(usage_event(org, key_id=key.pk if key else None, started_at=at, prompt_tokens=tokens,
                                  completion_tokens=0))
    ledger_flush_sync()


def ledger_rows(count: int, timeout: float = 10.0):
    """This test's ledger once `count` rows are in (metering runs just after the response)."""
    from billing.models import UsageRecord
    from tests.conftest import TEST_CLOCK

    deadline = time.monotonic() + timeout
    while True:
        ledger_flush_sync()
        rows = list(UsageRecord.objects.filter(created_at__gte=TEST_CLOCK["started_at"]).order_by("created_at", "id"))
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def stop_background_flushers() -> None:
    """Stop flushers left running by earlier tests (the live server's loop lives all session), so
    only this test drains the buffer; the next async usage_record starts them again."""
    for loop, task in list(metering._flushers.items()):
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:  # that loop is closed: its task is gone with it
            continue
        deadline = time.monotonic() + 2
        while not task.done() and time.monotonic() < deadline:
            time.sleep(0.005)
    with metering._write_lock:  # and wait out a batch one of them had in flight
        pass


# --- APIs and pages -----------------------------------------------------------------------------


def get_usage(key, **params):
    response = APIClient().get("/api/ai/usage", params, HTTP_AUTHORIZATION=f"Bearer {key}")
    # Decimal parsing: a float would hide exactly the rounding this endpoint promises not to do.
    body = json.loads(response.content, parse_float=D) if response.content else None
    return response, body


class _FormReader(HTMLParser):
    """Collects what a browser would submit from one <form>: the page's own defaults."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.data: dict[str, list[str]] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def _add(self, name: str, value: str) -> None:
        self.data.setdefault(name, []).append(value)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside or "name" not in a and tag != "option":
            return
        if tag == "input":
            kind = a.get("type", "text")
            if kind in ("submit", "button", "file", "image"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self._add(a["name"], a.get("value", "on" if kind == "checkbox" else ""))
        elif tag == "select":
            self._select = a["name"]
            self.data.setdefault(a["name"], [])
        elif tag == "option" and self._select and "selected" in a:
            self._add(self._select, a.get("value", ""))
        elif tag == "textarea":
            self._textarea = a["name"]
            self._add(a["name"], "")

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea][-1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def form_data(html: str, form_id: str) -> dict[str, list[str]]:
    reader = _FormReader(form_id)
    reader.feed(html)
    assert reader.data, f"form {form_id} not found"
    return {k: v for k, v in reader.data.items() if v}


# --- waiting ------------------------------------------------------------------------------------


def wait_for(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the background thread")
