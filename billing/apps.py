from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing and usage"

    def ready(self) -> None:
        from orgs.selectors import key_budget_rules_register

        from . import signals  # noqa: F401
        from .selectors import budget_rules_for_key

        # Every cached key context carries its budget rules (see orgs.selectors).
        key_budget_rules_register(budget_rules_for_key)
