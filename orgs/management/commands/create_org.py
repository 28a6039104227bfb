from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from orgs.models import Organization
from orgs.services import organization_create


def _usd(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise CommandError(f"--monthly-budget must be an amount in USD, got {value!r}") from None
    if amount < 0:
        raise CommandError("--monthly-budget cannot be negative")
    return amount


class Command(BaseCommand):
    help = "Create an organization (an app) with optional vanity domains and monthly budget."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--domain", action="append", default=[], help="Vanity hostname; repeatable.")
        parser.add_argument("--monthly-budget", type=str, help="USD, e.g. 250.00")

    def handle(self, *args, **opts) -> None:
        if Organization.objects.filter(slug=opts["slug"]).exists():
            raise CommandError(f"Organization {opts['slug']} already exists.")
        budget = _usd(opts["monthly_budget"]) if opts["monthly_budget"] else None
        try:
            org = organization_create(
                slug=opts["slug"], name=opts["name"], domains=opts["domain"], monthly_budget_usd=budget, actor="cli"
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        self.stdout.write(f"Created organization {org.slug} ({org.name}).")
