import getpass
import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.time_zones import zone
from orgs.members import organization_member_add
from orgs.models import Organization


class Command(BaseCommand):
    help = (
        "Give a person dashboard access to one organization (creates the user if needed). "
        "The password comes from ORG_MEMBER_PASSWORD, else a prompt."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("username")
        parser.add_argument("--time-zone", default="", help="IANA name the dashboard shows days in (default UTC).")

    def handle(self, *args, **opts) -> None:
        org = Organization.objects.filter(slug=opts["slug"]).first()
        if org is None:
            raise CommandError(f"No organization {opts['slug']}.")
        try:
            zone(opts["time_zone"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        password = os.environ.get("ORG_MEMBER_PASSWORD")
        if not password:
            password = getpass.getpass(f"Password for {opts['username']}: ")
            if password != getpass.getpass("Again: "):
                raise CommandError("The passwords differ.")
        if not password:
            raise CommandError("An empty password is not allowed.")
        try:
            organization_member_add(organization=org, username=opts["username"], password=password, actor="cli",
                                    time_zone=opts["time_zone"])
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"{opts['username']} can now log in at /accounts/login/ and see {org.slug}'s dashboard.")
