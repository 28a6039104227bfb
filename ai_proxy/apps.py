from django.apps import AppConfig


class AiProxyConfig(AppConfig):
    name = "ai_proxy"
    verbose_name = "AI proxy"

    def ready(self) -> None:
        from catalog.models import Provider
        from catalog.provider_kinds import KindFacts, kind_facts_register

        from .operations import model_types_served
        from .providers import ADAPTERS, adapters_check

        # Loudly, at startup (serve, migrate, tests): never a request that finds out.
        adapters_check(Provider.Kind.values)
        # The catalog (below ai_proxy) learns what it needs about each kind from its adapter.
        for kind, adapter in ADAPTERS.items():
            kind_facts_register(
                kind, KindFacts(dialect=adapter.dialect, needs_base_url=adapter.needs_base_url, offline=adapter.offline,
                                model_types=model_types_served(adapter)),
            )
