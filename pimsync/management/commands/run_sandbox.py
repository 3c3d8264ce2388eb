"""``python manage.py run_sandbox --port 8700 [--state FILE] [--seed-file FILE] [--token-ttl S]``.

Serves the local channel sandbox (Shopify, WooCommerce, eBay, Amazon, Magento
stand-ins and the /_control/ API) on 127.0.0.1 until Ctrl-C. See docs/sandbox.md.

The one module outside tests and bench/ that may import ``sandbox``: Django
imports a command module only when that command runs, so serving pimsync never
loads the sandbox.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from sandbox.server import serve_forever


class Command(BaseCommand):
    help = "Run the local channel sandbox (dev/test stand-ins for the channel APIs)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8700)
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="Interface to bind; keep the default (loopback) unless you know why.",
        )
        parser.add_argument(
            "--state",
            default=None,
            help="JSON file the state is saved to and reloaded from (survives restarts).",
        )
        parser.add_argument(
            "--seed-file",
            default=None,
            help="JSON {platform: [{sku, price, quantity, ...}]} loaded when no state exists.",
        )
        parser.add_argument(
            "--token-ttl",
            type=float,
            default=None,
            help="Lifetime in seconds of the access tokens eBay and Login with Amazon issue "
            "(default: the platforms' 7200 and 3600); /_control/tokens changes it later.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        def ready(url: str) -> None:
            self.stdout.write(self.style.SUCCESS(f"channel sandbox listening on {url}"))
            self.stdout.write(f"control API: {url}/_control/health (see docs/sandbox.md)")

        serve_forever(
            host=options["host"],
            port=options["port"],
            state_file=options["state"],
            seed_file=options["seed_file"],
            token_ttl=options["token_ttl"],
            on_ready=ready,
        )
