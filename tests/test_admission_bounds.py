"""Admission reserves an upper bound on the prompt, not an estimate: dense text (one-letter words,
CJK, emoji) and images cannot push a hard budget or a TPM limit over, however many requests race.

The fake provider reports what a real tokenizer would count for these prompts (its usage is
scripted per request), so the ledger holds realistic costs; 40 requests are in flight at once.
"""

from __future__ import annotations

import base64
import concurrent.futures
import struct
import time
import zlib
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

import anthropic
import openai
import pytest

from tests.fake_provider import ANTHROPIC_MESSAGES, OPENAI_CHAT, FakeResponse
from tests.proxy_helpers import set_budget
from tests.helpers import ledger_rows

pytestmark = pytest.mark.django_db(transaction=True)

CONCURRENT = 40


def _png(width: int, height: int) -> str:
    """A real (solid white) PNG of this size as a data: URL: large in pixels, small in bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\xff" * (width * 3) for _ in range(height))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode()


@dataclass
class Dense:
    """One kind of dense prompt: what is sent, through which endpoint and model, and what a real
    tokenizer counts for it."""

    model: str
    endpoint: str  # "openai" (/chat/completions) or "anthropic" (/anthropic/v1/messages)
    content: object
    real_prompt_tokens: int
    input_price: Decimal  # per million, as seeded
    output_price: Decimal

    @property
    def upstream_path(self) -> str:
        return ANTHROPIC_MESSAGES if self.model.startswith("claude") else OPENAI_CHAT

    def real_cost(self) -> Decimal:
        return (self.real_prompt_tokens * self.input_price + self.output_price) / Decimal(1_000_000)


def _dense_cases() -> dict[str, Dense]:
    # gpt-4o-mini at detail high: a 768x2048 image is 8 tiles, 2833 + 8 * 5667 = 48169 tokens.
    image = {"type": "image_url", "image_url": {"url": _png(768, 2048), "detail": "high"}}
    return {
        # " a" is one token in every BPE vocabulary: 20,000 tokens in 40,000 characters.
        "one-letter words": Dense("gpt-4o", "openai", "a " * 20_000, 20_000, Decimal("2.50"), Decimal("10")),
        # One token per CJK character (common ones; rarer ones take two or three).
        "cjk": Dense("claude-3-5-sonnet", "anthropic", "漢字" * 10_000, 20_000, Decimal("3"), Decimal("15")),
        # Two tokens per emoji (a 4-byte character, often split in two).
        "emoji": Dense("claude-3-haiku", "openai", "🙂" * 10_000, 20_000, Decimal("0.25"), Decimal("1.25")),
        "images": Dense("gpt-4o-mini", "openai", [{"type": "text", "text": "Compare these."}, image, image],
                        2 * 48169 + 10, Decimal("0.15"), Decimal("0.60")),
    }


def _scripted_usage(case: Dense, count: int) -> FakeResponse:
    if case.upstream_path == ANTHROPIC_MESSAGES:
        usage = {"input_tokens": case.real_prompt_tokens, "output_tokens": 1}
    else:
        usage = {"prompt_tokens": case.real_prompt_tokens, "completion_tokens": 1,
                 "total_tokens": case.real_prompt_tokens + 1}
    # The delay keeps every admitted request in flight while the others are admitted.
    return FakeResponse(delay=1.0, usage=usage, text="ok")


def _send_concurrently(gateway, case: Dense, api_key: str | None = None) -> list[str]:
    gateway.fake.enqueue(case.upstream_path, *[_scripted_usage(case, i) for i in range(CONCURRENT)])
    kwargs = {"api_key": api_key} if api_key else {}
    client = gateway.openai(**kwargs) if case.endpoint == "openai" else gateway.anthropic(**kwargs)
    messages = [{"role": "user", "content": case.content}]

    def one(_: int) -> str:
        try:
            if case.endpoint == "openai":
                client.chat.completions.create(model=case.model, max_tokens=1, messages=messages)
            else:
                client.messages.create(model=case.model, max_tokens=1, messages=messages)
            return "ok"
        except (openai.RateLimitError, anthropic.RateLimitError):
            return "refused"

    with concurrent.futures.ThreadPoolExecutor(CONCURRENT) as pool:
        return list(pool.map(one, range(CONCURRENT)))


@pytest.mark.parametrize("kind", ["one-letter words", "cjk", "emoji", "images"])
def test_dense_prompts_racing_cannot_overshoot_a_hard_budget(gateway, alice_org, kind):
    case = _dense_cases()[kind]
    # Room for about ten of them, really (budgets are whole cents, as the old monthly field stored them).
    budget = (case.real_cost() * 10).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    set_budget(alice_org, str(budget))

    outcomes = _send_concurrently(gateway, case)

    assert "ok" in outcomes and "refused" in outcomes, outcomes
    rows = ledger_rows(CONCURRENT)
    assert len(rows) == CONCURRENT
    served = [r for r in rows if r.status == 200]
    assert all(r.prompt_tokens == case.real_prompt_tokens for r in served)
    spent = sum(r.cost for r in rows)
    assert spent <= budget, f"{len(served)} requests spent ${spent} of a ${budget} budget"


@pytest.fixture
def _away_from_the_window_edge():
    # TPM windows are calendar minutes: keep the burst inside one.
    into = time.time() % 60
    if into > 50:
        time.sleep(60 - into + 0.2)


@pytest.mark.usefixtures("_away_from_the_window_edge")
@pytest.mark.parametrize("kind", ["one-letter words", "cjk"])
def test_dense_prompts_racing_cannot_overshoot_a_tpm_limit(gateway, alice_org, kind):
    from orgs.services import api_key_issue

    case = _dense_cases()[kind]
    tpm = case.real_prompt_tokens * 5  # room for five of them, really
    key = api_key_issue(organization=alice_org, label="tpm", tpm_limit=tpm).plaintext

    outcomes = _send_concurrently(gateway, case, api_key=key)

    assert "ok" in outcomes and "refused" in outcomes, outcomes
    rows = ledger_rows(CONCURRENT)
    used = sum(r.prompt_tokens + r.completion_tokens for r in rows if r.status == 200)
    assert used <= tpm, f"{outcomes.count('ok')} requests used {used} tokens of a {tpm} TPM limit"


# --- The worst case reserved is what the upstream is asked for --------------------------------


def _hard_budget(org, usd: str) -> None:
    set_budget(org, usd)


def _worst_case(model_id: str, body: dict, max_output: int) -> Decimal:
    from catalog.selectors import catalog_get
    from ai_proxy.tokens import image_tokens_max, tokens_upper_bound
    from asgiref.sync import async_to_sync
    from billing.budget import worst_case_cost
    from billing.pricing import prices_from_model

    model = async_to_sync(catalog_get)().resolve(model_id)
    bound = tokens_upper_bound(body, image_tokens=image_tokens_max(r.upstream_model for r in model.routes),
                               unbounded_tokens=model.context_window)
    return worst_case_cost(prices=prices_from_model(model), prompt_tokens=bound, max_output_tokens=max_output)


HELLO = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize("n", ["abc", 1000, [1], {"a": 1}])
def test_openai_n_in_an_anthropic_body_is_not_part_of_the_reservation(gateway, alice_org, n):
    # max_tokens=1000 on claude-3-5-sonnet ($15/M out) is ~$0.015: fits in $0.05, but 1000
    # choices of it would not (a false 429), and "abc" used to be a 500.
    _hard_budget(alice_org, "0.05")
    reply = gateway.anthropic().messages.create(
        model="claude-3-5-sonnet", max_tokens=1000, messages=HELLO, extra_body={"n": n})
    assert reply.content[0].text == "echo: hello"
    assert gateway.fake.requests_to(ANTHROPIC_MESSAGES)[-1].json["max_tokens"] == 1000


def test_max_completion_tokens_in_an_anthropic_body_does_not_shrink_the_reservation(gateway, alice_org):
    # The upstream is asked for max_tokens=4000 (~$0.06 at $15/M): that, not the 1 token of an
    # OpenAI field Anthropic never reads, is what must fit in the budget.
    _hard_budget(alice_org, "0.01")
    body = {"model": "claude-3-5-sonnet", "max_tokens": 4000, "messages": HELLO, "max_completion_tokens": 1}
    with pytest.raises(anthropic.RateLimitError) as exc:
        gateway.anthropic().messages.create(
            model="claude-3-5-sonnet", max_tokens=4000, messages=HELLO, extra_body={"max_completion_tokens": 1})
    assert exc.value.body["error"]["type"] == "billing_error"
    assert f"could cost up to ${_worst_case('claude-3-5-sonnet', body, 4000)}," in exc.value.message
    assert gateway.fake.requests_to(ANTHROPIC_MESSAGES) == []


def test_an_openai_body_without_max_tokens_reserves_the_default_the_translation_sends(gateway, alice_org):
    _hard_budget(alice_org, "0.5")
    gateway.openai().chat.completions.create(model="claude-3-5-sonnet", messages=HELLO)
    sent = gateway.fake.requests_to(ANTHROPIC_MESSAGES)[-1].json["max_tokens"]
    assert sent == 8192  # the seeded max_output_tokens of claude-3-5-sonnet

    _hard_budget(alice_org, "0.01")
    with pytest.raises(openai.RateLimitError) as exc:
        gateway.openai().chat.completions.create(model="claude-3-5-sonnet", messages=HELLO, n=2)
    body = {"model": "claude-3-5-sonnet", "messages": HELLO, "n": 2}
    expected = _worst_case("claude-3-5-sonnet", body, 8192 * 2)
    assert f"could cost up to ${expected}," in exc.value.message
