"""create_org lives in billing because --monthly-budget creates a budget, which is billing's."""

from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from billing.services import organization_with_budget_create
from orgs.models import Organization


def _usd(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise CommandError(f"--monthly-budget must be an amount in USD, got {value!r}") from None
    if amount < 0:
        raise CommandError("--monthly-budget cannot be negative")
    return amount


def _per_minute(option: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise CommandError(f"--{option} must be at least 1 (leave it out for no limit)")
    return value


class Command(BaseCommand):
    help = ("Create an organization (an app) with optional vanity domains, a hard monthly budget (a Budget row: "
            "see set_budget for other periods and modes) and rate limits across all its keys.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--domain", action="append", default=[], help="Vanity hostname; repeatable.")
        parser.add_argument("--monthly-budget", type=str, help="USD, e.g. 250.00 (a hard calendar-month budget)")
        parser.add_argument("--rpm", type=int, help="Requests per minute, all the organization's keys together.")
        parser.add_argument("--tpm", type=int, help="Tokens per minute, all the organization's keys together.")

    def handle(self, *args, **opts) -> None:
        if Organization.objects.filter(slug=opts["slug"]).exists():
            raise CommandError(f"Organization {opts['slug']} already exists.")
        budget = _usd(opts["monthly_budget"]) if opts["monthly_budget"] else None
        try:
            org = organization_with_budget_create(
                slug=opts["slug"], name=opts["name"], domains=opts["domain"], monthly_budget_usd=budget,
                rpm_limit=_per_minute("rpm", opts["rpm"]), tpm_limit=_per_minute("tpm", opts["tpm"]), actor="cli",
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        self.stdout.write(f"Created organization {org.slug} ({org.name}).")
