"""A changed budget reaches the request path: cached keys (which carry their budgets) are dropped
everywhere, and the cached spend of its current window is reloaded from the ledger on next use
(never zeroed: spend is the ledger's)."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from orgs.models import Organization
from orgs.selectors import key_cache

from .budget import BudgetRule, BudgetSlot, budget_forget
from .models import Budget
from .scopes import Scope


@receiver([post_save, post_delete], sender=Budget)
def _budget_changed(sender, instance: Budget, **kwargs) -> None:
    key_cache.invalidate()
    scope = (Scope.key(instance.api_key_id, instance.organization_id) if instance.api_key_id
             else Scope.organization(instance.organization_id))
    tz = Organization.objects.filter(pk=instance.organization_id).values_list("timezone", flat=True).first()
    if tz is None:
        return  # the organization itself is being deleted
    rule = BudgetRule(id=instance.pk or 0, scope=scope, period=instance.period, amount_usd=instance.amount_usd,
                      mode=instance.mode, thresholds=(), timezone=tz)
    slot = BudgetSlot.of(rule, timezone.now())
    # A budget dropped and added again must not find spend it stopped tracking in between.
    transaction.on_commit(lambda: budget_forget(slot))
