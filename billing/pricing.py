"""Prices and the one cost formula. Money is Decimal end to end, rounded once at the end."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal

# Ten places is a ten-thousandth of a millionth of a dollar: finer than any provider bills.
COST_PLACES = Decimal("1e-10")
_MTOK = Decimal(1_000_000)
_THOUSAND = Decimal(1_000)
# Wide enough that no intermediate product is ever rounded; only the final quantize rounds.
_CONTEXT = Context(prec=60, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million tokens, as in force when the request ran. A null cache price bills at input."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    web_search_per_1k: Decimal | None = None  # USD per 1,000 web searches (server tool uses)


def prices_from_model(model_entry) -> Prices | None:
    """The catalog entry's prices (catalog.selectors.ModelEntry), or None for an unpriced model."""
    if model_entry is None or model_entry.input_price is None or model_entry.output_price is None:
        return None
    return Prices(
        input=model_entry.input_price,
        output=model_entry.output_price,
        cache_read=model_entry.cache_read_price,
        cache_write=model_entry.cache_write_price,
        web_search_per_1k=getattr(model_entry, "web_search_price", None),
    )


def cost_compute(
    *,
    prompt_tokens: int,
    completion_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    web_search_requests: int = 0,
    prices: Prices | None,
) -> Decimal:
    """Cost in USD, quantized once to 10 places (half up).

    `prompt_tokens` is the TOTAL input (OpenAI convention); the cache counts are parts of it.
    Anthropic's `input_tokens` excludes them, so adapters add them up before calling this.
    Web searches are billed per search on top of the tokens. The request path only lets searches
    through on a model with a search price (ai_proxy.priced_options), so an unset price is 0 here.
    """
    if prices is None:
        return Decimal(0).quantize(COST_PLACES)
    if min(prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens, web_search_requests) < 0:
        raise ValueError("token counts cannot be negative")
    uncached = prompt_tokens - cache_read_tokens - cache_write_tokens
    if uncached < 0:
        raise ValueError(
            f"cache tokens ({cache_read_tokens} read + {cache_write_tokens} write) exceed prompt_tokens "
            f"({prompt_tokens}); prompt_tokens must be the total input including cached tokens"
        )
    c = _CONTEXT
    read_price = prices.input if prices.cache_read is None else prices.cache_read
    write_price = prices.input if prices.cache_write is None else prices.cache_write
    total = c.add(
        c.add(c.multiply(Decimal(uncached), prices.input), c.multiply(Decimal(cache_read_tokens), read_price)),
        c.add(c.multiply(Decimal(cache_write_tokens), write_price), c.multiply(Decimal(completion_tokens), prices.output)),
    )
    cost = c.divide(total, _MTOK)
    if web_search_requests and prices.web_search_per_1k is not None:
        cost = c.add(cost, c.divide(c.multiply(Decimal(web_search_requests), prices.web_search_per_1k), _THOUSAND))
    return cost.quantize(COST_PLACES, rounding=ROUND_HALF_UP, context=c)
