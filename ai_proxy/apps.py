from django.apps import AppConfig


class AiProxyConfig(AppConfig):
    name = "ai_proxy"
    verbose_name = "AI proxy"

    def ready(self) -> None:
        from catalog.models import Provider

        from .providers import adapters_check

        # Loudly, at startup (serve, migrate, tests): never a request that finds out.
        adapters_check(Provider.Kind.values)
