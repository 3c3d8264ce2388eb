"""Webhooks registered on connect: saving or testing a Shopify or WooCommerce channel
creates or repairs its subscriptions on the channel (here the sandbox), and the
channel page and the API show each topic's state."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse

from channels_app import dispatch, services
from channels_app.models import Channel, WebhookSubscription
from channels_app.webhook_subscriptions import channel_webhook_address, channel_webhooks_register
from tests.support.sandbox import SHOPIFY_LOCATION, SHOPIFY_TOKEN, WOO_KEY, WOO_SECRET

pytestmark = pytest.mark.django_db
PUBLIC = "https://pimsync.example.com"
SHOPIFY_TOPICS = {
    "orders/create",
    "orders/paid",
    "orders/cancelled",
    "orders/fulfilled",
    "orders/updated",
    "inventory_levels/update",
    "products/update",
}
WOO_TOPICS = {"order.created", "order.updated", "product.updated"}


def make_channel(sandbox, platform: str, **fields: object) -> Channel:
    credentials = (
        {"access_token": SHOPIFY_TOKEN}
        if platform == "shopify"
        else {"consumer_key": WOO_KEY, "consumer_secret": WOO_SECRET}
    )
    values = {
        "name": platform,
        "slug": f"{platform}-shop",
        "platform": platform,
        "base_url": sandbox.platform_url(platform),
        "credentials": credentials,
        "webhook_secret": "whsec-registration",
        "platform_config": {"location_id": SHOPIFY_LOCATION} if platform == "shopify" else {},
        "public_url": PUBLIC,
        "rate_limit_per_second": Decimal("1000"),
    }
    return Channel.objects.create(**(values | fields))


def states(channel: Channel) -> dict[str, str]:
    return dict(WebhookSubscription.objects.filter(channel=channel).values_list("topic", "state"))


def held(sandbox, platform: str) -> list[tuple[str, str, str]]:
    """(topic, address, status) of what the sandbox platform holds."""
    return sorted(
        (s.topic, s.address, s.status) for s in sandbox.platform(platform).subscriptions.values()
    )


@pytest.mark.parametrize(
    ("platform", "topics"), [("shopify", SHOPIFY_TOPICS), ("woocommerce", WOO_TOPICS)]
)
def test_every_topic_pimsync_reads_is_created(sandbox, platform, topics):
    channel = make_channel(sandbox, platform)
    address = f"{PUBLIC}/webhooks/{channel.slug}/"

    registration = channel_webhooks_register(channel=channel)

    assert registration.ok
    assert states(channel) == dict.fromkeys(topics, "registered")
    assert held(sandbox, platform) == sorted((t, address, "active") for t in topics)
    assert set(WebhookSubscription.objects.values_list("note", flat=True)) == {"created"}


def test_a_second_registration_changes_nothing(sandbox):
    channel = make_channel(sandbox, "woocommerce")
    channel_webhooks_register(channel=channel)
    calls = sandbox.platform("woocommerce").counters.snapshot()["calls"]

    again = channel_webhooks_register(channel=channel)

    assert again.ok
    assert sandbox.platform("woocommerce").counters.snapshot()["calls"] == calls + 1  # one list
    assert len(held(sandbox, "woocommerce")) == 3


def test_a_subscription_to_an_old_address_is_repaired_not_duplicated(sandbox):
    channel = make_channel(sandbox, "shopify")
    platform = sandbox.platform("shopify")
    old = platform.subscription_add(topic="products/update", address="https://old.example.com/wh/")

    found = channel_webhooks_register(channel=channel, repair=False)
    repaired = channel_webhooks_register(channel=channel)

    assert found.topics["products/update"].state == "wrong_url"
    assert repaired.ok
    row = WebhookSubscription.objects.get(channel=channel, topic="products/update")
    assert (row.state, row.external_id, row.note) == (
        "registered",
        old.id,
        "repaired (was https://old.example.com/wh/)",
    )
    assert platform.subscriptions[old.id].address == channel_webhook_address(channel)
    assert len(platform.subscriptions) == len(SHOPIFY_TOPICS)


def test_a_disabled_woocommerce_webhook_is_made_active_and_foreign_ones_are_left_alone(sandbox):
    channel = make_channel(sandbox, "woocommerce")
    platform = sandbox.platform("woocommerce")
    address = channel_webhook_address(channel)
    ours = platform.subscription_add(
        topic="order.updated", address=address, name="pimsync order.updated", status="disabled"
    )
    foreign = platform.subscription_add(
        topic="order.created", address="https://crm.example.com/hook", name="CRM"
    )

    registration = channel_webhooks_register(channel=channel)

    assert registration.ok
    assert registration.topics["order.updated"].note == "reactivated"
    assert platform.subscriptions[ours.id].status == "active"
    assert platform.subscriptions[foreign.id].address == "https://crm.example.com/hook"
    assert held(sandbox, "woocommerce") == sorted(
        [
            ("order.created", "https://crm.example.com/hook", "active"),
            ("order.created", address, "active"),
            ("order.updated", address, "active"),
            ("product.updated", address, "active"),
        ]
    )


def test_without_a_public_url_each_topic_shows_why_it_failed(sandbox, settings):
    settings.PIMSYNC_PUBLIC_URL = ""
    channel = make_channel(sandbox, "woocommerce", public_url="")

    registration = channel_webhooks_register(channel=channel)

    assert not registration.ok
    rows = WebhookSubscription.objects.filter(channel=channel)
    assert {(r.state, r.error) for r in rows} == {
        ("failed", "No public URL: set PIMSYNC_PUBLIC_URL or the channel's public URL.")
    }
    assert held(sandbox, "woocommerce") == []


def test_the_site_wide_public_url_is_used_when_the_channel_has_none(sandbox, settings):
    settings.PIMSYNC_PUBLIC_URL = "https://pim.example.org/"
    channel = make_channel(sandbox, "shopify", public_url="")

    assert channel_webhook_address(channel) == "https://pim.example.org/webhooks/shopify-shop/"


def test_a_refusal_is_kept_with_the_channels_error(sandbox):
    channel = make_channel(sandbox, "shopify", public_url="http://pimsync.example.com")

    registration = channel_webhooks_register(channel=channel)

    assert not registration.ok
    row = WebhookSubscription.objects.get(channel=channel, topic="orders/create")
    assert row.state == "failed"
    assert row.error == "orders/create: USER_ERROR: Address protocol http:// is not supported"


def test_saving_a_channel_asks_for_its_registration_after_commit(
    sandbox, task_sends, django_capture_on_commit_callbacks
):
    channel = make_channel(sandbox, "woocommerce")
    ebay = make_channel(sandbox, "ebay", slug="ebay-shop")

    with django_capture_on_commit_callbacks(execute=True):
        services.channel_save(channel=channel, changed_fields=["new_webhook_secret"])
        services.channel_save(channel=ebay)

    assert [(s.args, s.kwargs) for s in task_sends.named(dispatch.WEBHOOKS_REGISTER)] == [
        ([channel.pk], {"refresh_secret": True})
    ]


def test_testing_the_connection_registers_and_says_so(sandbox):
    channel = make_channel(sandbox, "woocommerce")

    check = services.channel_test_connection(channel=channel)

    assert check.ok
    assert "Webhooks: woocommerce: webhooks to https://pimsync.example.com/webhooks/" in (
        check.message
    )
    assert "3 registered (3 created)" in check.message
    assert states(channel) == dict.fromkeys(WOO_TOPICS, "registered")


def test_the_channel_page_and_the_api_show_each_topics_state(sandbox, admin_client):
    channel = make_channel(sandbox, "woocommerce")
    platform = sandbox.platform("woocommerce")
    platform.subscription_add(
        topic="product.updated", address="https://old.example.com/", name="pimsync product"
    )
    channel_webhooks_register(channel=channel, repair=False)

    page = admin_client.get(reverse("admin:channels_app_channel_change", args=[channel.pk]))
    api = admin_client.get(f"/api/v1/channels/{channel.pk}/").json()

    html = page.content.decode()
    assert "Registered to another URL" in html
    assert "https://old.example.com/" in html
    assert {(w["topic"], w["state"]) for w in api["webhooks"]} == {
        ("order.created", "missing"),
        ("order.updated", "missing"),
        ("product.updated", "wrong_url"),
    }


def test_the_command_registers_every_enabled_webhook_channel(sandbox, capsys):
    make_channel(sandbox, "shopify")
    make_channel(sandbox, "woocommerce")
    make_channel(sandbox, "shopify", slug="off", name="off", is_enabled=False)

    call_command("webhooks_register")

    out = capsys.readouterr().out
    assert (
        "shopify: webhooks to https://pimsync.example.com/webhooks/shopify-shop/: 7 registered"
        in out
    )
    assert "woocommerce: webhooks to" in out
    assert "off" not in out
