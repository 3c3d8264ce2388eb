"""POST /webhooks/<slug>/: what is accepted, stored, refused, and what each answer is."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.test import RequestFactory
from django.utils import timezone

from channels_app.connectors.base import ChannelConfig
from channels_app.connectors.shopify import ShopifyConnector
from channels_app.connectors.woocommerce import WooCommerceConnector
from channels_app.models import ChannelOrder, InboundEvent
from channels_app.orders.events import inbound_event_process, inbound_sweep
from channels_app.orders.webhooks import webhook_receive
from inventory.models import StockLevel
from synclog.models import Alert
from tests.support.sandbox import control
from tests.support.webhooks import (
    SECRET,
    deliver,
    shopify_headers,
    shopify_order,
    sign,
    woo_headers,
    woo_order,
)

# Fixed vector: base64(HMAC-SHA256(key="hush", msg=b'{"id":1}')), also checked with
# `printf '{"id":1}' | openssl dgst -sha256 -hmac hush -binary | base64`.
VECTOR_BODY = b'{"id":1}'
VECTOR_SIGNATURE = "VnKUjZsLuN5iZWjn5EntcBVCF9kMN43LglzCE1/GSeY="


def config(platform: str, secret: str = SECRET) -> ChannelConfig:
    return ChannelConfig(
        channel_id=1,
        platform=platform,
        base_url="http://127.0.0.1:9",
        credentials={},
        webhook_secret=secret,
    )


# --- the fixed vector, no database ---------------------------------------------------------------


def test_the_fixed_vector_is_what_hmac_sha256_base64_gives():
    assert sign(VECTOR_BODY, "hush") == VECTOR_SIGNATURE


def test_both_connectors_accept_the_fixed_vector_and_nothing_else():
    shopify = ShopifyConnector(config("shopify"))
    woo = WooCommerceConnector(config("woocommerce"))

    assert shopify.verify_webhook({"x-shopify-hmac-sha256": VECTOR_SIGNATURE}, VECTOR_BODY)
    assert woo.verify_webhook({"X-WC-Webhook-Signature": VECTOR_SIGNATURE}, VECTOR_BODY)
    assert not shopify.verify_webhook({"X-Shopify-Hmac-Sha256": VECTOR_SIGNATURE}, b'{"id":2}')
    assert not woo.verify_webhook({"X-WC-Webhook-Signature": VECTOR_SIGNATURE}, b'{"id":2}')


def test_woocommerce_decodes_html_entities_in_the_secret_before_signing():
    # WordPress stores "a&b" as "a&amp;b" and signs with the decoded form.
    woo = WooCommerceConnector(config("woocommerce", secret="a&amp;b"))

    assert woo.verify_webhook({"X-WC-Webhook-Signature": sign(VECTOR_BODY, "a&b")}, VECTOR_BODY)


# --- accepted -------------------------------------------------------------------------------------


def test_shopify_fixed_vector_is_accepted_and_stored(shop, post, enqueued):
    headers = shopify_headers(VECTOR_BODY, topic="shop/update", signature=VECTOR_SIGNATURE)

    response = post("shop", VECTOR_BODY, headers)

    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert response.json() == {"ok": True, "event_id": event.pk, "duplicate": False, "ping": False}
    assert (event.channel, event.source, event.status) == (shop, "webhook", "pending")
    assert (event.delivery_id, event.topic, event.raw_body) == ("wh-1", "shop/update", '{"id":1}')
    assert event.body_sha256 == hashlib.sha256(VECTOR_BODY).hexdigest()
    # The endpoint's own INSERT fills the columns as the ORM would.
    assert (event.attempts, event.processed_at, event.error) == (0, None, "")
    assert abs((timezone.now() - event.received_at).total_seconds()) < 60
    assert event.headers["X-Shopify-Topic"] == "shop/update"
    assert enqueued == [event.pk]


def test_woocommerce_fixed_vector_is_accepted_and_stored(woo, post, enqueued):
    headers = woo_headers(VECTOR_BODY, topic="order.deleted", signature=VECTOR_SIGNATURE)

    response = post("woo", VECTOR_BODY, headers)

    assert response.status_code == 200
    event = InboundEvent.objects.get()
    # WooCommerce's delivery id repeats within a second: the body hash makes it unique.
    assert event.delivery_id == f"d41d8cd9:{event.body_sha256[:16]}"
    assert (event.topic, event.external_order_id) == ("order.deleted", "1")
    assert enqueued == [event.pk]


def test_an_order_delivery_stores_the_order_id_and_selected_headers_only(shop, post, enqueued):
    body = shopify_order(5001)
    headers = {**shopify_headers(body), "Cookie": "sessionid=abc", "Authorization": "Bearer x"}

    assert post("shop", body, headers).status_code == 200

    event = InboundEvent.objects.get()
    assert event.external_order_id == "5001"
    assert set(event.headers) == {
        "Content-Type",
        "X-Shopify-Topic",
        "X-Shopify-Shop-Domain",
        "X-Shopify-API-Version",
        "X-Shopify-Webhook-Id",
        "X-Shopify-Event-Id",
        "X-Shopify-Triggered-At",
    }


def test_a_duplicate_delivery_is_answered_200_and_stored_and_enqueued_once(shop, post, enqueued):
    body = shopify_order(5001)

    first = post("shop", body, shopify_headers(body, webhook_id="wh-9"))
    second = post("shop", body, shopify_headers(body, webhook_id="wh-9"))

    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.json()["duplicate"], second.json()["duplicate"]) == (False, True)
    assert first.json()["event_id"] == second.json()["event_id"]
    assert InboundEvent.objects.count() == 1
    assert enqueued == [first.json()["event_id"]]


def test_two_woocommerce_deliveries_sharing_a_delivery_id_in_one_second_are_both_kept(
    woo, post, enqueued
):
    a, b = woo_order(7001), woo_order(7002)

    assert post("woo", a, woo_headers(a, delivery_id="same")).status_code == 200
    assert post("woo", b, woo_headers(b, delivery_id="same")).status_code == 200

    assert sorted(InboundEvent.objects.values_list("external_order_id", flat=True)) == [
        "7001",
        "7002",
    ]


def test_woocommerce_creation_ping_gets_200_and_nothing_is_stored(woo, post, enqueued):
    response = post("woo", b"webhook_id=3", {}, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 200
    assert response.json()["ping"] is True
    assert InboundEvent.objects.count() == 0
    assert Alert.objects.count() == 0


# --- refused: signatures --------------------------------------------------------------------------


@pytest.fixture
def alert_on_first_refusal(settings):
    """The default threshold waits for 3 refusals in 15 min; these tests look at one."""
    settings.PIMSYNC_HEALTH_BAD_SIGNATURE_THRESHOLD = 1


def _bad_signature_cases():
    body = shopify_order(5001)
    changed = body.replace(b'"quantity": 2', b'"quantity": 3')
    assert len(changed) == len(body)  # one byte differs
    assert changed != body
    woo_body = woo_order(7001)
    woo_changed = woo_body.replace(b'"quantity": 2', b'"quantity": 9')
    return [
        pytest.param(
            "shop",
            body,
            shopify_headers(body, signature=sign(body, "other")),
            id="shopify-wrong-secret",
        ),
        pytest.param("shop", body, shopify_headers(body, signature=""), id="shopify-missing"),
        pytest.param("shop", changed, shopify_headers(body), id="shopify-one-byte-changed"),
        pytest.param(
            "shop", body, shopify_headers(body, signature="bm9wZQ=="), id="shopify-garbage"
        ),
        pytest.param(
            "woo",
            woo_body,
            woo_headers(woo_body, signature=sign(woo_body, "other")),
            id="woo-wrong-secret",
        ),
        pytest.param("woo", woo_body, woo_headers(woo_body, signature=""), id="woo-missing"),
        pytest.param("woo", woo_changed, woo_headers(woo_body), id="woo-one-byte-changed"),
    ]


@pytest.mark.parametrize(("slug", "body", "headers"), _bad_signature_cases())
def test_a_bad_signature_is_refused_401_nothing_stored_and_counted(
    shop, woo, post, enqueued, slug, body, headers, alert_on_first_refusal
):
    first = post(slug, body, headers)
    second = post(slug, body, headers)

    assert (first.status_code, second.status_code) == (401, 401)
    assert first.json()["error"] == "invalid_signature"
    assert InboundEvent.objects.count() == 0
    assert enqueued == []
    alert = Alert.objects.get(kind="bad_signature")
    assert (alert.channel.slug, alert.count) == (slug, 2)


def test_a_channel_without_a_secret_refuses_everything(
    shop, post, enqueued, alert_on_first_refusal
):
    shop.webhook_secret = ""
    shop.save()
    body = shopify_order()

    response = post("shop", body, shopify_headers(body))

    assert response.status_code == 401
    assert "no webhook secret" in Alert.objects.get(kind="bad_signature").message
    assert InboundEvent.objects.count() == 0


# --- refused: replay window -----------------------------------------------------------------------


def test_a_replayed_delivery_with_an_old_timestamp_is_refused(
    shop, post, enqueued, settings, alert_on_first_refusal
):
    settings.PIMSYNC_WEBHOOK_REPLAY_SECONDS = 6 * 3600
    body = shopify_order()
    old = datetime.now(UTC) - timedelta(hours=7)

    response = post("shop", body, shopify_headers(body, triggered_at=old))

    assert response.status_code == 401
    assert InboundEvent.objects.count() == 0
    assert "stale delivery" in Alert.objects.get(kind="bad_signature").message


def test_a_shopify_retry_late_in_its_four_hour_schedule_is_accepted(shop, post, enqueued):
    body = shopify_order()
    late_retry = datetime.now(UTC) - timedelta(hours=3, minutes=59)

    response = post("shop", body, shopify_headers(body, triggered_at=late_retry))

    assert response.status_code == 200
    assert InboundEvent.objects.count() == 1


# --- refused: body --------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", ["shop", "woo"])
def test_malformed_json_with_a_valid_signature_is_400_logged_and_not_stored(
    shop, woo, post, enqueued, caplog, slug
):
    body = b'{"id": 1, "line_items": ['
    headers = (
        shopify_headers(body, webhook_id="wh-bad")
        if slug == "shop"
        else woo_headers(body, delivery_id="wh-bad")
    )

    with caplog.at_level(logging.WARNING, logger="channels_app.orders.webhooks"):
        response = post(slug, body, headers)

    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"
    assert InboundEvent.objects.count() == 0
    [record] = [r for r in caplog.records if r.name == "channels_app.orders.webhooks"]
    assert f"channel {slug}" in record.getMessage()
    assert "delivery wh-bad" in record.getMessage()


def test_an_order_topic_whose_body_is_no_order_is_400(shop, post, enqueued):
    body = json.dumps({"id": 1, "line_items": "nope"}).encode()

    response = post("shop", body, shopify_headers(body, topic="orders/create"))

    assert (response.status_code, response.json()["error"]) == (400, "unreadable_payload")
    assert InboundEvent.objects.count() == 0


def test_a_body_over_the_limit_is_413(shop, post, enqueued, settings):
    settings.PIMSYNC_WEBHOOK_MAX_BYTES = 64
    body = b'{"id":1,"pad":"' + b"x" * 60 + b'"}'

    response = post("shop", body, shopify_headers(body, topic="shop/update"))

    assert response.status_code == 413
    assert InboundEvent.objects.count() == 0


def test_a_body_at_the_limit_passes_the_size_check(shop, post, enqueued, settings):
    settings.PIMSYNC_WEBHOOK_MAX_BYTES = len(VECTOR_BODY)
    headers = shopify_headers(VECTOR_BODY, topic="shop/update", signature=VECTOR_SIGNATURE)

    assert post("shop", VECTOR_BODY, headers).status_code == 200


class ExplodingStream(io.RawIOBase):
    """A request body that must not be read."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")


def test_an_oversize_declared_length_is_refused_before_the_body_is_read(shop, settings):
    settings.PIMSYNC_WEBHOOK_MAX_BYTES = 1024 * 1024
    request = RequestFactory().post("/webhooks/shop/", data=b"", content_type="application/json")
    request.META["CONTENT_LENGTH"] = str(50 * 1024 * 1024)
    request.META["wsgi.input"] = ExplodingStream()
    request._stream = ExplodingStream()

    response = webhook_receive(request, "shop")

    assert response.status_code == 413
    assert json.loads(response.content)["error"] == "too_large"


# --- refused: routing -----------------------------------------------------------------------------


def test_an_unknown_or_disabled_channel_is_404(shop, post, enqueued):
    body = shopify_order()
    shop.is_enabled = False
    shop.save()

    unknown = post("nope", body, shopify_headers(body))
    disabled = post("shop", body, shopify_headers(body))

    assert (unknown.status_code, disabled.status_code) == (404, 404)
    assert unknown.json()["error"] == "unknown_channel"
    assert InboundEvent.objects.count() == 0


@pytest.mark.parametrize("platform", ["ebay", "amazon", "magento"])
def test_platforms_without_http_webhooks_are_404_with_a_reason(
    db, channel_factory, post, enqueued, platform
):
    channel_factory(platform=platform, slug=platform, webhook_secret=SECRET)

    response = post(platform, VECTOR_BODY, {})

    assert response.status_code == 404
    assert response.json()["error"] == "webhooks_unsupported"
    assert "polling" in response.json()["detail"]


def test_get_is_405(client, shop):
    response = client.get("/webhooks/shop/")

    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_no_session_or_csrf_token_is_needed(shop, enqueued, django_capture_on_commit_callbacks):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    body = shopify_order()

    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(strict, "shop", body, shopify_headers(body))

    assert response.status_code == 200


# --- the broker is down ---------------------------------------------------------------------------


def test_with_the_broker_down_a_delivery_is_stored_answered_and_swept_later(
    shop, post, broker_down, caplog
):
    body = shopify_order(5001, quantity=2)

    with caplog.at_level(logging.WARNING, logger="pimsync.tasking"):
        response = post("shop", body, shopify_headers(body))

    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert event.status == "pending"
    assert "sweeper will process it" in caplog.text
    # Fresh events are left to their own task for the grace period...
    assert inbound_sweep() == 0
    InboundEvent.objects.update(received_at=event.received_at - timedelta(seconds=30))
    # ...then the sweeper applies them, with no broker involved.
    assert inbound_sweep() == 1
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("processed", 1)
    order = ChannelOrder.objects.get(channel=shop, external_id="5001")
    assert (order.status, order.first_seen_via, order.seen_via_webhook) == ("paid", "webhook", True)


# --- what the sandbox sends, as the platforms send it -------------------------------------------


@pytest.mark.parametrize(("platform", "slug"), [("shopify", "shop"), ("woocommerce", "woo")])
def test_a_delivery_signed_by_the_sandbox_is_accepted_and_applied(
    sandbox, webhook_receiver, shop, woo, post, enqueued, location, platform, slug
):
    seed = {platform: [{"sku": "SKU-A", "price": "20.00", "quantity": 5}]}
    assert control(sandbox.url, "POST", "/_control/seed", seed)[0] == 200
    target = {platform: {"url": webhook_receiver.url, "secret": SECRET}}
    assert control(sandbox.url, "POST", "/_control/webhooks", target)[0] == 200
    order = {"platform": platform, "lines": [{"sku": "SKU-A", "quantity": 3}]}
    assert control(sandbox.url, "POST", "/_control/orders", order)[0] == 201
    [received] = webhook_receiver.received
    transport = {"host", "content-length", "content-type", "accept-encoding", "connection"}
    headers = {k: v for k, v in received.headers.items() if k.lower() not in transport}

    response = post(slug, received.body, headers)

    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert inbound_event_process(event.pk) == "processed"
    assert StockLevel.objects.get(variant__sku="SKU-A", location=location).committed == 3
