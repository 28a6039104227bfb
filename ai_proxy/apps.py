from django.apps import AppConfig


class AiProxyConfig(AppConfig):
    name = "ai_proxy"
    verbose_name = "AI proxy"

    def ready(self) -> None:
        from catalog.route_support import route_support_register

        from .route_rules import route_serves_model_type

        # The catalog's validation asks ai_proxy which provider kinds can serve which model types.
        route_support_register(route_serves_model_type)
