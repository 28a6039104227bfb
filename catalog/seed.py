"""The seed catalog: providers, models, aliases, routes and list prices.

Prices are USD per million tokens, copied from each provider's public pricing page; the
`price_source` of every model says which page and when. They were recorded from memory of those
pages as of mid-2025 (this workplace cannot reach the web), so an operator should confirm them in
the admin before billing real money. Public ids are the catalog's stable names; each routes to the
provider model currently serving that family, and the dated ids apps already send are aliases.

Seeding is idempotent: rows that exist are left as the operator has them.
"""

from __future__ import annotations

from decimal import Decimal as D

from django.db import transaction

from .models import CatalogModel, ModelAlias, Provider, Route

PROVIDERS = [
    # name, kind, base_url, api_key_env
    ("anthropic", "anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY"),
    ("openai", "openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    ("xai", "openai", "https://api.x.ai/v1", "XAI_API_KEY"),
    ("perplexity", "openai", "https://api.perplexity.ai", "PERPLEXITY_API_KEY"),
    ("mock", "mock", "", ""),
]


def seed_provider_kinds() -> list[str]:
    """The provider kinds the seed catalog uses: each must have an adapter (checked at startup)."""
    return sorted({kind for _, kind, _, _ in PROVIDERS})


ANTHROPIC_PRICES = "anthropic.com/pricing (API, per MTok; cache write = 5-minute write), recorded 2025-06"
OPENAI_PRICES = "openai.com/api/pricing (standard tier; cache write billed as input), recorded 2025-06"
# Embedding models bill input tokens only: output is 0 and the cache prices equal the input price.
OPENAI_EMBEDDING_PRICES = "developers.openai.com/api/docs/models/{} (Embeddings, per 1M input tokens), recorded 2026-12"

MODELS = [
    {
        "public_id": "claude-3-5-sonnet",
        "display_name": "Claude Sonnet",
        "provider_label": "Anthropic",
        "best_for": "Writing, analysis and code; the balanced default",
        "speed_tier": "medium",
        "cost_tier": "medium",
        "prices": (D("3"), D("15"), D("0.30"), D("3.75")),
        "price_source": ANTHROPIC_PRICES,
        "max_output_tokens": 8192,
        "context_window": 200000,
        "routes": [("anthropic", "claude-sonnet-4-5-20250929")],
        "aliases": [
            "claude-3-5-sonnet-20241022",
            "claude-3-5-sonnet-20240620",
            "claude-3-5-sonnet-latest",
            "claude-3-7-sonnet-20250219",
            "claude-sonnet-4-20250514",
            "claude-sonnet-4-5-20250929",
            "claude-sonnet-4-5",
        ],
    },
    {
        "public_id": "claude-3-opus",
        "display_name": "Claude Opus",
        "provider_label": "Anthropic",
        "best_for": "Hardest reasoning and long, careful work",
        "speed_tier": "slow",
        "cost_tier": "premium",
        "prices": (D("15"), D("75"), D("1.50"), D("18.75")),
        "price_source": ANTHROPIC_PRICES,
        "max_output_tokens": 4096,
        "context_window": 200000,
        "routes": [("anthropic", "claude-opus-4-1-20250805")],
        "aliases": ["claude-3-opus-20240229", "claude-3-opus-latest", "claude-opus-4-20250514", "claude-opus-4-1-20250805"],
    },
    {
        "public_id": "claude-3-haiku",
        "display_name": "Claude Haiku",
        "provider_label": "Anthropic",
        "best_for": "Fast classification, extraction and short replies",
        "speed_tier": "fastest",
        "cost_tier": "low",
        "prices": (D("0.25"), D("1.25"), D("0.03"), D("0.30")),
        "price_source": ANTHROPIC_PRICES,
        "max_output_tokens": 4096,
        "context_window": 200000,
        "routes": [("anthropic", "claude-3-haiku-20240307")],
        "aliases": ["claude-3-haiku-20240307"],
    },
    {
        "public_id": "gpt-4o",
        "display_name": "GPT-4o",
        "provider_label": "OpenAI",
        "best_for": "General chat, vision and tool use",
        "speed_tier": "fast",
        "cost_tier": "medium",
        "prices": (D("2.50"), D("10"), D("1.25"), D("2.50")),
        "price_source": OPENAI_PRICES,
        "max_output_tokens": 16384,
        "context_window": 128000,
        "routes": [("openai", "gpt-4o")],
        "aliases": ["gpt-4o-2024-08-06", "gpt-4o-2024-11-20", "gpt-4o-2024-05-13", "chatgpt-4o-latest"],
    },
    {
        "public_id": "gpt-4o-mini",
        "display_name": "GPT-4o mini",
        "provider_label": "OpenAI",
        "best_for": "Cheap, fast everyday tasks",
        "speed_tier": "fastest",
        "cost_tier": "low",
        "prices": (D("0.15"), D("0.60"), D("0.075"), D("0.15")),
        "price_source": OPENAI_PRICES,
        "max_output_tokens": 16384,
        "context_window": 128000,
        "routes": [("openai", "gpt-4o-mini")],
        "aliases": ["gpt-4o-mini-2024-07-18"],
    },
    {
        "public_id": "grok-beta",
        "display_name": "Grok",
        "provider_label": "xAI",
        "best_for": "Current events and a conversational tone",
        "speed_tier": "fast",
        "cost_tier": "medium",
        "prices": (D("3"), D("15"), D("0.75"), D("3")),
        "price_source": "docs.x.ai/docs/models (grok-3; cached input 0.75), recorded 2025-06",
        "max_output_tokens": 16384,
        "context_window": 131072,
        "routes": [("xai", "grok-3")],
        "aliases": ["grok-3", "grok-3-latest"],
    },
    {
        "public_id": "perplexity-sonar-large",
        "display_name": "Perplexity Sonar Pro",
        "provider_label": "Perplexity",
        "best_for": "Answers grounded in live web search, with citations",
        "speed_tier": "medium",
        "cost_tier": "high",
        "prices": (D("3"), D("15"), D("3"), D("3")),
        "price_source": "docs.perplexity.ai/guides/pricing (sonar-pro tokens; per-request search fees not "
        "metered), recorded 2025-06",
        "max_output_tokens": 8000,
        "context_window": 200000,
        "routes": [("perplexity", "sonar-pro")],
        "aliases": ["llama-3.1-sonar-large-128k-online", "sonar-pro"],
    },
    # Embedding models (`type` "embedding"): served on /embeddings only. `context_window` is the
    # input limit per item (8192 tokens, per the SDK's `input` docs); `dimensions` the native size.
    {
        "public_id": "text-embedding-3-small",
        "type": "embedding",
        "display_name": "Text Embedding 3 Small",
        "provider_label": "OpenAI",
        "best_for": "Cheap embeddings for search, clustering and retrieval",
        "speed_tier": "fast",
        "cost_tier": "low",
        "prices": (D("0.02"), D("0"), D("0.02"), D("0.02")),
        "price_source": OPENAI_EMBEDDING_PRICES.format("text-embedding-3-small"),
        "max_output_tokens": 0,
        "context_window": 8192,
        "dimensions": 1536,
        "routes": [("openai", "text-embedding-3-small")],
        "aliases": [],
    },
    {
        "public_id": "text-embedding-3-large",
        "type": "embedding",
        "display_name": "Text Embedding 3 Large",
        "provider_label": "OpenAI",
        "best_for": "The most capable OpenAI embeddings, English and other languages",
        "speed_tier": "slow",
        "cost_tier": "low",
        "prices": (D("0.13"), D("0"), D("0.13"), D("0.13")),
        "price_source": OPENAI_EMBEDDING_PRICES.format("text-embedding-3-large"),
        "max_output_tokens": 0,
        "context_window": 8192,
        "dimensions": 3072,
        "routes": [("openai", "text-embedding-3-large")],
        "aliases": [],
    },
    {
        "public_id": "mock-embedding",
        "type": "embedding",
        "display_name": "Mock embeddings (offline)",
        "provider_label": "Gateway",
        "best_for": "Trying /embeddings offline; deterministic vectors for tests",
        "speed_tier": "fastest",
        "cost_tier": "low",
        # Not free on purpose, as mock-echo: metering and budgets behave as with a real model.
        "prices": (D("0.02"), D("0"), D("0.02"), D("0.02")),
        "price_source": "gateway's own test price",
        "max_output_tokens": 0,
        "context_window": 8192,
        "dimensions": 1536,
        "routes": [("mock", "mock-embedding")],
        "aliases": [],
    },
    {
        "public_id": "mock-echo",
        "display_name": "Mock echo (offline)",
        "provider_label": "Gateway",
        "best_for": "Trying the gateway offline; deterministic replies for tests",
        "speed_tier": "fastest",
        "cost_tier": "low",
        # Not free on purpose: metering and budgets behave exactly as with a real model.
        "prices": (D("1"), D("2"), D("0.10"), D("1.25")),
        "price_source": "gateway's own test price",
        "max_output_tokens": 4096,
        "context_window": 32000,
        "routes": [("mock", "mock-echo")],
        "aliases": [],
    },
]


@transaction.atomic
def catalog_seed() -> dict[str, int]:
    created = {"providers": 0, "models": 0, "aliases": 0, "routes": 0}
    providers = {}
    for name, kind, base_url, env_var in PROVIDERS:
        provider, was_created = Provider.objects.get_or_create(
            name=name, defaults={"kind": kind, "base_url": base_url, "api_key_env": env_var}
        )
        providers[name] = provider
        created["providers"] += was_created
    for spec in MODELS:
        input_price, output_price, cache_read, cache_write = spec["prices"]
        model, was_created = CatalogModel.objects.get_or_create(
            public_id=spec["public_id"],
            defaults={
                "display_name": spec["display_name"],
                "provider_label": spec["provider_label"],
                "best_for": spec["best_for"],
                "model_type": spec.get("type", CatalogModel.ModelType.CHAT),
                "dimensions": spec.get("dimensions"),
                "speed_tier": spec["speed_tier"],
                "cost_tier": spec["cost_tier"],
                "input_price_per_mtok": input_price,
                "output_price_per_mtok": output_price,
                "cache_read_price_per_mtok": cache_read,
                "cache_write_price_per_mtok": cache_write,
                "price_source": spec["price_source"],
                "max_output_tokens": spec["max_output_tokens"],
                "context_window": spec["context_window"],
            },
        )
        created["models"] += was_created
        for alias in spec["aliases"]:
            _, was_created = ModelAlias.objects.get_or_create(alias=alias, defaults={"model": model})
            created["aliases"] += was_created
        for provider_name, upstream in spec["routes"]:
            _, was_created = Route.objects.get_or_create(
                model=model, provider=providers[provider_name], upstream_model=upstream
            )
            created["routes"] += was_created
    return created
