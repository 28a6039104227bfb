from __future__ import annotations

from functools import lru_cache

from django.apps import AppConfig


class AiProxyConfig(AppConfig):
    name = "ai_proxy"
    verbose_name = "AI proxy"

    def ready(self) -> None:
        from catalog.provider_kinds import kind_facts_source
        from catalog.seed import seed_provider_kinds

        from .providers import ADAPTERS, adapters_check

        # Loudly, at startup (serve, migrate, tests): never a request that finds out. The seed
        # catalog's providers (and `make run`) rely on these kinds.
        adapters_check(seed_provider_kinds())
        # The catalog (below ai_proxy) learns the kinds and what it needs about each from the
        # adapters table, read when asked: an adapter is all a new provider kind needs.
        kind_facts_source(lambda: {kind: _kind_facts(adapter) for kind, adapter in ADAPTERS.items()})


@lru_cache(maxsize=None)
def _kind_facts(adapter):
    from catalog.provider_kinds import KindFacts

    from .operations import model_types_served

    return KindFacts(
        label=adapter.label, dialect=adapter.dialect, needs_base_url=adapter.needs_base_url,
        offline=adapter.offline, model_types=model_types_served(adapter),
    )
