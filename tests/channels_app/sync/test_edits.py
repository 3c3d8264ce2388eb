"""Channel-side edits seen at once, in one process: the sandbox's Shopify and
WooCommerce consoles change a value, the sandbox delivers its webhook to the
address pimsync registered, the Django test client posts it to pimsync's
endpoint, and the workers' part runs here (tests/support/edits.py). Each policy
is checked on both platforms, and the time from the console edit to the outcome
is printed and recorded (the real processes' times: tests/e2e/test_channel_edits_e2e.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from channels_app.connectors.base import ListingEdit
from channels_app.models import (
    ChannelEdit,
    ChannelListing,
    ChannelSyncState,
    InboundEvent,
    SyncMarker,
)
from channels_app.orders.events import inbound_event_process
from channels_app.selectors import channel_atp
from channels_app.sync.edits import Verdict, edit_verdict, webhook_edits_check
from inventory import services
from inventory.models import MovementReason, StockMovement
from synclog.models import Alert, DriftFinding
from tests.support.edits import Relay, edit_channel, timed
from tests.support.sandbox import control

pytestmark = pytest.mark.django_db
PLATFORMS = ["shopify", "woocommerce"]
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def relay(client, webhook_receiver, sandbox) -> Relay:
    return Relay(client, webhook_receiver, sandbox)


def console(sandbox, platform: str, sku: str, **values: object) -> None:
    """A person changes a value in the channel's own admin."""
    status, _ = control(
        sandbox.url, "POST", "/_control/values", {platform: [{"sku": sku, **values}]}
    )
    assert status == 200


def buy(sandbox, sku: str, quantity: int, *, webhook: bool = True) -> None:
    """A buyer's order on the sandbox's Shopify store (its order webhook, or none)."""
    order = {"platform": "shopify", "lines": [{"sku": sku, "quantity": quantity}]}
    status, _ = control(sandbox.url, "POST", "/_control/orders", order | {"webhook": webhook})
    assert status == 201


def shown(sandbox, platform: str, sku: str) -> tuple[Decimal, int]:
    item = sandbox.platform(platform).catalog.get(sku)
    return item.price, item.quantity


def webhook_findings():
    return DriftFinding.objects.filter(source=DriftFinding.Source.WEBHOOK)


def first_listing(channel) -> ChannelListing:
    return (
        ChannelListing.objects.filter(channel=channel).select_related("variant").order_by("pk")[0]
    )


def report_time(record_property, name: str, seconds: float) -> None:
    record_property(name, round(seconds, 3))
    print(f"{name}: {seconds:.3f} s")


# --- the rule -------------------------------------------------------------------------------


def verdict(value: int, expected: int = 10, **overrides: object) -> Verdict:
    facts: dict = {
        "kind": "quantity",
        "value": Decimal(value),
        "expected": Decimal(expected),
        "last_pushed": Decimal(10),
        "pushed_at": T0 - timedelta(minutes=5),
        "received_at": T0,
        "push_pending": False,
        "orders_in": False,
    }
    return edit_verdict(**(facts | overrides))


@pytest.mark.parametrize(
    ("value", "overrides", "expected"),
    [
        (10, {}, Verdict.AGREES),  # pimsync's own value (an echo, or a sale already imported)
        (8, {"last_pushed": Decimal(8), "expected": Decimal(9)}, Verdict.ECHO),
        (14, {"push_pending": True}, Verdict.WAIT_PUSH),  # pimsync's push is on its way
        (14, {"pushed_at": T0 + timedelta(seconds=1)}, Verdict.SUPERSEDED),
        (7, {}, Verdict.WAIT_ORDERS),  # fewer than pimsync's: maybe a sale not imported yet
        (7, {"orders_in": True}, Verdict.DRIFT),  # the orders are in: an edit
        (14, {}, Verdict.DRIFT),  # more than pimsync's: no sale explains it
        (14, {"kind": "price"}, Verdict.DRIFT),
        (7, {"kind": "price"}, Verdict.DRIFT),  # a price is not sold: no orders to wait for
    ],
)
def test_the_verdict_on_a_reported_value(value, overrides, expected):
    assert verdict(value, **overrides) is expected


# --- trust pimsync ----------------------------------------------------------------------------


@pytest.mark.parametrize("platform", PLATFORMS)
def test_trust_pimsync_pushes_pimsyncs_quantity_back(
    sandbox, webhook_receiver, relay, record_property, platform
):
    # given: pimsync and the channel agree on 10 units, and the echoes of that push are in
    channel = edit_channel(sandbox, platform, receiver=webhook_receiver)
    relay.settle()
    sku = first_listing(channel).variant.sku

    # when: a person sets 25 in the channel's console
    took = timed(
        lambda: console(sandbox, platform, sku, quantity=25),
        done=lambda: (
            shown(sandbox, platform, sku)[1] == 10
            and webhook_findings().filter(resolved_at__isnull=False).exists()
        ),
        relay=relay,
    )

    # then: it was found at once and pimsync's 10 went back; the echo of that push resolved it
    finding = webhook_findings().get()
    assert (finding.sku, finding.field, finding.found, finding.expected) == (
        sku,
        "quantity",
        Decimal(25),
        Decimal(10),
    )
    assert (finding.decision, finding.resync_requested) == ("pushed_back", True)
    assert finding.run_id is None
    assert finding.delivery_id
    assert channel_atp(channel=channel, variant=first_listing(channel).variant) == 10
    report_time(record_property, f"{platform} trust_pimsync quantity", took)


def test_trust_pimsync_pushes_pimsyncs_price_back(sandbox, webhook_receiver, relay):
    channel = edit_channel(sandbox, "shopify", receiver=webhook_receiver)
    relay.settle()
    sku = first_listing(channel).variant.sku

    console(sandbox, "shopify", sku, price="9.99")
    relay.settle()

    assert shown(sandbox, "shopify", sku)[0] == Decimal("20.00")
    finding = webhook_findings().get()
    assert (finding.field, finding.found, finding.expected) == (
        "price",
        Decimal("9.99"),
        Decimal("20.00"),
    )
    assert finding.resolved_at is not None  # the products/update echo of the push-back


# --- trust the channel ------------------------------------------------------------------------


@pytest.mark.parametrize("platform", PLATFORMS)
def test_trust_the_channel_counts_its_quantity_at_the_first_location(
    sandbox, webhook_receiver, relay, record_property, platform
):
    channel = edit_channel(sandbox, platform, receiver=webhook_receiver, policy="trust_channel")
    relay.settle()
    listing = first_listing(channel)
    sku = listing.variant.sku

    took = timed(
        lambda: console(sandbox, platform, sku, quantity=25),
        done=lambda: StockMovement.objects.filter(reason=MovementReason.COUNT).exists(),
        relay=relay,
    )
    relay.settle()

    count = StockMovement.objects.get(reason=MovementReason.COUNT)
    first = channel.channel_locations.get(priority=1).location
    assert (count.location_id, count.delta_on_hand, count.source) == (
        first.pk,
        15,
        f"channel:{channel.pk}",
    )
    assert count.idempotency_key.startswith(f"channel-edit:{channel.pk}:{listing.pk}:")
    assert channel_atp(channel=channel, variant=listing.variant) == 25
    assert shown(sandbox, platform, sku)[1] == 25  # the channel keeps its value
    finding = webhook_findings().get()
    assert (finding.decision, finding.resolved_at is not None) == ("channel_taken", True)
    report_time(record_property, f"{platform} trust_channel quantity", took)


def test_trust_the_channel_takes_its_price_as_the_listings_override(
    sandbox, webhook_receiver, relay
):
    channel = edit_channel(
        sandbox, "woocommerce", receiver=webhook_receiver, policy="trust_channel"
    )
    relay.settle()
    listing = first_listing(channel)

    console(sandbox, "woocommerce", listing.variant.sku, price="24.50")
    relay.settle()

    listing.refresh_from_db()
    assert listing.price_override == Decimal("24.50")
    assert shown(sandbox, "woocommerce", listing.variant.sku)[0] == Decimal("24.50")
    assert webhook_findings().get().decision == "channel_taken"


def test_a_repeated_report_is_counted_once(sandbox, webhook_receiver, relay):
    channel = edit_channel(sandbox, "shopify", receiver=webhook_receiver, policy="trust_channel")
    relay.settle()
    listing = first_listing(channel)
    edit = ListingEdit(
        kind="quantity", value=Decimal(3), inventory_item_id=listing.inventory_item_id
    )
    received = datetime.now(UTC)
    sandbox.platform("shopify").catalog.set_values(listing.variant.sku, quantity=3)  # no webhook
    # a value below pimsync's is compared once an orders poll after it has been applied
    ChannelSyncState.objects.filter(channel=channel).update(
        poll_applied_started_at=received + timedelta(seconds=1)
    )

    for _ in range(2):
        webhook_edits_check(channel=channel, edits=[edit], delivery_id="wh-1", received_at=received)

    assert StockMovement.objects.filter(reason=MovementReason.COUNT).count() == 1
    assert channel_atp(channel=channel, variant=listing.variant) == 3


# --- flag for a person ------------------------------------------------------------------------


@pytest.mark.parametrize("platform", PLATFORMS)
def test_flag_raises_an_alert_with_both_values_and_changes_nothing(
    sandbox, webhook_receiver, relay, record_property, platform
):
    channel = edit_channel(sandbox, platform, receiver=webhook_receiver, policy="flag")
    relay.settle()
    sku = first_listing(channel).variant.sku

    took = timed(
        lambda: console(sandbox, platform, sku, quantity=25),
        done=lambda: Alert.objects.filter(kind="channel_edit", resolved_at__isnull=True).exists(),
        relay=relay,
    )

    alert = Alert.objects.get(kind="channel_edit")
    assert (alert.channel_id, alert.sku) == (channel.pk, sku)
    assert "the channel shows 25, pimsync publishes 10" in alert.message
    assert webhook_findings().get().decision == "flagged"
    assert shown(sandbox, platform, sku)[1] == 25  # left as it is until someone chooses
    assert not SyncMarker.objects.filter(channel=channel).exists()
    report_time(record_property, f"{platform} flag quantity", took)


def test_keep_pimsyncs_value_on_the_alert_pushes_it_back(
    sandbox, webhook_receiver, relay, admin_client
):
    channel = edit_channel(sandbox, "woocommerce", receiver=webhook_receiver, policy="flag")
    relay.settle()
    sku = first_listing(channel).variant.sku
    console(sandbox, "woocommerce", sku, quantity=25)
    relay.settle()
    alert = Alert.objects.get(kind="channel_edit")
    page = admin_client.get(reverse("admin:synclog_alert_change", args=[alert.pk]))
    assert b"Keep pimsync&#x27;s value" in page.content
    assert b"Take the channel" in page.content

    admin_client.post(reverse("admin:synclog_alert_choose", args=[alert.pk]), {"choice": "pimsync"})
    relay.settle()

    alert.refresh_from_db()
    finding = webhook_findings().get()
    assert alert.resolved_at is not None
    assert (finding.decision, finding.decided_by.username) == ("kept_pimsync", "boss")
    assert finding.resolved_at is not None  # the channel shows pimsync's 10 again
    assert shown(sandbox, "woocommerce", sku)[1] == 10


def test_take_the_channels_value_on_the_finding_books_the_count(
    sandbox, webhook_receiver, relay, admin_client
):
    channel = edit_channel(sandbox, "shopify", receiver=webhook_receiver, policy="flag")
    relay.settle()
    listing = first_listing(channel)
    console(sandbox, "shopify", listing.variant.sku, quantity=25)
    relay.settle()
    finding = webhook_findings().get()

    admin_client.post(
        reverse("admin:synclog_driftfinding_choose", args=[finding.pk]), {"choice": "channel"}
    )

    finding.refresh_from_db()
    count = StockMovement.objects.get(reason=MovementReason.COUNT)
    assert (finding.decision, finding.resolved_at is not None) == ("took_channel", True)
    assert count.idempotency_key == f"channel-edit-choice:{finding.pk}"
    assert channel_atp(channel=channel, variant=listing.variant) == 25
    assert Alert.objects.get(kind="channel_edit").resolved_at is not None


# --- sales are not edits ----------------------------------------------------------------------


def test_a_sale_the_order_webhook_brings_raises_no_finding(sandbox, webhook_receiver, relay):
    channel = edit_channel(sandbox, "shopify", receiver=webhook_receiver)
    relay.settle()
    listing = first_listing(channel)

    # a buyer takes 2 units: Shopify sends inventory_levels/update (8) and orders/create
    buy(sandbox, listing.variant.sku, 2)
    relay.settle()

    topics = {r.headers.get("X-Shopify-Topic") for r in relay.receiver.received}
    assert {"inventory_levels/update", "orders/create"} <= topics
    assert not webhook_findings().exists()
    assert channel_atp(channel=channel, variant=listing.variant) == 8
    assert shown(sandbox, "shopify", listing.variant.sku)[1] == 8


def test_a_sale_whose_order_is_not_imported_waits_for_an_orders_poll(
    sandbox, webhook_receiver, relay
):
    channel = edit_channel(sandbox, "shopify", receiver=webhook_receiver)
    relay.settle()
    listing = first_listing(channel)
    buy(sandbox, listing.variant.sku, 2, webhook=False)  # only the level's update arrives

    relay.forward()
    for event in InboundEvent.objects.filter(status="pending"):
        inbound_event_process(event.pk)
    waiting = ChannelEdit.objects.get()
    assert (waiting.listing_id, waiting.reported, waiting.waiting_for) == (listing.pk, 8, "orders")
    assert channel_atp(channel=channel, variant=listing.variant) == 10  # nothing counted

    relay.settle()  # the orders poll imports the sale; then 8 is pimsync's value too

    assert not ChannelEdit.objects.exists()
    assert not webhook_findings().exists()
    assert channel_atp(channel=channel, variant=listing.variant) == 8


def test_a_lower_quantity_no_order_explains_is_an_edit_after_the_poll(
    sandbox, webhook_receiver, relay
):
    channel = edit_channel(sandbox, "woocommerce", receiver=webhook_receiver)
    relay.settle()
    sku = first_listing(channel).variant.sku

    console(sandbox, "woocommerce", sku, quantity=4)
    relay.settle()

    finding = webhook_findings().get()
    assert (finding.found, finding.expected, finding.decision) == (
        Decimal(4),
        Decimal(10),
        "pushed_back",
    )
    assert shown(sandbox, "woocommerce", sku)[1] == 10


# --- pimsync's own pushes -------------------------------------------------------------------


@pytest.mark.parametrize("platform", PLATFORMS)
def test_fifty_of_pimsyncs_own_changes_raise_no_finding(sandbox, webhook_receiver, relay, platform):
    channel = edit_channel(sandbox, platform, receiver=webhook_receiver, skus=5)
    relay.settle()
    listings = list(ChannelListing.objects.filter(channel=channel).select_related("variant"))
    location = channel.channel_locations.get().location
    before = len(relay.receiver.received)

    for n in range(50):
        listing = listings[n % len(listings)]
        if n % 2:
            listing.variant.price = Decimal("20.00") + n
            services.variant_save(variant=listing.variant)
        else:
            services.stock_adjust(
                variant=listing.variant,
                location=location,
                quantity=(n % 7) - 3 or 2,
                reason="adjust",
                source="t",
                idempotency_key=f"own-{n}",
            )
        if n % 5 == 4:  # pushes go out while further changes come in
            relay.settle()
    relay.settle()

    echoes = len(relay.receiver.received) - before
    assert echoes >= 50  # every push came back as a webhook ...
    assert set(relay.answers) == {200}
    assert not webhook_findings().exists()  # ... and none of them was taken for an edit
    assert not ChannelEdit.objects.exists()


def test_a_report_arriving_while_a_push_is_on_its_way_waits_for_it(
    sandbox, webhook_receiver, relay
):
    channel = edit_channel(sandbox, "woocommerce", receiver=webhook_receiver)
    relay.settle()
    listing = first_listing(channel)
    services.stock_adjust(
        variant=listing.variant,
        location=channel.channel_locations.get().location,
        quantity=5,
        reason="adjust",
        source="t",
        idempotency_key="more",
    )
    edit = ListingEdit(kind="quantity", value=Decimal(12), variant_id=listing.external_variant_id)

    outcome = webhook_edits_check(
        channel=channel, edits=[edit], delivery_id="d-1", received_at=datetime.now(UTC)
    )
    assert outcome == {"waiting_push": 1}
    relay.settle()  # the push of 15 goes out; the report from before it is superseded

    assert not ChannelEdit.objects.exists()
    assert not webhook_findings().exists()
    assert shown(sandbox, "woocommerce", listing.variant.sku)[1] == 15


def test_values_of_items_this_channel_does_not_list_are_ignored(sandbox, webhook_receiver, relay):
    channel = edit_channel(sandbox, "shopify", receiver=webhook_receiver)
    edit = ListingEdit(kind="quantity", value=Decimal(3), inventory_item_id="gid://shopify/X/1")

    outcome = webhook_edits_check(
        channel=channel, edits=[edit], delivery_id="d-2", received_at=datetime.now(UTC)
    )

    assert outcome == {"unlisted": 1}
    assert not webhook_findings().exists()
