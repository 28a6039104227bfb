import secrets

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from orgs.models import Organization
from orgs.services import api_key_issue, organization_create

DEMO_SLUG = "demo"


class Command(BaseCommand):
    help = "First-run setup for `make run`: migrate, seed, and create an admin login plus a demo org and key (once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:19000", help="Where the gateway will be served.")

    def handle(self, *args, **opts) -> None:
        base_url = opts["base_url"].rstrip("/")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("seed_catalog", verbosity=0, stdout=self.stdout)
        call_command("collectstatic", interactive=False, verbosity=0)
        User = get_user_model()
        out = []
        if not User.objects.filter(is_superuser=True).exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", "admin@localhost", password)
            out.append(f"  admin login:  {base_url}/admin/  user admin  password {password}")
        if not Organization.objects.filter(slug=DEMO_SLUG).exists():
            org = organization_create(slug=DEMO_SLUG, name="Demo app", actor="quickstart")
            issued = api_key_issue(organization=org, environment="dev", label="quickstart", actor="quickstart")
            out.append(f"  demo API key: {issued.plaintext}")
            out.append(f"  try it:       curl {base_url}/api/ai/chat/completions -H 'Authorization: Bearer <demo API key>' "
                       "-H 'Content-Type: application/json' "
                       "-d '{\"model\": \"mock-echo\", \"messages\": [{\"role\": \"user\", \"content\": \"hello\"}]}'")
        if out:
            self.stdout.write("\nCreated once, shown once; store them now:\n" + "\n".join(out) + "\n")
        else:
            self.stdout.write(
                "\nAlready set up (admin login and demo key exist; keys are never shown twice).\n"
                f"  new key:  .venv/bin/python manage.py issue_key {DEMO_SLUG} --env dev --label mine\n"
                "  new admin: .venv/bin/python manage.py createsuperuser\n"
            )
        self.stdout.write(f"  API docs:  {base_url}/api/ai/docs/  (OpenAPI: {base_url}/api/ai/openapi.json)\n")
