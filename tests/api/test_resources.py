"""What the endpoints do: writes go through the services (and so reach the channels),
reads show what each channel is told, secrets never leave."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from channels_app.models import Channel, ChannelOrder, ChannelOrderLine, SyncMarker
from channels_app.selectors import channel_atp, channel_price
from inventory.models import StockMovement, Variant
from synclog.models import Alert
from tests import factories

pytestmark = pytest.mark.django_db


def test_variant_create_and_price_change_mark_the_listings(catalog, client_for):
    merch = client_for("merchandiser")
    created = merch.post(
        "/api/v1/variants/",
        {
            "product": catalog["product"].pk,
            "sku": "TEE-XL",
            "price": "25.00",
            "options": {"size": "XL"},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["on_hand"] == 0

    tee_s = catalog["variants"][0]
    SyncMarker.objects.all().delete()
    changed = merch.patch(f"/api/v1/variants/{tee_s.pk}/", {"price": "26.00"}, format="json")
    assert changed.status_code == 200
    assert changed.json()["price"] == "26.00"
    assert list(SyncMarker.objects.values_list("listing__variant__sku", "kind")) == [
        ("TEE-S", "price")
    ]

    SyncMarker.objects.all().delete()
    merch.patch(f"/api/v1/variants/{tee_s.pk}/", {"title": "Small"}, format="json")
    assert not SyncMarker.objects.exists()  # no price change, nothing to push


def test_variant_filters(catalog, staff_api):
    tee_m = catalog["variants"][1]
    Variant.objects.filter(pk=tee_m.pk).update(barcode="4006381333931")
    later = (timezone.now() + timedelta(seconds=1)).isoformat()

    def skus(query: str) -> list[str]:
        return [v["sku"] for v in staff_api.get(f"/api/v1/variants/?{query}").json()["results"]]

    assert skus("sku=TEE-L") == ["TEE-L"]
    assert skus("barcode=4006381333931") == ["TEE-M"]
    assert skus(f"product={catalog['product'].pk}") == ["TEE-L", "TEE-M", "TEE-S"]
    assert skus(f"updated_since={later.replace('+', '%2B')}") == []


def test_variant_read_shows_what_each_channel_is_told(catalog, staff_api, price_rule_factory):
    channel = catalog["channel"]
    price_rule_factory(channel=channel, multiplier=Decimal("1.5"), rounding="0.99")
    tee_s = catalog["variants"][0]
    body = staff_api.get(f"/api/v1/variants/{tee_s.pk}/").json()

    [view] = body["channels"]
    assert view["channel"]["slug"] == "shop"
    assert (
        Decimal(view["price"]) == channel_price(channel=channel, variant=tee_s) == Decimal("30.99")
    )
    assert view["atp"] == channel_atp(channel=channel, variant=tee_s) == 10
    assert view["sync_state"] == {"label": "pending", "error": ""}
    assert view["listing"]["id"] == tee_s.listings.get().pk


def test_variant_list_can_include_the_channels(catalog, staff_api):
    body = staff_api.get("/api/v1/variants/?include=channels").json()
    assert [len(v["channels"]) for v in body["results"]] == [1, 1, 1]
    assert "channels" not in staff_api.get("/api/v1/variants/").json()["results"][0]


def test_stock_level_filters(catalog, staff_api):
    tee_m = catalog["variants"][1]
    staff_api.post(
        "/api/v1/cycle-counts/",
        {"sku": "TEE-M", "location": "main", "counted_on_hand": 2},
        format="json",
        HTTP_IDEMPOTENCY_KEY="c",
    )

    def rows(query: str) -> list[tuple[str, str, int]]:
        results = staff_api.get(f"/api/v1/stock-levels/?{query}").json()["results"]
        return [(r["sku"], r["location"], r["available"]) for r in results]

    assert rows("low_stock=true") == [("TEE-M", "main", 2)]
    assert rows("sku=TEE-M") == [(tee_m.sku, "main", 2)]
    assert len(rows("location=main")) == 3
    assert rows("location=store") == []


def test_movement_list_filters_and_newest_first(catalog, integrator_api):
    integrator_api.post(
        "/api/v1/stock-movements/",
        {"sku": "TEE-L", "location": "main", "reason": "damage", "quantity": 1},
        format="json",
        HTTP_IDEMPOTENCY_KEY="d",
    )
    results = integrator_api.get("/api/v1/stock-movements/").json()["results"]
    assert [r["reason"] for r in results][:1] == ["damage"]
    damaged = integrator_api.get("/api/v1/stock-movements/?reason=damage&sku=TEE-L").json()
    assert [(r["delta_damaged"], r["created_by"]) for r in damaged["results"]] == [
        (1, "u-integrator")
    ]


def test_cursor_pagination_walks_every_row_once(catalog, staff_api):
    seen, url = [], "/api/v1/stock-movements/?page_size=1"
    while url:
        body = staff_api.get(url).json()
        seen += [r["id"] for r in body["results"]]
        url = body["next"]
    assert sorted(seen) == sorted(StockMovement.objects.values_list("pk", flat=True))
    assert len(seen) == len(set(seen)) == 3


def test_a_magento_channel_needs_valid_settings_and_its_token(catalog, staff_api):
    body = {
        "name": "Magento",
        "slug": "magento",
        "platform": "magento",
        "base_url": "https://magento.example.com",
        "platform_config": {"msi": True, "source_codes": ["default", "default"]},
    }

    refused = staff_api.post("/api/v1/channels/", body, format="json")
    created = staff_api.post(
        "/api/v1/channels/",
        {**body, "platform_config": {"stock_id": 2}, "credentials": {"access_token": "tok-1"}},
        format="json",
    )

    assert refused.status_code == 400
    fields = refused.json()["error"]["details"]["fields"]
    assert fields["platform_config"] == [
        'source_codes: a list of distinct MSI source codes, e.g. ["default"]'
    ]
    assert fields["credentials"] == ['credentials: {"access_token": "<integration access token>"}']
    assert created.status_code == 201, created.content
    assert created.json()["platform_config"] == {"stock_id": 2}
    assert not Channel.objects.filter(platform="magento", platform_config__msi=True).exists()


def test_channel_credentials_are_write_only(catalog, staff_api):
    secret_token, secret_hook = "shpat_super_secret_value_1", "whsec_very_secret_2"
    created = staff_api.post(
        "/api/v1/channels/",
        {
            "name": "EU",
            "slug": "eu",
            "platform": "shopify",
            "base_url": "https://eu.example.com",
            "credentials": {"access_token": secret_token},
            "webhook_secret": secret_hook,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    channel = Channel.objects.get(slug="eu")
    assert channel.credentials == {"access_token": secret_token}
    assert channel.webhook_secret == secret_hook
    for response in (
        created,
        staff_api.get(f"/api/v1/channels/{channel.pk}/"),
        staff_api.get("/api/v1/channels/"),
        staff_api.patch(f"/api/v1/channels/{channel.pk}/", {"currency": "EUR"}, format="json"),
    ):
        text = response.content.decode()
        assert secret_token not in text
        assert secret_hook not in text
        assert "shpat_super" not in text
    body = created.json()
    assert body["credential_keys"] == ["access_token"]
    assert body["has_webhook_secret"] is True
    assert "credentials" not in body
    assert "webhook_secret" not in body


def test_new_credentials_lift_an_auth_pause(catalog, staff_api):
    from channels_app.models import ChannelSyncState

    channel = catalog["channel"]
    ChannelSyncState.objects.create(
        channel=channel, auth_failed_at=timezone.now(), auth_error="401"
    )
    staff_api.patch(
        f"/api/v1/channels/{channel.pk}/",
        {"credentials": {"access_token": "shpat_new"}},
        format="json",
    )
    assert ChannelSyncState.objects.get(channel=channel).auth_failed_at is None


def test_push_now_and_force_resync_mark_only_the_given_skus(catalog, client_for):
    ops, channel = client_for("ops"), catalog["channel"]
    SyncMarker.objects.all().delete()
    response = ops.post(
        f"/api/v1/channels/{channel.pk}/force-resync/", {"skus": ["TEE-M"]}, format="json"
    )
    assert response.status_code == 202
    assert response.json() == {"skus": 1, "channels": 1}
    markers = SyncMarker.objects.all()
    assert {(m.listing.variant.sku, m.kind, m.is_forced) for m in markers} == {
        ("TEE-M", "price", True),
        ("TEE-M", "quantity", True),
    }


def test_listing_shows_its_sync_state(catalog, staff_api):
    listing = catalog["variants"][0].listings.get()
    SyncMarker.objects.filter(listing=listing).update(status="dead", last_error="eBay said no")
    body = staff_api.get(f"/api/v1/listings/{listing.pk}/").json()
    assert body["sync_state"] == {"label": "failed", "error": "eBay said no"}
    listed = staff_api.get(f"/api/v1/listings/?sku={listing.variant.sku}").json()["results"]
    assert listed[0]["sync_state"]["label"] == "failed"


def test_listing_price_override_marks_the_price(catalog, client_for):
    listing = catalog["variants"][0].listings.get()
    SyncMarker.objects.all().delete()
    response = client_for("merchandiser").patch(
        f"/api/v1/listings/{listing.pk}/", {"price_override": "17.00"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["sync_state"]["label"] == "pending"
    assert list(SyncMarker.objects.values_list("kind", flat=True)) == ["price"]


def test_buffer_rule_through_the_api_changes_the_channel_atp(catalog, client_for):
    merch, tee_s = client_for("merchandiser"), catalog["variants"][0]
    rule = merch.post(
        "/api/v1/buffer-rules/",
        {"channel": catalog["channel"].pk, "variant": tee_s.pk, "mode": "units", "value": "4"},
        format="json",
    )
    assert rule.status_code == 201
    assert channel_atp(channel=catalog["channel"], variant=tee_s) == 6
    assert merch.delete(f"/api/v1/buffer-rules/{rule.json()['id']}/").status_code == 204
    assert channel_atp(channel=catalog["channel"], variant=tee_s) == 10


def test_ship_an_order(catalog, integrator_api):
    tee_s = catalog["variants"][0]
    order = ChannelOrder.objects.create(
        channel=catalog["channel"],
        external_id="5001",
        status="paid",
        placed_at=timezone.now(),
        channel_updated_at=timezone.now(),
        first_seen_via="webhook",
    )
    ChannelOrderLine.objects.create(
        order=order, external_line_id="1", sku=tee_s.sku, variant=tee_s, quantity=2
    )
    response = integrator_api.post(
        f"/api/v1/orders/{order.pk}/ship/",
        {"tracking_number": "1Z", "carrier": "UPS"},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["lines_shipped"] == 1
    assert body["order"]["status"] == "fulfilled"
    assert body["order"]["lines"][0]["state"] == "shipped"
    assert tee_s.stock_levels.get().on_hand == 8

    order.status = "cancelled"
    order.save()
    refused = integrator_api.post(f"/api/v1/orders/{order.pk}/ship/", {}, format="json")
    assert refused.status_code == 409


def test_customers_show_order_count_and_spend(catalog, client_for):
    from channels_app.models import Customer

    customer = Customer.objects.create(email="ann@example.com")
    for n, (status, total) in enumerate([("paid", "10.00"), ("cancelled", "99.00")]):
        ChannelOrder.objects.create(
            channel=catalog["channel"],
            external_id=str(n),
            status=status,
            placed_at=timezone.now(),
            channel_updated_at=timezone.now(),
            first_seen_via="poll",
            customer=customer,
            total=Decimal(total),
        )
    body = client_for("ops").get("/api/v1/customers/?email=ANN@example.com").json()
    assert [(c["order_count"], c["total_spend"]) for c in body["results"]] == [(2, "10.00")]


def test_alert_acknowledge_and_resolve(catalog, client_for):
    ops = client_for("ops")
    alert = Alert.objects.create(
        kind="drift",
        channel=catalog["channel"],
        sku="TEE-S",
        message="m",
        last_seen=timezone.now(),
    )
    acked = ops.post(f"/api/v1/alerts/{alert.pk}/acknowledge/").json()
    assert acked["acknowledged_by"] == "u-ops"
    assert acked["is_open"] is True
    first_ack = acked["acknowledged_at"]
    assert ops.post(f"/api/v1/alerts/{alert.pk}/acknowledge/").json()["acknowledged_at"] == (
        first_ack
    )
    resolved = ops.post(f"/api/v1/alerts/{alert.pk}/resolve/").json()
    assert resolved["is_open"] is False
    assert resolved["resolved_at"]
    assert ops.get("/api/v1/alerts/?is_open=true").json()["results"] == []


def test_sync_log_filters(catalog, client_for):
    from synclog.models import SyncLogEntry

    channel, other = catalog["channel"], factories.ChannelFactory(slug="o")
    for ch, sku, status, kind in [
        (channel, "TEE-S", "failed", "price"),
        (channel, "TEE-S", "success", "inventory"),
        (other, "TEE-M", "failed", "inventory"),
    ]:
        SyncLogEntry.objects.create(channel=ch, sku=sku, status=status, event_type=kind)
    ops = client_for("ops")

    def rows(query: str) -> list[tuple[str, str, str]]:
        results = ops.get(f"/api/v1/sync-log/?{query}").json()["results"]
        return [(r["sku"], r["status"], r["event_type"]) for r in results]

    assert rows(f"channel={channel.pk}&status=failed") == [("TEE-S", "failed", "price")]
    assert rows("channel_slug=o") == [("TEE-M", "failed", "inventory")]
    assert rows("event_type=inventory&sku=TEE-S") == [("TEE-S", "success", "inventory")]
    future = (timezone.now() + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert rows(f"created_after={future}") == []
    assert len(rows(f"created_before={future}")) == 3


def test_me_lists_roles_and_access(catalog, client_for):
    body = client_for("integrator").get("/api/v1/me/").json()
    assert body["roles"] == ["integrator"]
    assert body["access"]["stock"] == {"read": True, "write": True}
    assert body["access"]["sync"] == {"read": False, "write": False}


def test_my_token_rotates(catalog, client_for):
    from rest_framework.test import APIClient

    client = client_for("ops")
    rotated = client.post("/api/v1/me/token/?rotate=true").json()["token"]
    assert client.get("/api/v1/me/").status_code == 401  # the old token stopped working
    fresh = APIClient()
    fresh.credentials(HTTP_AUTHORIZATION=f"Token {rotated}")
    assert fresh.get("/api/v1/me/").json()["username"] == "u-ops"


def test_swagger_ui_is_served_offline(catalog, client_for):
    page = client_for("none").get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower()
    assert "https://" not in html


def test_every_operation_is_documented_with_a_summary_and_examples():
    """DELETE answers 204 without a body: a summary is all it needs."""
    from drf_spectacular.generators import SchemaGenerator

    schema = json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True)))
    undocumented = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            has_example = any(
                "examples" in content
                for part in [op.get("requestBody", {}), *op["responses"].values()]
                for content in part.get("content", {}).values()
            )
            if not op.get("summary") or (method != "delete" and not has_example):
                undocumented.append(f"{method.upper()} {path}")
    assert undocumented == []


def test_variants_are_listed_by_sku_and_movements_newest_first(catalog, staff_api):
    factories.VariantFactory(product=catalog["product"], sku="AAA-1")
    skus = [v["sku"] for v in staff_api.get("/api/v1/variants/").json()["results"]]
    assert skus == ["AAA-1", "TEE-L", "TEE-M", "TEE-S"]
    ids = [m["id"] for m in staff_api.get("/api/v1/stock-movements/").json()["results"]]
    assert ids == sorted(ids, reverse=True)


def test_a_shopify_channel_refuses_an_unknown_api_version(
    catalog, staff_api, channel_factory
) -> None:
    channel = channel_factory(platform_config={})
    url = f"/api/v1/channels/{channel.pk}/"

    refused = staff_api.patch(url, {"platform_config": {"api_version": "2026-13"}}, format="json")
    accepted = staff_api.patch(url, {"platform_config": {"api_version": "2026-07"}}, format="json")

    assert refused.status_code == 400
    assert (
        "api_version: Admin API 2026-13 is not a known Shopify version" in refused.content.decode()
    )
    assert accepted.status_code == 200
    assert Channel.objects.get(pk=channel.pk).platform_config == {"api_version": "2026-07"}
