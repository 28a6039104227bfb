from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from billing.alerts import alert_channels_set
from billing.models import AlertChannel
from orgs.models import Organization


class Command(BaseCommand):
    help = (
        "Set an organization's budget alert channels. Each option given replaces that kind of channel "
        "(an empty value removes it); kinds not given are kept. A signed webhook gets a new secret, "
        "printed once as the last line."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--email", action="append", help="Address to email alerts to; repeatable.")
        parser.add_argument("--slack-url", help="Slack-compatible incoming webhook URL.")
        parser.add_argument("--webhook-url", help="URL for the JSON webhook, signed the Standard Webhooks way.")

    def handle(self, *args, **opts) -> None:
        org = Organization.objects.filter(slug=opts["slug"]).first()
        if org is None:
            raise CommandError(f"No organization {opts['slug']!r}.")
        try:
            secret = alert_channels_set(
                organization=org, emails=opts["email"], slack_url=opts["slack_url"], webhook_url=opts["webhook_url"],
                actor="cli",
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        channels = AlertChannel.objects.filter(organization=org)
        self.stdout.write(f"Alert channels of {org.slug}:")
        for channel in channels:
            self.stdout.write(f"  {channel.kind} {channel.target}{'' if channel.enabled else ' (disabled)'}")
        if not channels:
            self.stdout.write("  (none)")
        if secret:
            self.stdout.write("Webhook signing secret (shown once; verify with any Standard Webhooks library):")
            self.stdout.write(secret)
