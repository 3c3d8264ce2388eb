from django.core.management.base import BaseCommand, CommandError

from channels_app.models import Channel, WebhookSecretEvent
from channels_app.webhook_secrets import webhook_secret_reveal, webhook_secret_rotate


class Command(BaseCommand):
    help = (
        "Print a channel's webhook secret (by slug); --rotate replaces it by a new random one "
        "first. Each use is recorded in the channel's webhook secret audit."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug", help="The channel's slug (as in /webhooks/<slug>/)")
        parser.add_argument("--rotate", action="store_true", help="Make a new secret first")

    def handle(self, *args: object, **options: object) -> None:
        channel = Channel.objects.filter(slug=str(options["slug"])).first()
        if channel is None:
            known = ", ".join(Channel.objects.order_by("slug").values_list("slug", flat=True))
            raise CommandError(f"No channel {options['slug']!r} (channels: {known or 'none'})")
        via = WebhookSecretEvent.Via.COMMAND
        if options["rotate"]:
            secret = webhook_secret_rotate(channel=channel, via=via)
        else:
            secret = webhook_secret_reveal(channel=channel, via=via)
        if not secret:
            raise CommandError(f"{channel} has no webhook secret: add --rotate to make one")
        self.stdout.write(secret)
