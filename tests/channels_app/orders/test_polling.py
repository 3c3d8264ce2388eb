"""Polling: orders changed since the cursor, through the same event path, against the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from channels_app import dispatch
from channels_app.connectors.http import encode_page_cursor
from channels_app.models import ChannelOrder, ChannelSyncState, Customer, InboundEvent
from channels_app.orders.polling import channel_poll, channels_poll_due, poll_start_cursor
from channels_app.tasks import channel_poll_task
from inventory import services
from inventory.models import StockLevel
from sandbox.server import RunningSandbox
from tests.support.sandbox import (
    MAGENTO_TOKEN,
    SHOPIFY_LOCATION,
    SHOPIFY_TOKEN,
    WOO_KEY,
    WOO_SECRET,
    control,
)

SKU = "POLL-1"
CONNECTION = {
    "shopify": ({"access_token": SHOPIFY_TOKEN}, {"location_id": SHOPIFY_LOCATION}),
    "woocommerce": ({"consumer_key": WOO_KEY, "consumer_secret": WOO_SECRET}, {}),
    "ebay": (
        {"access_token": "sandbox-ebay-token"},
        {"marketplace_id": "EBAY_US", "rate_limit_per_second": 0},
    ),
    "amazon": (
        {"access_token": "sandbox-amazon-token"},
        {"seller_id": "A2SANDBOXSELLER", "marketplace_id": "ATVPDKIKX0DER", "pacing": False},
    ),
    "magento": ({"access_token": MAGENTO_TOKEN}, {}),
}


@pytest.fixture
def stock(db, location, variant_factory):
    variant = variant_factory(sku=SKU)
    services.stock_adjust(
        variant=variant,
        location=location,
        quantity=1000,
        reason="receive",
        source="t",
        idempotency_key="seed-poll",
    )
    return variant


@pytest.fixture
def polled_channel(
    sandbox: RunningSandbox, stock, location, channel_factory, channel_location_factory
):
    """A channel of the given platform on the sandbox, fed by `location`, SKU seeded there."""

    def make(platform: str) -> Any:
        credentials, platform_config = CONNECTION[platform]
        channel = channel_factory(
            platform=platform,
            slug=f"poll-{platform}",
            base_url=sandbox.platform_url(platform),
            credentials=credentials,
            platform_config=platform_config,
        )
        channel_location_factory(channel=channel, location=location)
        status, _ = control(
            sandbox.url,
            "POST",
            "/_control/seed",
            {platform: [{"sku": SKU, "price": "20.00", "quantity": 1000}]},
        )
        assert status == 200
        return channel

    return make


def create_orders(sandbox: RunningSandbox, platform: str, count: int) -> list[dict]:
    created = []
    for _ in range(count):
        status, answer = control(
            sandbox.url,
            "POST",
            "/_control/orders",
            {
                "platform": platform,
                "lines": [{"sku": SKU, "quantity": 1}],
                "financial_status": "paid",
                "adjust_stock": False,
                "webhook": False,
            },
        )
        assert status == 201, answer
        created.append(answer["order"])
    return created


def committed() -> int:
    return StockLevel.objects.get(variant__sku=SKU).committed


def test_woocommerce_poll_reads_250_orders_across_pages_without_duplicates(
    sandbox, polled_channel, settings
):
    settings.PIMSYNC_POLL_OVERLAP_SECONDS = 300
    channel = polled_channel("woocommerce")
    created = create_orders(sandbox, "woocommerce", 250)

    first = channel_poll(channel.pk)

    assert (first.pages, first.orders, first.new_events) == (3, 250, 250)
    assert (first.processed, first.failed, first.next_cursor, first.error) == (250, 0, None, "")
    assert (
        InboundEvent.objects.filter(channel=channel, source="poll", status="processed").count()
        == 250
    )
    assert ChannelOrder.objects.filter(channel=channel, first_seen_via="poll").count() == 250
    assert committed() == 250
    state = ChannelSyncState.objects.get(channel=channel)
    newest = max(order["date_modified_gmt"] for order in created)
    assert state.poll_cursor == f"{newest}Z" == first.cursor
    assert state.polled_at is not None

    # The overlap reads the same changes again: nothing new is stored or applied.
    second = channel_poll(channel.pk)

    assert (second.orders, second.new_events) == (250, 0)
    assert InboundEvent.objects.filter(channel=channel).count() == 250
    assert committed() == 250

    # A real change is one new event, applied.
    cancelled = created[17]["id"]
    status, _ = control(
        sandbox.url,
        "POST",
        f"/_control/orders/woocommerce/{cancelled}",
        {"action": "cancel", "webhook": False},
    )
    assert status == 200

    third = channel_poll(channel.pk)

    assert third.new_events == 1
    assert (
        ChannelOrder.objects.get(channel=channel, external_id=str(cancelled)).status == "cancelled"
    )
    assert committed() == 249


def test_a_magento_configurable_line_counts_once_and_its_buyer_is_matched(sandbox, polled_channel):
    channel = polled_channel("magento")
    # the SKU is the simple child of a configurable in Magento
    sandbox.platform("magento").seed(
        [{"sku": SKU, "price": "20.00", "quantity": 1000, "group": "POLL"}]
    )
    known = Customer.objects.create(email="ann@example.com", name="Ann")
    status, answer = control(
        sandbox.url,
        "POST",
        "/_control/orders",
        {
            "platform": "magento",
            "lines": [{"sku": SKU, "quantity": 2}],
            "financial_status": "pending",
            "email": "Ann@Example.com",
        },
    )
    assert status == 201
    assert [i["product_type"] for i in answer["order"]["items"]] == ["configurable", "simple"]

    channel_poll(channel.pk)
    order = ChannelOrder.objects.get(channel=channel)
    level = StockLevel.objects.get(variant__sku=SKU)

    assert [(line.sku, line.quantity, line.state) for line in order.lines.all()] == [
        (SKU, 2, "reserved")
    ]
    assert (level.reserved, level.committed) == (2, 0)
    assert order.customer == known

    # invoiced in Magento: the reservation becomes a commitment, once
    control(sandbox.url, "POST", f"/_control/orders/magento/{order.external_id}", {"action": "pay"})
    channel_poll(channel.pk)

    level.refresh_from_db()
    assert (level.reserved, level.committed) == (0, 2)
    assert ChannelOrder.objects.get(pk=order.pk).status == "paid"


def test_a_poll_cut_short_by_the_page_bound_continues_without_moving_the_cursor(
    sandbox, polled_channel, settings, task_sends
):
    settings.PIMSYNC_POLL_MAX_PAGES = 1
    channel = polled_channel("shopify")
    create_orders(sandbox, "shopify", 15)  # Shopify pages hold 10 orders (ORDERS_PAGE_MAX)

    first = channel_poll_task(channel.pk)

    assert (first["pages"], first["orders"], first["new_events"]) == (1, 10, 10)
    assert first["next_cursor"] is not None
    assert ChannelSyncState.objects.get(channel=channel).poll_cursor == ""
    continued = [sent.kwargs for sent in task_sends.named(dispatch.POLL)]
    assert continued == [
        {
            "resume_cursor": first["next_cursor"],
            "resume_hwm": first["hwm"],
            "resume_started": first["started"],
        }
    ]

    rest = channel_poll_task(channel.pk, **continued[0])

    assert (rest["pages"], rest["orders"], rest["new_events"], rest["next_cursor"]) == (
        1,
        5,
        5,
        None,
    )
    assert len(continued) == 1
    assert ChannelSyncState.objects.get(channel=channel).poll_cursor == rest["cursor"] != ""
    assert ChannelOrder.objects.filter(channel=channel).count() == 15


@pytest.mark.parametrize("platform", ["ebay", "amazon", "magento"])
def test_polling_channels_without_webhooks_stores_their_cursor(sandbox, polled_channel, platform):
    channel = polled_channel(platform)
    create_orders(sandbox, platform, 5)

    first = channel_poll(channel.pk)
    second = channel_poll(channel.pk)

    assert (first.orders, first.new_events, first.error) == (5, 5, "")
    assert second.new_events == 0
    assert ChannelOrder.objects.filter(channel=channel, seen_via_webhook=False).count() == 5
    assert ChannelSyncState.objects.get(channel=channel).poll_cursor == first.cursor != ""


def test_a_channel_error_stops_the_poll_and_keeps_the_cursor(sandbox, polled_channel):
    channel = polled_channel("woocommerce")
    ChannelSyncState.objects.update_or_create(
        channel=channel, defaults={"poll_cursor": "2026-11-01T12:00:00Z"}
    )
    control(sandbox.url, "POST", "/_control/faults", {"woocommerce": {"auth": 1.0}})

    report = channel_poll(channel.pk)

    assert report.error.startswith("auth")
    assert ChannelSyncState.objects.get(channel=channel).poll_cursor == "2026-11-01T12:00:00Z"


# --- where a poll starts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("2026-11-01T12:00:00Z", "2026-11-01T11:55:00Z"),
        ("2026-11-01T12:00:00.731Z", "2026-11-01T11:55:00Z"),
        (
            encode_page_cursor({"since": "2026-10-01T00:00:00Z", "hwm": "2026-11-01T12:00:00Z"}),
            "2026-11-01T11:55:00Z",
        ),
    ],
)
def test_a_poll_starts_the_overlap_before_the_stored_cursor(
    db, channel_factory, settings, stored, expected
):
    settings.PIMSYNC_POLL_OVERLAP_SECONDS = 300

    assert poll_start_cursor(channel_factory(), stored) == expected


@pytest.mark.parametrize("stored", ["", "not a time"])
def test_without_a_usable_cursor_a_poll_starts_at_the_channels_creation(
    db, channel_factory, settings, stored
):
    settings.PIMSYNC_POLL_OVERLAP_SECONDS = 60
    channel = channel_factory()
    channel.created_at = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)

    assert poll_start_cursor(channel, stored) == "2026-11-01T08:59:00Z"


# --- which channels are due ------------------------------------------------------------------


@pytest.fixture
def poll_requests(monkeypatch):
    sent: list[int] = []

    def send_task(name, args=None, **kwargs):
        if name == dispatch.POLL:
            sent.append(args[0])

    monkeypatch.setattr("celery.current_app.send_task", send_task)
    return sent


def test_due_channels_are_enqueued_once_and_claimed(db, channel_factory, poll_requests):
    now = timezone.now()
    never = channel_factory(poll_interval_seconds=60)
    stale = channel_factory(poll_interval_seconds=60)
    recent = channel_factory(poll_interval_seconds=60)
    channel_factory(poll_interval_seconds=60, is_enabled=False)
    ChannelSyncState.objects.create(channel=stale, polled_at=now - timedelta(seconds=61))
    ChannelSyncState.objects.create(channel=recent, polled_at=now - timedelta(seconds=30))

    assert sorted(channels_poll_due(now=now)) == sorted([never.pk, stale.pk])
    assert channels_poll_due(now=now + timedelta(seconds=31)) == [recent.pk]

    assert sorted(poll_requests) == sorted([never.pk, stale.pk, recent.pk])
    assert ChannelSyncState.objects.get(channel=never).polled_at == now


def test_a_broker_failure_gives_the_claim_back(db, channel_factory, broker_down):
    channel = channel_factory()
    before = timezone.now() - timedelta(hours=1)
    ChannelSyncState.objects.create(channel=channel, polled_at=before)

    assert channels_poll_due() == []
    assert ChannelSyncState.objects.get(channel=channel).polled_at == before
