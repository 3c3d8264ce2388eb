"""Reconciliation end to end against the channel sandbox, in process: the real
connectors over loopback HTTP, the real push engine, the sandbox's own control
API standing in for a person editing values in the channel's console."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from channels_app.models import Channel, ChannelListing, SyncMarker
from channels_app.orders.polling import channel_poll
from channels_app.selectors import channel_atp_bulk, channel_price_bulk
from channels_app.sync import engine
from channels_app.sync.reconcile import channel_reconcile
from inventory import services
from inventory.models import Product, Variant
from pimsync.demo import listing_ids
from sandbox.server import RunningSandbox
from synclog.models import Alert, DriftFinding, ReconciliationRun
from tests.support.sandbox import control, demo_channel

pytestmark = pytest.mark.django_db(transaction=True)
N_VARIANTS = 120
N_CHANGES = 50


def catalog_in_sync(sandbox: RunningSandbox, platform: str) -> Channel:
    """pimsync and one sandbox channel holding the same values, as after a push."""
    channel, location = demo_channel(
        sandbox, platform, location_code="rec", location_name="Reconcile warehouse"
    )
    rows = []
    for p in range(N_VARIANTS // 4):
        product = Product.objects.create(title=f"Rec {p}", handle=f"rec-{p}")
        for s, size in enumerate(("S", "M", "L", "XL")):
            variant = Variant.objects.create(
                product=product, sku=f"REC-{p:03d}-{size}", price=Decimal(10 + p + s)
            )
            services.stock_adjust(
                variant=variant,
                location=location,
                quantity=20 + s,
                reason="receive",
                source="t",
                idempotency_key=f"rec-{variant.sku}",
            )
            index = p * 4 + s
            ids = listing_ids(platform, index, p, variant.sku)
            ChannelListing.objects.create(channel=channel, variant=variant, **ids)
            rows.append(
                {
                    "sku": ids.get("listing_sku") or variant.sku,
                    "product_id": ids.get("external_product_id", ""),
                    "variant_id": ids.get("external_variant_id", ""),
                    "inventory_item_id": ids.get("inventory_item_id", ""),
                    "offer_id": ids.get("offer_id", ""),
                    "price": f"{variant.price:.2f}",
                    "quantity": 20 + s,
                }
            )
    sandbox.platform(platform).seed(rows)
    # What the engine records after a confirmed push (Shopify's compare-and-set base).
    for listing in ChannelListing.objects.filter(channel=channel).select_related("variant"):
        listing.last_confirmed_quantity = listing.last_pushed_quantity = 20 + (
            ("S", "M", "L", "XL").index(listing.variant.sku.rsplit("-", 1)[1])
        )
        listing.last_confirmed_price = listing.last_pushed_price = listing.variant.price
        listing.save()
    SyncMarker.objects.all().delete()
    return channel


def edit_in_console(sandbox: RunningSandbox, channel: Channel, n: int, seed: int) -> set[str]:
    """Change n listings' price or quantity directly in the sandbox (not an API call)."""
    rng = random.Random(seed)
    listings = rng.sample(list(ChannelListing.objects.filter(channel=channel)), n)
    edits, changed = [], set()
    for i, listing in enumerate(listings):
        sku = listing.channel_sku
        if i % 2:
            edits.append({"sku": sku, "price": str(listing.variant.price + Decimal("3.50"))})
        else:
            edits.append({"sku": sku, "quantity": rng.choice([0, 1, 99])})
        changed.add(listing.variant.sku)
    status, _ = control(sandbox.url, "POST", "/_control/values", {channel.platform: edits})
    assert status == 200
    return changed


def assert_channel_matches(sandbox: RunningSandbox, channel: Channel) -> None:
    listings = list(ChannelListing.objects.filter(channel=channel).select_related("variant"))
    ids = [lst.variant_id for lst in listings]
    prices = channel_price_bulk(channel=channel, variant_ids=ids)
    atp = channel_atp_bulk(channel=channel, variant_ids=ids)
    _, live = control(sandbox.url, "GET", f"/_control/values/{channel.platform}")
    wrong = [
        lst.channel_sku
        for lst in listings
        if Decimal(live[lst.channel_sku]["price"]) != prices[lst.variant_id]
        or int(live[lst.channel_sku]["quantity"]) != atp[lst.variant_id]
    ]
    assert wrong == []


def import_orders_then_push(channel_id: int) -> None:
    """What the workers do between the reconciliation's checks: a console edit that
    lowered a quantity looks like a sale not imported yet, so its resync waits for an
    orders poll (here there are none: it then goes) before it is written back."""
    channel_poll(channel_id)
    engine.channel_push(channel_id)


@pytest.mark.parametrize("platform", ["shopify", "woocommerce", "ebay", "amazon", "magento"])
def test_fifty_console_edits_are_found_fixed_read_back_and_resolved(sandbox, platform):
    # given: a channel in sync with pimsync, then 50 values edited in its console
    channel = catalog_in_sync(sandbox, platform)
    clean = channel_reconcile(channel=channel, push=engine.channel_push)
    assert (clean.status, clean.checked, clean.drifted, clean.errors) == ("finished", 120, 0, 0)
    changed = edit_in_console(sandbox, channel, N_CHANGES, seed=7)
    # when: the next reconciliation runs (pushing its resyncs with the real engine)
    run = channel_reconcile(channel=channel, push=import_orders_then_push)
    # then: exactly those 50 were found, resynced, read back and resolved
    findings = DriftFinding.objects.filter(run=run)
    assert {f.sku for f in findings} == changed
    assert (run.status, run.total, run.checked, run.skipped, run.errors) == (
        "finished",
        N_VARIANTS,
        N_VARIANTS,
        0,
        0,
    )
    assert (run.drifted, run.resynced, run.fixed) == (N_CHANGES, N_CHANGES, N_CHANGES)
    assert findings.count() == N_CHANGES
    assert not findings.filter(resolved_at__isnull=True).exists()
    assert not findings.filter(read_back_at__isnull=True).exists()
    assert_channel_matches(sandbox, channel)
    drift_alert = Alert.objects.get(kind=Alert.Kind.DRIFT, channel=channel)
    assert drift_alert.resolved_at is not None
    assert ReconciliationRun.objects.filter(channel=channel).count() == 2
