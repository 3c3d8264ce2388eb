"""`make run`'s trickle of sandbox orders: sales arrive, stock falls, the other
channels follow. Shopify and WooCommerce orders come as signed webhooks (to the
subscriptions `manage.py webhooks_register` made when the stack started), eBay,
Amazon and Magento ones through polling. Dev tooling: it only talks to the sandbox."""

from __future__ import annotations

import random
import time

import requests
from django.conf import settings
from django.core.management.base import BaseCommand

from channels_app.models import Channel
from channels_app.selectors import channel_atp_bulk


class Command(BaseCommand):
    help = "Place a sandbox order every few seconds (PIMSYNC_DEMO_ORDERS turns it off)."

    def add_arguments(self, parser: object) -> None:
        parser.add_argument("--count", type=int, default=0, help="stop after N orders (0: never)")

    def handle(self, *args: object, **opts: object) -> None:
        if not settings.PIMSYNC_DEMO_ORDERS:
            self.stdout.write("Demo orders are off (PIMSYNC_DEMO_ORDERS=false).")
            return
        self.sandbox = settings.PIMSYNC_DEMO_SANDBOX_URL.rstrip("/")
        self.rng = random.Random()  # noqa: S311 - demo data
        self._wait_for_sandbox()
        placed, pending = 0, []
        while not opts["count"] or placed < int(opts["count"]):
            time.sleep(settings.PIMSYNC_DEMO_ORDER_SECONDS)
            if pending and self.rng.random() < 0.5:
                self._settle(pending.pop(0))
                continue
            order = self._place()
            if order:
                placed += 1
                if order["financial_status"] == "pending":
                    pending.append(order)

    def _post(self, path: str, payload: dict) -> dict | None:
        try:
            response = requests.post(f"{self.sandbox}/_control/{path}", json=payload, timeout=5)
            response.raise_for_status()
            return response.json()
        except (requests.RequestException, ValueError) as exc:
            self.stderr.write(f"sandbox {path}: {exc}")
            return None

    def _wait_for_sandbox(self) -> None:
        for _ in range(60):
            try:
                requests.get(f"{self.sandbox}/_control/health", timeout=2).raise_for_status()
                return
            except requests.RequestException:
                time.sleep(1)

    def _place(self) -> dict | None:
        channels = list(Channel.objects.filter(is_enabled=True))
        if not channels:
            return None
        channel = self.rng.choice(channels)
        listings = list(channel.listings.select_related("variant")[:500])
        atp = channel_atp_bulk(channel=channel, variant_ids=[lst.variant_id for lst in listings])
        sellable = [lst for lst in listings if atp.get(lst.variant_id, 0) > 0]
        if not sellable:
            return None
        listing = self.rng.choice(sellable)
        status = "pending" if self.rng.random() < 0.3 else "paid"
        payload = {
            "platform": channel.platform,
            "lines": [{"sku": listing.listing_sku or listing.variant.sku, "quantity": 1}],
            "financial_status": status,
            "email": f"buyer{self.rng.randrange(1, 40)}@example.com",
            "adjust_stock": True,
        }
        created = self._post("orders", payload)
        if created is None:
            return None
        rendered = created.get("order") or {}
        # Each platform names its order id its own way.
        order_id = str(
            rendered.get("id")
            or rendered.get("orderId")
            or rendered.get("AmazonOrderId")
            or rendered.get("entity_id")
        )
        self.stdout.write(
            f"{channel.platform}: order {order_id} ({status}) for {listing.variant.sku}"
        )
        return {"platform": channel.platform, "id": order_id, "financial_status": status}

    def _settle(self, order: dict) -> None:
        action = "pay" if self.rng.random() < 0.7 else "cancel"
        if self._post(f"orders/{order['platform']}/{order['id']}", {"action": action}) is not None:
            self.stdout.write(f"{order['platform']}: order {order['id']} → {action}")
