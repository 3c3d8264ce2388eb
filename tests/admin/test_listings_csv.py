"""Listings (SKU <-> channel ids) out and in as CSV from the admin: export per
channel, preview with row errors, all-or-nothing confirm, once."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from channels_app.models import ChannelListing, ListingCsvImport, SyncMarker

pytestmark = pytest.mark.django_db


def url(name: str, *args: object) -> str:
    return reverse(f"admin:channels_app_channellisting_{name}", args=args)


def upload(client, content: str):
    return client.post(
        url("csv_import"), {"file": SimpleUploadedFile("l.csv", content.encode(), "text/csv")}
    )


def first_message(response) -> str:
    return str(next(iter(response.context["messages"])))


def export(client, **params) -> list[list[str]]:
    response = client.get(url("csv_export"), params)
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


@pytest.fixture
def shops(channel_factory, variant_factory):
    shopify = channel_factory(slug="shopify", platform="shopify")
    ebay = channel_factory(slug="ebay", platform="ebay")
    a, b = variant_factory(sku="A-1"), variant_factory(sku="B-2")
    ChannelListing.objects.create(
        channel=shopify, variant=a, external_variant_id="gid://1", price_override=Decimal("9.00")
    )
    ChannelListing.objects.create(channel=ebay, variant=a, listing_sku="EB-A", offer_id="7")
    return {"shopify": shopify, "ebay": ebay, "a": a, "b": b}


def test_export_follows_the_lists_channel_filter(admin_client, shops) -> None:
    rows = export(admin_client, channel__id__exact=shops["ebay"].pk)

    assert rows == [
        [
            "channel",
            "sku",
            "listing_sku",
            "external_product_id",
            "external_variant_id",
            "inventory_item_id",
            "offer_id",
            "price_override",
            "is_enabled",
        ],
        ["ebay", "A-1", "EB-A", "", "", "", "7", "", "yes"],
    ]


def test_a_file_with_errors_is_shown_and_nothing_stored(admin_client, shops) -> None:
    content = (
        "channel,sku,offer_id,price_override,is_enabled\n"
        "ebay,B-2,8,,yes\n"
        "nowhere,B-2,1,,\n"
        "ebay,NOPE,1,,\n"
        "ebay,B-2,9,,\n"
        "shopify,B-2,,-3,\n"
        "shopify,A-1,,,maybe\n"
    )

    page = upload(admin_client, content).content.decode()

    assert ListingCsvImport.objects.count() == 0
    assert "unknown channel &#x27;nowhere&#x27;" in page
    assert "unknown SKU" in page
    assert "B-2 on ebay is also in row 2" in page
    assert "price override" in page
    assert "is_enabled must be yes or no" in page
    assert "5 rows cannot be imported" in page


def test_a_clean_file_is_previewed_then_applied_once(admin_client, shops) -> None:
    content = (
        "channel,sku,external_variant_id,price_override\n"
        "shopify,A-1,gid://1,\n"  # the override removed
        "shopify,B-2,gid://2,12.50\n"  # new
        "ebay,A-1,,\n"  # no change: listing_sku and offer_id are not in the file
    )

    response = upload(admin_client, content)
    record = ListingCsvImport.objects.get()
    preview = admin_client.get(response.url).content.decode()
    applied = admin_client.post(url("csv_preview", record.pk), follow=True)
    again = admin_client.post(url("csv_preview", record.pk), follow=True)

    assert "New listings" in preview
    assert "price_override: 9.00 → <strong>—</strong>" in preview
    assert "Not in the file, so kept as they are: listing_sku" in preview
    messages = [str(m) for m in applied.context["messages"]]
    assert messages == [
        "1 listing(s) created, 1 updated, 1 unchanged; 1 channel(s) will be pushed."
    ]
    assert "Already applied" in first_message(again)
    listings = {
        (listing.channel.slug, listing.variant.sku): listing
        for listing in ChannelListing.objects.select_related("channel", "variant")
    }
    assert listings[("shopify", "A-1")].price_override is None
    assert listings[("shopify", "B-2")].price_override == Decimal("12.50")
    assert (listings[("ebay", "A-1")].listing_sku, listings[("ebay", "A-1")].offer_id) == (
        "EB-A",
        "7",
    )
    assert set(SyncMarker.objects.values_list("listing__variant__sku", "kind")) == {
        ("A-1", "price"),
        ("B-2", "price"),
        ("B-2", "quantity"),
    }


def test_rows_are_checked_again_when_confirmed(admin_client, shops) -> None:
    upload(admin_client, "channel,sku\nshopify,B-2\n")
    record = ListingCsvImport.objects.get()
    shops["b"].delete()

    response = admin_client.post(url("csv_preview", record.pk), follow=True)

    assert "no longer pass the checks" in first_message(response)
    assert ChannelListing.objects.filter(variant__sku="B-2").count() == 0


def test_an_expired_preview_must_be_uploaded_again(admin_client, shops) -> None:
    upload(admin_client, "channel,sku\nshopify,B-2\n")
    record = ListingCsvImport.objects.get()
    ListingCsvImport.objects.filter(pk=record.pk).update(
        created_at=record.created_at - timedelta(hours=25)
    )

    response = admin_client.post(url("csv_preview", record.pk), follow=True)

    assert "expired" in first_message(response)


def test_import_needs_the_change_listing_permission(client, django_user_model, shops) -> None:
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_channellisting"))
    client.force_login(user)

    listing_page = client.get(url("changelist")).content.decode()

    assert client.get(url("csv_import")).status_code == 403
    assert "Export listings" in listing_page
    assert "Import listings" not in listing_page


def test_a_big_file_previews_with_a_fixed_number_of_queries(admin_client, shops, variant_factory):
    def queries(rows: int) -> int:
        lines = "".join("ebay,A-1\n" if n == 0 else f"shopify,X-{n}\n" for n in range(rows))
        with CaptureQueriesContext(connection) as ctx:
            upload(admin_client, "channel,sku\n" + lines)
        return len(ctx.captured_queries)

    for n in range(1, 40):
        variant_factory(sku=f"X-{n}")

    assert queries(5) == queries(40)
