"""Create or repair the webhooks of every enabled Shopify and WooCommerce channel.

The same as saving or testing each channel; `make run` runs it once the sandbox is
up (``--wait``), so the demo's channels receive their orders and edits by webhook.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandParser

from channels_app.models import Channel
from channels_app.services import channels_webhooks_register


class Command(BaseCommand):
    help = "Create or repair the webhook subscriptions of the Shopify and WooCommerce channels."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--channel", action="append", default=[], help="a channel's slug (repeatable)"
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=0.0,
            help="try again for up to this many seconds while a channel does not answer",
        )

    def handle(self, *args: object, **options: object) -> None:
        channels = Channel.objects.order_by("name")
        if options["channel"]:
            channels = channels.filter(slug__in=options["channel"])
        deadline = time.monotonic() + float(str(options["wait"]))
        while True:
            registrations = channels_webhooks_register(channels=channels)
            if all(r.ok for r in registrations) or time.monotonic() >= deadline:
                break
            time.sleep(1.0)
        for registration in registrations:
            style = self.style.SUCCESS if registration.ok else self.style.ERROR
            self.stdout.write(style(str(registration)))
        if not registrations:
            self.stdout.write("No enabled Shopify or WooCommerce channel.")
