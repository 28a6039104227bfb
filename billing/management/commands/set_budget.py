from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from billing.models import Budget
from billing.services import budget_set
from orgs.models import ApiKey, Organization


def _thresholds(value: str) -> str:
    parts = [part.strip() for part in value.split(",") if part.strip()]
    if not parts or not all(part.isdigit() for part in parts):
        raise CommandError(f"--thresholds must be whole percentages separated by commas, e.g. 50,80,100; got {value!r}")
    return ",".join(parts)


class Command(BaseCommand):
    help = (
        "Create or update the budget of an organization (or, with --key, one of its keys) for one period. "
        "Spend is read from the ledger: changing the amount never resets it."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--key", metavar="PREFIX", help="The key's prefix (dm_<org>_<env>_xxxxxxxx): a key budget.")
        parser.add_argument("--amount", required=True, help="USD, e.g. 100.00")
        parser.add_argument("--period", choices=Budget.Period.values, default=Budget.Period.MONTH)
        parser.add_argument("--mode", choices=Budget.Mode.values,
                            help="hard refuses requests, soft only alerts (default: hard for a new budget, "
                                 "else unchanged)")
        parser.add_argument("--thresholds", help="Alert percentages, e.g. 50,80,100 (default 50,80,100 for a new "
                                                 "budget, else unchanged)")

    def handle(self, *args, **opts) -> None:
        org = Organization.objects.filter(slug=opts["slug"]).first()
        if org is None:
            raise CommandError(f"No organization {opts['slug']!r}.")
        key = None
        if opts["key"]:
            key = ApiKey.objects.filter(organization=org, prefix=opts["key"]).first()
            if key is None:
                raise CommandError(f"Organization {org.slug} has no key with prefix {opts['key']!r}.")
        try:
            amount = Decimal(opts["amount"])
        except InvalidOperation:
            raise CommandError(f"--amount must be an amount in USD, got {opts['amount']!r}") from None
        if not amount.is_finite() or amount < 0:
            raise CommandError("--amount must be a non-negative amount in USD")
        thresholds = _thresholds(opts["thresholds"]) if opts["thresholds"] is not None else None
        try:
            budget, created = budget_set(organization=org, api_key=key, amount_usd=amount, period=opts["period"],
                                         mode=opts["mode"], thresholds=thresholds, actor="cli")
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        scope = f"key {key.prefix}" if key else f"organization {org.slug}"
        self.stdout.write(
            f"{'Created' if created else 'Updated'} the {budget.period} budget of {scope}: ${budget.amount_usd} "
            f"({budget.mode}; alerts at {budget.thresholds}%)."
        )
