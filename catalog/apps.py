from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Model catalog and providers"

    def ready(self) -> None:
        from . import signals  # noqa: F401
