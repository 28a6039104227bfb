from django.apps import AppConfig


class AiProxyConfig(AppConfig):
    name = "ai_proxy"
    verbose_name = "Model catalog and providers"

    def ready(self) -> None:
        from . import signals  # noqa: F401
