"""Admin for orders, customers and inbound events: constant queries, read-only, re-process."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from channels_app.models import ChannelOrder, ChannelOrderLine, Customer, InboundEvent
from channels_app.orders.apply import order_apply
from channels_app.orders.events import inbound_event_process
from synclog.models import Alert
from tests.support.webhooks import T0, shopify_headers, shopify_order

pytestmark = pytest.mark.django_db
serial = itertools.count(1)


@pytest.fixture
def channels(channel_factory):
    return [channel_factory(platform="shopify"), channel_factory(platform="woocommerce")]


def make_orders(channels, variant, count: int) -> None:
    for i in range(count):
        n = next(serial)
        customer = Customer.objects.create(email=f"c{n}@example.com", name=f"C {n}")
        for channel in channels:  # the same buyer on every channel
            order = ChannelOrder.objects.create(
                channel=channel,
                external_id=f"{channel.pk}-{n}",
                name=f"#{n}",
                status="paid" if i % 2 else "cancelled",
                currency="USD",
                total=Decimal("10.00"),
                customer=customer,
                customer_email=customer.email,
                placed_at=T0 + timedelta(days=i % 2),
                channel_updated_at=T0,
                first_seen_via="poll" if i % 3 else "webhook",
                seen_via_webhook=bool(i % 3 == 0),
                has_unmatched_lines=bool(i % 4 == 0),
                is_oversold=bool(i % 4 == 1),
            )
            ChannelOrderLine.objects.create(
                order=order,
                external_line_id="1",
                sku=variant.sku,
                variant=variant,
                quantity=1,
                state="committed",
                allocation=[{"location_id": 1, "quantity": 1}],
            )
            InboundEvent.objects.create(
                channel=channel,
                source="poll",
                delivery_id=f"poll:{order.external_id}",
                topic="poll",
                raw_body="{}",
                external_order_id=order.external_id,
                status="failed" if i % 2 else "processed",
                error="boom" if i % 2 else "",
            )


def queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


CHANGELISTS = [
    "admin:channels_app_channelorder_changelist",
    "admin:channels_app_customer_changelist",
    "admin:channels_app_inboundevent_changelist",
]


@pytest.mark.parametrize("name", CHANGELISTS)
def test_changelists_run_the_same_queries_for_n_and_2n_rows(admin_client, channels, variant, name):
    url = reverse(name)
    make_orders(channels, variant, 5)
    few = queries(admin_client, url)
    make_orders(channels, variant, 5)

    assert queries(admin_client, url) == few


@pytest.mark.parametrize(
    "query",
    [
        "status__exact=paid",
        "has_unmatched_lines__exact=1",
        "is_oversold__exact=0",
        "first_seen_via__exact=poll",
        "placed_at__gte=2026-11-01T00:00:00%2B00:00&placed_at__lt=2026-11-02T00:00:00%2B00:00",
        "q={order.customer_email}",
        "q={order.external_id}",
        "q={order.name}",
    ],
)
def test_the_order_list_filters_and_searches(admin_client, channels, variant, query):
    make_orders(channels, variant, 4)
    order = ChannelOrder.objects.order_by("pk").last()
    query = quote(query.format(order=order), safe="=&%")
    url = reverse("admin:channels_app_channelorder_changelist") + "?" + query

    response = admin_client.get(url)

    assert response.status_code == 200
    assert 0 < response.context["cl"].result_count < ChannelOrder.objects.count()


def test_searching_a_sku_finds_each_order_once(admin_client, channels, variant):
    make_orders(channels, variant, 3)

    response = admin_client.get(
        reverse("admin:channels_app_channelorder_changelist") + f"?q={variant.sku}"
    )

    assert response.context["cl"].result_count == 6


def test_the_customer_list_sums_spend_without_cancelled_orders(admin_client, channels, variant):
    make_orders(channels, variant, 2)  # customer 1: cancelled on both channels, 2: paid on both

    response = admin_client.get(reverse("admin:channels_app_customer_changelist"))

    spend = {c.email: c.spend for c in response.context["cl"].result_list}
    assert sorted(spend.values(), key=lambda v: v or 0) == [None, Decimal("20.00")]


def test_the_order_page_shows_lines_and_the_orders_stock_effects(admin_client, shop, location):
    body = shopify_order(5001)
    event = InboundEvent.objects.create(
        channel=shop,
        source="webhook",
        delivery_id="wh-1",
        topic="orders/paid",
        headers=shopify_headers(body, signature=""),
        raw_body=body.decode(),
    )
    inbound_event_process(event.pk)
    order = ChannelOrder.objects.get()

    response = admin_client.get(reverse("admin:channels_app_channelorder_change", args=[order.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert "Committed" in page  # the line's state
    assert f"{location.code} × 2" in page  # its allocation
    assert f"order:{shop.pk}:5001:50010:commit:{location.pk}" in page  # the ledger row's key
    assert 'name="_save"' not in page  # read-only


def test_the_customer_page_lists_orders_from_every_channel(admin_client, channels, variant):
    make_orders(channels, variant, 2)
    customer = Customer.objects.filter(orders__status="paid").distinct().get()

    response = admin_client.get(reverse("admin:channels_app_customer_change", args=[customer.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert all(channel.name in page for channel in channels)
    assert "20.00 USD" in page


def test_failed_events_are_re_processed_from_the_admin_after_confirmation(
    admin_client, shop, location, monkeypatch, settings
):
    settings.PIMSYNC_WEBHOOK_MAX_ATTEMPTS = 1
    body = shopify_order(5001)
    event = InboundEvent.objects.create(
        channel=shop,
        source="webhook",
        delivery_id="wh-1",
        topic="orders/paid",
        headers=shopify_headers(body, signature=""),
        raw_body=body.decode(),
    )

    def broken(**kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr("channels_app.orders.events.order_apply", broken)
    inbound_event_process(event.pk)
    monkeypatch.setattr("channels_app.orders.events.order_apply", order_apply)
    url = reverse("admin:channels_app_inboundevent_changelist")
    form = {"action": "reprocess_action", ACTION_CHECKBOX_NAME: [event.pk]}

    confirm = admin_client.post(url, form)
    assert confirm.status_code == 200
    assert InboundEvent.objects.get().status == "failed"  # nothing before confirming

    done = admin_client.post(url, {**form, "confirm": "yes"}, follow=True)

    assert "Re-processed: 1 processed." in done.content.decode()
    assert InboundEvent.objects.get().status == "processed"
    assert Alert.objects.get(kind="repeated_failure").resolved_at is not None


def test_the_event_page_is_read_only_and_shows_the_body(admin_client, shop):
    body = shopify_order(5001)
    event = InboundEvent.objects.create(
        channel=shop,
        source="webhook",
        delivery_id="wh-1",
        topic="orders/paid",
        headers=shopify_headers(body, signature=""),
        raw_body=body.decode(),
    )

    response = admin_client.get(reverse("admin:channels_app_inboundevent_change", args=[event.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert "&quot;line_items&quot;" in page
    assert 'name="_save"' not in page
