"""Any catalog change drops every instance's cached catalog snapshot."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import CatalogModel, ModelAlias, Provider, Route
from .selectors import catalog_cache


@receiver([post_save, post_delete], sender=Provider)
@receiver([post_save, post_delete], sender=CatalogModel)
@receiver([post_save, post_delete], sender=ModelAlias)
@receiver([post_save, post_delete], sender=Route)
def _catalog_changed(sender, **kwargs) -> None:
    catalog_cache.invalidate()
