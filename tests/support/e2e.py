"""Helpers of the end-to-end tests: pimsync and the sandbox set up with the same
catalog, the sandbox's control API, waiting for the queue to drain, comparing
what every channel shows with what pimsync says it should.

The fixtures (worker processes, the sandbox server) are in tests/e2e/conftest.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

import requests

from channels_app.models import Channel, ChannelListing, ChannelLocation, SyncMarker
from channels_app.selectors import channel_atp_bulk, channel_price_bulk
from inventory import services
from inventory.models import Location, Product, Variant
from pimsync.demo import SANDBOX_CHANNELS, listing_ids
from sandbox.server import RunningSandbox
from synclog.models import ReconciliationRun


def control(sandbox: RunningSandbox, method: str, path: str, payload: object = None) -> object:
    response = requests.request(method, f"{sandbox.url}/_control/{path}", json=payload, timeout=10)
    response.raise_for_status()
    return response.json()


# pimsync calls per second per channel: below the sandbox's limits scaled ×10
# (Shopify's cost bucket restores 500 points/s there, ~10 per call).
E2E_RATES = {"shopify": "20", "woocommerce": "40", "ebay": "30", "amazon": "30", "magento": "30"}


def build_catalog(sandbox: RunningSandbox, n_variants: int = 200) -> list[Channel]:
    """pimsync and the sandbox with the same listings; the sandbox starts at 0 / 0.00."""
    location = Location.objects.create(code="e2e", name="E2E warehouse")
    variants = []
    for p in range(n_variants // 4):
        product = Product.objects.create(title=f"E2E {p}", handle=f"e2e-{p}")
        variants.extend(
            Variant.objects.create(
                product=product, sku=f"E2E-{p:03d}-{size}", price=Decimal("10.00")
            )
            for size in ("S", "M", "L", "XL")
        )
    for v in variants:
        services.stock_adjust(
            variant=v,
            location=location,
            quantity=50,
            reason="receive",
            source="t",
            idempotency_key=f"e2e-seed-{v.sku}",
        )
    channels, seed = [], {}
    for spec in SANDBOX_CHANNELS:
        channel = Channel.objects.create(
            name=spec["name"],
            slug=spec["slug"],
            platform=spec["platform"],
            base_url=f"{sandbox.url}/{spec['platform']}",
            credentials=spec["credentials"],
            platform_config=spec["platform_config"],
            rate_limit_per_second=Decimal(E2E_RATES[spec["platform"]]),
        )
        ChannelLocation.objects.create(channel=channel, location=location)
        rows = []
        for i, v in enumerate(variants):
            ids = listing_ids(spec["platform"], i, i // 4, v.sku)
            ChannelListing.objects.create(channel=channel, variant=v, **ids)
            rows.append(
                {
                    "sku": ids.get("listing_sku") or v.sku,
                    "product_id": ids.get("external_product_id", ""),
                    "variant_id": ids.get("external_variant_id", ""),
                    "inventory_item_id": ids.get("inventory_item_id", ""),
                    "offer_id": ids.get("offer_id", ""),
                    "price": "0.00",
                    "quantity": 0,
                }
            )
        seed[spec["platform"]] = rows
        channels.append(channel)
    control(sandbox, "POST", "seed", seed)
    return channels


def wait_until_drained(sweep: Callable[[], object], timeout: float) -> float:
    """Run the sweeper like beat would until no marker is pending; returns seconds taken."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        sweep()
        if not SyncMarker.objects.filter(status=SyncMarker.Status.PENDING).exists():
            return time.monotonic() - start
        time.sleep(0.5)
    pending = SyncMarker.objects.filter(status="pending").values_list(
        "channel__platform", "attempts", "last_error"
    )[:10]
    raise AssertionError(f"queue did not drain in {timeout} s; e.g. {list(pending)}")


def wait_for_runs(run_ids: list[int], timeout: float) -> list[ReconciliationRun]:
    """Reconciliation runs once they are no longer running (the sweeper runs meanwhile)."""
    from channels_app.dispatch import sweep_due_channels

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = list(ReconciliationRun.objects.filter(pk__in=run_ids))
        if all(r.status != "running" for r in runs):
            return runs
        sweep_due_channels()  # what beat's sweeper does for lost pushes
        time.sleep(0.5)
    states = list(ReconciliationRun.objects.filter(pk__in=run_ids).values())
    raise AssertionError(f"reconciliation did not finish in {timeout} s: {states}")


def assert_every_channel_matches(sandbox: RunningSandbox) -> int:
    """Every channel shows pimsync's price and ATP for every SKU; returns SKUs compared."""
    compared = 0
    for channel in Channel.objects.all():
        listings = list(ChannelListing.objects.filter(channel=channel).select_related("variant"))
        ids = [lst.variant_id for lst in listings]
        prices = channel_price_bulk(channel=channel, variant_ids=ids)
        atp = channel_atp_bulk(channel=channel, variant_ids=ids)
        live = control(sandbox, "GET", f"values/{channel.platform}")
        mismatches = [
            (
                lst.channel_sku,
                str(prices[lst.variant_id]),
                atp[lst.variant_id],
                live[lst.channel_sku]["price"],
                live[lst.channel_sku]["quantity"],
            )
            for lst in listings
            if Decimal(live[lst.channel_sku]["price"]) != prices[lst.variant_id]
            or int(live[lst.channel_sku]["quantity"]) != atp[lst.variant_id]
        ]
        assert mismatches == [], f"{channel.platform}: {mismatches[:5]}"
        compared += len(listings)
    return compared
