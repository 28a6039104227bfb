from decimal import Decimal as D

import pytest

from catalog.selectors import catalog_get_sync
from billing.pricing import Prices, cost_compute, prices_from_model

SONNET = Prices(input=D("3"), output=D("15"), cache_read=D("0.30"), cache_write=D("3.75"))


def test_it_computes_exact_cost_for_input_and_output():
    # 1,234 x $3/M + 567 x $15/M = 0.003702 + 0.008505
    cost = cost_compute(prompt_tokens=1234, completion_tokens=567, prices=SONNET)
    assert cost == D("0.012207")
    assert cost.as_tuple().exponent == -10


def test_it_prices_cache_tokens_as_parts_of_the_prompt():
    # prompt 10,000 = 2,000 uncached + 7,000 cache read + 1,000 cache write; 500 out.
    cost = cost_compute(
        prompt_tokens=10_000, completion_tokens=500, cache_read_tokens=7_000, cache_write_tokens=1_000, prices=SONNET
    )
    expected = (2000 * D("3") + 7000 * D("0.30") + 1000 * D("3.75") + 500 * D("15")) / 1_000_000
    assert cost == expected == D("0.01935")


def test_it_bills_cache_tokens_at_input_price_when_no_cache_price():
    prices = Prices(input=D("2.5"), output=D("10"), cache_read=None, cache_write=None)
    cost = cost_compute(prompt_tokens=100, completion_tokens=0, cache_read_tokens=60, cache_write_tokens=40, prices=prices)
    assert cost == D("0.00025")


def test_it_rounds_once_half_up_to_ten_places():
    # 1 token at $0.000015/M = 1.5e-11 -> 2e-11 only if rounded once at the end, half up.
    prices = Prices(input=D("0.000015"), output=D("0.000015"))
    assert cost_compute(prompt_tokens=1, completion_tokens=0, prices=prices) == D("0.0000000000")
    assert cost_compute(prompt_tokens=1, completion_tokens=2, prices=prices) == D("0.0000000000")
    assert cost_compute(prompt_tokens=3, completion_tokens=7, prices=prices) == D("0.0000000002")  # 1.5e-10 -> 2e-10
    # Per-part rounding would give 0 + 0 (4.5e-11 each); the single rounding keeps the sum, 9e-11 -> 1e-10.
    assert cost_compute(prompt_tokens=3, completion_tokens=3, prices=prices) == D("0.0000000001")


def test_it_is_zero_without_prices():
    assert cost_compute(prompt_tokens=10, completion_tokens=10, prices=None) == D("0")


def test_it_rejects_cache_tokens_above_the_prompt_total():
    with pytest.raises(ValueError, match="prompt_tokens must be the total input"):
        cost_compute(prompt_tokens=10, completion_tokens=1, cache_read_tokens=11, prices=SONNET)


def test_it_rejects_negative_tokens():
    with pytest.raises(ValueError):
        cost_compute(prompt_tokens=-1, completion_tokens=1, prices=SONNET)


@pytest.mark.django_db
def test_it_reads_prices_from_the_catalog(catalog):
    model = catalog_get_sync().resolve("claude-3-5-sonnet")
    assert prices_from_model(model) == SONNET
    assert prices_from_model(None) is None
