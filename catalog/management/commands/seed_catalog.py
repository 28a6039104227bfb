from django.core.management.base import BaseCommand

from catalog.seed import catalog_seed


class Command(BaseCommand):
    help = "Create the seed providers, models, aliases, routes and prices (idempotent: existing rows are kept)."

    def handle(self, *args, **options) -> None:
        created = catalog_seed()
        summary = ", ".join(f"{count} {kind}" for kind, count in created.items())
        self.stdout.write(f"Catalog seeded: created {summary}.")
