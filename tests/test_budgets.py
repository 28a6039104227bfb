"""Hard monthly budgets: reservations keep concurrent requests from overshooting."""

from __future__ import annotations

import concurrent.futures
from decimal import Decimal

import anthropic
import openai
import pytest
from django.utils import timezone

from tests.fake_provider import OPENAI_CHAT, FakeResponse
from tests.proxy_helpers import set_budget
from tests.helpers import ledger_rows

pytestmark = pytest.mark.django_db(transaction=True)


def _budget(org, usd: str, mode: str = "hard") -> None:
    # The organization's month budget (was Organization.monthly_budget_usd / budget_mode).
    set_budget(org, usd, mode="soft" if mode == "alert" else mode)


def _ask(client, **kwargs):
    kwargs.setdefault("model", "mock-echo")
    kwargs.setdefault("max_tokens", 100)
    return client.chat.completions.create(messages=[{"role": "user", "content": "hello"}], **kwargs)


def test_it_refuses_requests_once_the_budget_is_used_up(gateway, alice_org):
    # gpt-4o: $2.50 in, $10 out per million. Each reply below uses 1,000 output tokens (~$0.01);
    # the worst case reserved for max_tokens=1000 is ~$0.01 too.
    _budget(alice_org, "0.05")
    for _ in range(10):
        gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(usage={"completion_tokens": 1000, "total_tokens": 1005}))
    client = gateway.openai()
    refused = None
    for _ in range(10):
        try:
            _ask(client, model="gpt-4o", max_tokens=1000)
        except openai.RateLimitError as exc:
            refused = exc
            break
    assert refused is not None, "the budget must stop requests"
    assert refused.code == "budget_exceeded" and refused.type == "insufficient_quota"
    assert refused.response.headers["x-should-retry"] == "false"
    assert "monthly budget of $0.05" in refused.message
    rows = ledger_rows(5)
    assert [r.status for r in rows] == [200, 200, 200, 200, 429]
    assert sum(r.cost for r in rows) <= Decimal("0.05")
    assert rows[-1].error_type == "budget_exceeded"


def test_concurrent_requests_cannot_overshoot_a_hard_budget(gateway, alice_org):
    # gpt-4o: $2.50 in, $10 out per million; max_tokens=1000 makes the worst case ~$0.01 each.
    _budget(alice_org, "0.04")
    for _ in range(12):
        gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(delay=0.5, usage={"completion_tokens": 1000,
                                                                         "total_tokens": 1005}))
    client = gateway.openai()

    def one(_):
        try:
            _ask(client, model="gpt-4o", max_tokens=1000)
            return "ok"
        except openai.RateLimitError:
            return "refused"

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(one, range(12)))
    assert outcomes.count("ok") == 3, outcomes  # 3 worst cases of ~$0.01 fit in $0.04; a 4th does not
    rows = ledger_rows(12)
    assert sum(r.cost for r in rows) <= Decimal("0.04")


def test_alert_mode_does_not_refuse(gateway, alice_org):
    _budget(alice_org, "0.00", mode="alert")  # the old field stored "0.00001" as 0.00 too
    for _ in range(3):
        _ask(gateway.openai())


def test_it_answers_a_billing_error_on_the_anthropic_route(gateway, alice_org):
    _budget(alice_org, "0.00")
    with pytest.raises(anthropic.RateLimitError) as exc:
        gateway.anthropic().messages.create(model="mock-echo", max_tokens=50,
                                            messages=[{"role": "user", "content": "hi"}])
    assert exc.value.body["error"]["type"] == "billing_error"


def test_it_counts_what_was_already_spent_this_month(gateway, alice_org):
    from billing.models import UsageRecord

    UsageRecord.objects.create(request_id="req_earlier", created_at=timezone.now(), organization=alice_org,
                               endpoint="openai", status=200, cost=Decimal("1.0000000000"))
    _budget(alice_org, "1.00")
    with pytest.raises(openai.RateLimitError) as exc:
        _ask(gateway.openai())
    assert "used up ($1.0000000000 spent)" in exc.value.message


def test_the_worst_case_counts_every_choice(gateway, alice_org):
    _budget(alice_org, "0.04")
    client = gateway.openai()
    _ask(client, model="gpt-4o", max_tokens=1000)  # one choice: ~$0.01 fits
    with pytest.raises(openai.RateLimitError) as exc:
        _ask(client, model="gpt-4o", max_tokens=1000, n=5)  # five choices could cost ~$0.05
    assert "could cost up to $0.05" in exc.value.message


def test_spend_made_in_alert_mode_counts_once_the_budget_turns_hard(gateway, alice_org):
    _budget(alice_org, "0.02", mode="alert")
    for _ in range(3):
        gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(usage={"completion_tokens": 1000, "total_tokens": 1005}))
        _ask(gateway.openai(), model="gpt-4o", max_tokens=1000)  # ~$0.01 each, over the budget: alert only
    ledger_rows(3)
    _budget(alice_org, "0.02", mode="hard")
    with pytest.raises(openai.RateLimitError) as exc:
        _ask(gateway.openai())
    assert "is used up" in exc.value.message


def test_a_reservation_never_settled_frees_itself(db, alice_org, alice_key, monkeypatch):
    import asyncio

    from billing import admission, budget
    from orgs.selectors import _context_from_db

    monkeypatch.setattr(admission, "RESERVATION_SECONDS", 0.3)
    _budget(alice_org, "1.00")
    key = _context_from_db(alice_key)
    now = timezone.now()

    def reserve():
        return asyncio.run(admission.admit(key, started_at=now, prompt_tokens=10, worst_case=Decimal("0.60")))

    assert reserve().reservation_id  # held by a gateway that then died: never settled
    with pytest.raises(budget.OverBudget):
        reserve()
    import time

    time.sleep(0.4)
    assert reserve().reservation_id
