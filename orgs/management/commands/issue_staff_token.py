from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from orgs.members import staff_token_issue


class Command(BaseCommand):
    help = "Issue a bearer token for the staff usage API (GET /api/ai/admin/usage) to a staff user. Shown once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--label", default="")

    def handle(self, *args, **opts) -> None:
        user = get_user_model().objects.filter(username=opts["username"]).first()
        if user is None:
            raise CommandError(f"No user {opts['username']}.")
        try:
            new = staff_token_issue(user=user, label=opts["label"], actor="cli")
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(new.plaintext)
