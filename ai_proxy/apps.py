from django.apps import AppConfig


class AiProxyConfig(AppConfig):
    name = "ai_proxy"
    verbose_name = "AI proxy"

    def ready(self) -> None:
        from catalog.models import Provider
        from catalog.route_support import route_support_register

        from .operations import route_serves_model_type
        from .providers import adapters_check

        # Loudly, at startup (serve, migrate, tests): never a request that finds out.
        adapters_check(Provider.Kind.values)
        # The catalog's validation asks ai_proxy which provider kinds can serve which model types.
        route_support_register(route_serves_model_type)
