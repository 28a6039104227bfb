"""Any change to keys or organizations drops every instance's cached key lookups."""

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from .models import ApiKey, Organization, VanityDomain
from .selectors import key_cache


@receiver([post_save, post_delete], sender=ApiKey)
@receiver([post_save, post_delete], sender=Organization)
@receiver([post_save, post_delete], sender=VanityDomain)
def _keys_changed(sender, **kwargs) -> None:
    if kwargs.get("update_fields") == frozenset({"last_used_at"}):
        return
    key_cache.invalidate()


@receiver(m2m_changed, sender=ApiKey.allowed_models.through)
@receiver(m2m_changed, sender=Organization.allowed_models.through)
def _allowlist_changed(sender, action, **kwargs) -> None:
    if action in {"post_add", "post_remove", "post_clear"}:
        key_cache.invalidate()
