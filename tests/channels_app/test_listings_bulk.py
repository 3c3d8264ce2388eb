"""Many listings saved at once: all or nothing, the right pushes, one per channel."""

from __future__ import annotations

from decimal import Decimal

import pytest

from channels_app.dispatch import PUSH
from channels_app.listings_bulk import ListingRow, ListingRowsInvalid, listings_save_bulk
from channels_app.models import ChannelListing, SyncMarker

pytestmark = pytest.mark.django_db


@pytest.fixture
def shops(channel_factory):
    return channel_factory(platform="shopify"), channel_factory(platform="ebay")


def markers() -> set[tuple[str, str]]:
    return set(SyncMarker.objects.values_list("listing__variant__sku", "kind"))


def test_new_listings_are_created_and_pushed_once_per_channel(
    shops, variant_factory, task_sends, django_capture_on_commit_callbacks
) -> None:
    shopify, ebay = shops
    a, b = variant_factory(sku="A"), variant_factory(sku="B")
    rows = [
        ListingRow(shopify.pk, a.pk, external_variant_id="gid://shopify/ProductVariant/1"),
        ListingRow(shopify.pk, b.pk, external_variant_id="gid://shopify/ProductVariant/2"),
        ListingRow(ebay.pk, a.pk, listing_sku="EBAY-A", offer_id="55"),
    ]

    with django_capture_on_commit_callbacks(execute=True):
        saved = listings_save_bulk(rows=rows)

    assert (saved.created, saved.updated, saved.unchanged, saved.channels_pushed) == (3, 0, 0, 2)
    assert sorted(task_sends.args_of(PUSH)) == sorted([[shopify.pk], [ebay.pk]])
    listing = ChannelListing.objects.get(channel=ebay)
    assert (listing.listing_sku, listing.offer_id) == ("EBAY-A", "55")
    assert saved.listing_ids[(ebay.pk, a.pk)] == listing.pk
    assert markers() == {("A", "price"), ("A", "quantity"), ("B", "price"), ("B", "quantity")}


def test_unchanged_rows_push_nothing_and_an_override_only_the_price(shops, variant_factory) -> None:
    shopify, _ = shops
    a, b = variant_factory(sku="A"), variant_factory(sku="B")
    ChannelListing.objects.create(channel=shopify, variant=a, external_variant_id="1")
    ChannelListing.objects.create(channel=shopify, variant=b, external_variant_id="2")

    saved = listings_save_bulk(
        rows=[
            ListingRow(shopify.pk, a.pk, external_variant_id="1"),
            ListingRow(
                shopify.pk,
                b.pk,
                external_variant_id="2",
                set_price_override=True,
                price_override=Decimal("12.50"),
            ),
        ]
    )

    assert (saved.created, saved.updated, saved.unchanged) == (0, 1, 1)
    assert markers() == {("B", "price")}
    assert ChannelListing.objects.get(variant=b).price_override == Decimal("12.50")


def test_a_disabled_listing_tells_its_channel_0(shops, variant_factory) -> None:
    shopify, _ = shops
    a = variant_factory(sku="A")
    ChannelListing.objects.create(channel=shopify, variant=a)

    listings_save_bulk(rows=[ListingRow(shopify.pk, a.pk, is_enabled=False)])

    assert ChannelListing.objects.get().is_enabled is False
    assert markers() == {("A", "quantity")}


def test_one_bad_row_saves_nothing_and_names_every_bad_row(shops, variant_factory) -> None:
    shopify, _ = shops
    a, b = variant_factory(sku="A"), variant_factory(sku="B")

    with pytest.raises(ListingRowsInvalid) as refused:
        listings_save_bulk(
            rows=[
                ListingRow(shopify.pk, b.pk),
                ListingRow(shopify.pk, a.pk, set_price_override=True, price_override=Decimal("-1")),
                ListingRow(shopify.pk, b.pk, offer_id="x" * 121),
            ]
        )

    assert refused.value.errors == {
        1: ["price_override must be 0 or more (and not absurdly large)"],
        2: [
            "offer_id is longer than 120 characters",
            "the same SKU on the same channel is also in row 0",
        ],
    }
    assert ChannelListing.objects.count() == 0


def test_the_push_record_of_a_listing_is_left_alone(shops, variant_factory) -> None:
    shopify, _ = shops
    a = variant_factory(sku="A")
    ChannelListing.objects.create(
        channel=shopify, variant=a, last_pushed_price=Decimal("3.00"), last_pushed_quantity=4
    )

    listings_save_bulk(rows=[ListingRow(shopify.pk, a.pk, external_variant_id="9")])

    listing = ChannelListing.objects.get()
    assert (
        listing.external_variant_id,
        listing.last_pushed_price,
        listing.last_pushed_quantity,
    ) == (
        "9",
        Decimal("3.00"),
        4,
    )
