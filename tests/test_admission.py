"""Admission (billing.admission): budgets of every scope and period, organization rate limits, and
the alerts admission signals.

Period tests call `admit`/`settle` with fixed instants (services take `now`), against the real
ledger and the real shared state (memory, or Redis with REDIS_URL); limits and alerts go through
the live gateway with the official SDKs.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from decimal import Decimal as D

import openai
import pytest

from billing.admission import admit, settle
from billing.budget import OverBudget
from billing.metering import ledger_flush_sync, usage_record_sync
from orgs.selectors import _context_from_db
from tests.fake_provider import OPENAI_CHAT, FakeResponse
from tests.proxy_helpers import set_budget
from tests.helpers import usage_event

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("empty_ledger_buffer")]

UTC = timezone.utc


def spend(org, usd: str, at: datetime, key_id: int | None = None) -> None:
    """A ledger row costing exactly `usd` (mock prices: $1 per million input tokens)."""
    usage_record_sync(usage_event(org, key_id=key_id, started_at=at, prompt_tokens=int(D(usd) * 1_000_000),
                                  completion_tokens=0))
    ledger_flush_sync()


def ask(plaintext: str, usd: str, at: datetime, *, cost: str | None = None):
    """Admit a request that can cost up to `usd` at `at`; settle it at `cost` (its ledger row
    written too) if given. Returns the admission."""
    key = _context_from_db(plaintext)

    async def run():
        admission = await admit(key, started_at=at, prompt_tokens=10, worst_case=D(usd))
        if cost is not None:
            event = usage_event(None, key_id=key.key_id, organization_id=key.organization_id, started_at=at,
                                prompt_tokens=int(D(cost) * 1_000_000), completion_tokens=0)
            await settle(admission, cost=D(cost), tokens=10, event=event)
        return admission

    admission = asyncio.run(run())
    ledger_flush_sync()
    return admission


def refused(plaintext: str, usd: str, at: datetime) -> str:
    with pytest.raises(OverBudget) as exc:
        ask(plaintext, usd, at)
    return exc.value.message


# --- periods ------------------------------------------------------------------------------------


def test_a_day_budget_and_a_month_budget_both_hold(alice_org, alice_key):
    set_budget(alice_org, "1.00", period="month")
    set_budget(alice_org, "0.30", period="day")
    spend(alice_org, "0.60", datetime(2026, 3, 2, 9, tzinfo=UTC))  # this month, another day
    tenth = datetime(2026, 3, 10, 12, tzinfo=UTC)

    ask(alice_key, "0.25", tenth, cost="0.25")
    assert "daily budget of $0.30" in refused(alice_key, "0.25", tenth)

    eleventh = datetime(2026, 3, 11, 0, 0, 1, tzinfo=UTC)  # a new day: the day budget starts again
    ask(alice_key, "0.15", eleventh, cost="0.15")  # the month is now at $1.00
    message = refused(alice_key, "0.01", eleventh)
    assert "monthly budget of $1.00 is used up ($1.0000000000 spent)" in message
    assert "until the operator raises it or the month ends" in message


def test_a_week_budget_follows_the_organizations_time_zone(alice_org, alice_key):
    alice_org.timezone = "America/New_York"
    alice_org.save()
    set_budget(alice_org, "1.00", period="week")
    # Monday 9 March 2026 03:00 UTC is still Sunday evening in New York: last week's spend there.
    spend(alice_org, "0.90", datetime(2026, 3, 9, 3, tzinfo=UTC))
    spend(alice_org, "0.40", datetime(2026, 3, 9, 5, tzinfo=UTC))  # Monday 01:00 in New York
    tuesday = datetime(2026, 3, 10, 12, tzinfo=UTC)

    ask(alice_key, "0.50", tuesday)  # $0.40 + $0.50 fits (a UTC week would hold $1.30 already)
    message = refused(alice_key, "0.20", tuesday)  # $0.40 spent + $0.50 reserved + $0.20
    assert "weekly budget of $1.00 ($0.4000000000 spent, $0.5000000000 reserved" in message


def test_a_key_budget_added_mid_period_counts_what_the_key_already_spent(alice_org, alice_key):
    from orgs.models import ApiKey
    from orgs.services import api_key_issue

    key = ApiKey.objects.get(organization=alice_org)
    other = api_key_issue(organization=alice_org, label="other", actor="test").plaintext
    now = datetime(2026, 3, 20, tzinfo=UTC)
    spend(alice_org, "0.90", datetime(2026, 3, 5, tzinfo=UTC), key_id=key.pk)
    ask(alice_key, "0.50", now, cost="0")  # no budget yet: nothing held

    set_budget(alice_org, "1.00", key=key)

    assert "This request could cost up to $0.20" in refused(alice_key, "0.20", now)
    assert "the key's monthly budget of $1.00 ($0.9000000000 spent" in refused(alice_key, "0.20", now)
    ask(other, "0.50", now)  # the organization's other key has no budget


def test_editing_the_amount_never_resets_spend(alice_org, alice_key):
    now = datetime(2026, 3, 20, tzinfo=UTC)
    set_budget(alice_org, "1.00")
    ask(alice_key, "0.70", now, cost="0.60")

    set_budget(alice_org, "2.00")  # the cached spend is dropped and reloaded from the ledger

    assert "$0.6000000000 spent" in refused(alice_key, "1.50", now)
    ask(alice_key, "1.40", now)


def test_a_total_budget_never_resets(alice_org, alice_key):
    set_budget(alice_org, "1.00", period="total")
    spend(alice_org, "0.50", datetime(2025, 1, 1, tzinfo=UTC))
    spend(alice_org, "0.40", datetime(2026, 3, 1, tzinfo=UTC))
    later = datetime(2026, 6, 1, tzinfo=UTC)

    message = refused(alice_key, "0.20", later)
    assert "the organization's total budget of $1.00 ($0.9000000000 spent" in message
    ask(alice_key, "0.10", later, cost="0.10")
    message = refused(alice_key, "0.01", later)
    assert "total budget of $1.00 is used up" in message and message.endswith("until the operator raises it.")


def test_a_soft_budget_never_refuses_but_a_hard_one_beside_it_does(alice_org, alice_key):
    now = datetime(2026, 3, 20, tzinfo=UTC)
    set_budget(alice_org, "0.10", period="day", mode="soft")
    set_budget(alice_org, "1.00", period="month")
    ask(alice_key, "0.90", now, cost="0.90")  # nine times the soft day budget: alerts only
    assert "monthly budget" in refused(alice_key, "0.20", now)


# --- organization rate limits --------------------------------------------------------------


@pytest.fixture
def _away_from_the_window_edge():
    into = time.time() % 60
    if into > 50:
        time.sleep(60 - into + 0.2)


def _org_limits(org, **limits) -> None:
    for name, value in limits.items():
        setattr(org, name, value)
    org.save()


def _chat(client, model: str = "mock-echo"):
    return client.chat.completions.with_raw_response.create(
        model=model, max_tokens=5, messages=[{"role": "user", "content": "hello"}])


@pytest.mark.usefixtures("_away_from_the_window_edge")
def test_an_organization_rpm_holds_across_its_keys(gateway, alice_org):
    from orgs.services import api_key_issue

    _org_limits(alice_org, rpm_limit=3)
    first = gateway.openai()
    second = gateway.openai(api_key=api_key_issue(organization=alice_org, label="second", actor="test").plaintext)

    assert _chat(first).headers["x-ratelimit-remaining-requests"] == "2"
    assert _chat(second).headers["x-ratelimit-remaining-requests"] == "1"
    assert _chat(first).headers["x-ratelimit-limit-requests"] == "3"
    with pytest.raises(openai.RateLimitError) as exc:
        _chat(second)
    assert "this organization allows 3 requests per minute" in exc.value.message
    assert exc.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(exc.value.response.headers["retry-after"]) <= 60


@pytest.mark.usefixtures("_away_from_the_window_edge")
def test_the_headers_report_the_tightest_limit_and_the_refusal_names_it(gateway, alice_org):
    from orgs.services import api_key_issue

    _org_limits(alice_org, rpm_limit=10)
    key = gateway.openai(api_key=api_key_issue(organization=alice_org, label="tight", rpm_limit=2,
                                               actor="test").plaintext)
    loose = gateway.openai(api_key=api_key_issue(organization=alice_org, label="loose", rpm_limit=50,
                                                 actor="test").plaintext)

    headers = _chat(key).headers  # the key has 1 left, the organization 9
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == ("2", "1")
    headers = _chat(loose).headers  # this key has 49 left, the organization 8
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == ("10", "8")
    _chat(key)
    with pytest.raises(openai.RateLimitError) as exc:
        _chat(key)
    assert "this key allows 2 requests per minute" in exc.value.message
    # Refused requests count nowhere: the organization still has 7 left.
    assert _chat(loose).headers["x-ratelimit-remaining-requests"] == "6"


@pytest.mark.usefixtures("_away_from_the_window_edge")
def test_an_organization_tpm_holds_across_its_keys(gateway, alice_org):
    from ai_proxy.tokens import IMAGE_TOKENS_MAX, tokens_upper_bound
    from orgs.services import api_key_issue

    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
    bound = tokens_upper_bound(body, image_tokens=IMAGE_TOKENS_MAX, unbounded_tokens=1)
    _org_limits(alice_org, tpm_limit=bound + bound // 2)  # one prompt's bound fits, two do not
    first = gateway.openai()
    second = gateway.openai(api_key=api_key_issue(organization=alice_org, label="second", actor="test").plaintext)
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(delay=1.0))  # still in flight when the second comes

    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(_chat, first, "gpt-4o")
        time.sleep(0.5)
        with pytest.raises(openai.RateLimitError) as exc:
            _chat(second, "gpt-4o")
        assert held.result().headers["x-ratelimit-limit-tokens"] == str(bound + bound // 2)
    assert f"this organization allows {bound + bound // 2} tokens per minute" in exc.value.message


# --- alerts signalled by admission -------------------------------------------------------------


@pytest.fixture
def embedded_background(settings):
    from gateway_site import background

    settings.CELERY_TASK_ALWAYS_EAGER = True
    background.clear()
    yield
    background.wait_idle(10)
    background.clear()


def _wait_for(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    return condition()


@pytest.mark.usefixtures("embedded_background")
def test_a_request_crossing_80_percent_creates_one_alert(gateway, alice_org):
    from billing.models import BudgetAlert

    set_budget(alice_org, "10.00", mode="soft", thresholds="80")
    spend(alice_org, "7.99", datetime.now(UTC))
    client = gateway.openai()
    # 20,000 input tokens of gpt-4o ($2.50 per million): $0.05, from $7.99 to $8.04.
    gateway.fake.enqueue(OPENAI_CHAT, FakeResponse(usage={"prompt_tokens": 20_000, "completion_tokens": 0,
                                                          "total_tokens": 20_000}))
    client.chat.completions.create(model="gpt-4o", max_tokens=5, messages=[{"role": "user", "content": "hello"}])
    [alert] = _wait_for(lambda: list(BudgetAlert.objects.all()))
    assert (alert.type, alert.threshold_percent) == ("budget.threshold_crossed", 80)
    for _ in range(2):  # further requests above 80% cross nothing new
        client.chat.completions.create(model="mock-echo", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    time.sleep(1)
    assert BudgetAlert.objects.count() == 1


@pytest.mark.usefixtures("embedded_background")
def test_a_hard_refusal_creates_one_exceeded_alert(gateway, alice_org):
    from billing.models import BudgetAlert

    set_budget(alice_org, "1.00", thresholds="50,80,100")
    spend(alice_org, "0.30", datetime.now(UTC))
    client = gateway.openai()
    for _ in range(3):  # gpt-4o, max_tokens 100,000: a worst case of $1 does not fit
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o", max_tokens=100_000,
                                           messages=[{"role": "user", "content": "hi"}])
    [alert] = _wait_for(lambda: list(BudgetAlert.objects.all()))
    time.sleep(1)
    assert [(a.type, a.threshold_percent) for a in BudgetAlert.objects.all()] == [("budget.exceeded", 100)]
    assert alert.payload["spent_usd"] == "0.30"
