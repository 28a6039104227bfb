from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from catalog.models import Provider
from catalog.provider_kinds import kind_facts, kinds_needing_base_url, registered_kinds
from core.audit import audit_record


class Command(BaseCommand):
    help = "Create or update a provider. Secrets stay in the environment: give the variable's name."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--kind", choices=registered_kinds())
        parser.add_argument("--base-url")
        parser.add_argument("--api-key-env", help="Name of the environment variable holding the secret.")
        parser.add_argument("--timeout", type=float, help="Read timeout in seconds.")
        toggle = parser.add_mutually_exclusive_group()
        toggle.add_argument("--enable", action="store_true")
        toggle.add_argument("--disable", action="store_true")

    @transaction.atomic
    def handle(self, *args, **opts) -> None:
        provider = Provider.objects.filter(name=opts["name"]).first()
        created = provider is None
        if created:
            if not opts["kind"]:
                raise CommandError(f"Provider {opts['name']} does not exist yet: --kind is required to create it.")
            provider = Provider(name=opts["name"])
        changes = {}
        for field, option in [("kind", "kind"), ("base_url", "base_url"), ("api_key_env", "api_key_env"),
                              ("timeout_seconds", "timeout")]:
            if opts[option] is not None:
                changes[field] = opts[option]
                setattr(provider, field, opts[option])
        if opts["enable"] or opts["disable"]:
            provider.enabled = bool(opts["enable"])
            changes["enabled"] = provider.enabled
        if kind_facts(provider.kind).needs_base_url and not provider.base_url:
            raise CommandError(f"--base-url is required for {kinds_needing_base_url(registered_kinds())} providers.")
        try:
            provider.full_clean()
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        provider.save()
        audit_record(actor="cli", action="create" if created else "change", obj=provider, changes=changes)
        state = "enabled" if provider.enabled else "disabled"
        secret = "" if not provider.needs_secret else (
            f"; secret {provider.api_key_env} is {'set' if provider.secret_is_set else 'NOT set'}")
        self.stdout.write(f"Provider {provider.name} {'created' if created else 'updated'} "
                          f"({provider.kind}, {provider.base_url or 'offline'}, {state}{secret}).")
