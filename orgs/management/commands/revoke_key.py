from django.core.management.base import BaseCommand, CommandError

from orgs.models import ApiKey
from orgs.services import api_key_revoke


class Command(BaseCommand):
    help = "Revoke an API key by its visible prefix (dm_<org>_<env>_xxxxxxxx). Takes effect on every instance within a second."

    def add_arguments(self, parser) -> None:
        parser.add_argument("prefix")

    def handle(self, *args, **opts) -> None:
        prefix = opts["prefix"].rstrip("…. ")
        key = ApiKey.objects.filter(prefix=prefix).first()
        if key is None:
            raise CommandError(f"No key with prefix {prefix}.")
        if api_key_revoke(api_key=key, actor="cli"):
            self.stdout.write(f"Revoked {key.prefix}.")
        else:
            self.stdout.write(f"{key.prefix} was already revoked.")
