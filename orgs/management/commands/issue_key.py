from django.core.management.base import BaseCommand, CommandError

from catalog.models import CatalogModel
from orgs.models import ApiKey, Organization
from orgs.services import api_key_issue


class Command(BaseCommand):
    help = "Issue an API key. The plaintext key is the last line of standard output, shown this once only."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--env", choices=ApiKey.Environment.values, default=ApiKey.Environment.PROD)
        parser.add_argument("--label", default="")
        parser.add_argument("--models", default="", help="Comma-separated model ids the key may use.")
        parser.add_argument("--rpm", type=int, help="Requests per minute.")
        parser.add_argument("--tpm", type=int, help="Tokens per minute.")

    def handle(self, *args, **opts) -> None:
        org = Organization.objects.filter(slug=opts["slug"]).first()
        if org is None:
            raise CommandError(f"No organization {opts['slug']}. Create it with create_org first.")
        wanted = [m.strip() for m in opts["models"].split(",") if m.strip()]
        models = list(CatalogModel.objects.filter(public_id__in=wanted))
        missing = sorted(set(wanted) - {m.public_id for m in models})
        if missing:
            raise CommandError(f"Unknown model(s): {', '.join(missing)}")
        for name in ("rpm", "tpm"):
            if opts[name] is not None and opts[name] <= 0:
                raise CommandError(f"--{name} must be a positive integer")
        try:
            issued = api_key_issue(
                organization=org, environment=opts["env"], label=opts["label"], models=models,
                rpm_limit=opts["rpm"], tpm_limit=opts["tpm"], actor="cli",
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Issued key {issued.api_key.prefix}… for {org.slug}. Store it now; it is not shown again:")
        self.stdout.write(issued.plaintext)
