"""A saved organization may have a new budget or mode: its cached month spend is reloaded."""

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import timezone

from orgs.models import Organization

from .budget import budget_forget


@receiver(post_save, sender=Organization)
def _organization_saved(sender, instance: Organization, **kwargs) -> None:
    transaction.on_commit(lambda: budget_forget(instance.pk, timezone.now()))
