"""A person's decisions on imported items: link (pimsync's price, or the channel's
as an override; quantities always pimsync's), create missing products in pimsync
from the channel's data, ignore, choose a variant."""

from __future__ import annotations

from decimal import Decimal

import pytest

from channels_app.models import CatalogImport, CatalogImportItem, ChannelListing, SyncMarker
from channels_app.onboarding.review import (
    PriceSource,
    ReviewError,
    catalog_item_choose,
    catalog_items_create,
    catalog_items_first_values,
    catalog_items_ignore,
    catalog_items_link,
)
from inventory import services
from inventory.models import Location, StockMovement, Variant

pytestmark = pytest.mark.django_db
Status = CatalogImportItem.Status


@pytest.fixture
def channel(channel_factory):
    return channel_factory(platform="shopify")


@pytest.fixture
def run(channel):
    from django.utils import timezone

    return CatalogImport.objects.create(channel=channel, started_at=timezone.now())


@pytest.fixture
def location(channel):
    location = Location.objects.create(code="main", name="Main")
    channel.channel_locations.create(location=location)
    return location


def item(run, key: str, **fields) -> CatalogImportItem:
    defaults = {
        "position": CatalogImportItem.objects.filter(run=run).count(),
        "sku": key,
        "external_variant_id": f"gid://shopify/ProductVariant/{key}",
        "external_product_id": "gid://shopify/Product/1",
        "inventory_item_id": f"gid://shopify/InventoryItem/{key}",
        "price": Decimal("11.00"),
        "quantity": 3,
        "status": Status.MATCHED,
    }
    return CatalogImportItem.objects.create(run=run, key=key, **(defaults | fields))


def test_linking_creates_listings_with_the_channels_ids_and_pushes_pimsyns_values(
    run, variant_factory, location
) -> None:
    sock = variant_factory(sku="SOCK-M", price=Decimal("9.00"))
    linked = item(run, "WEB-SOCK", variant=sock, status=Status.PROPOSED)

    decided = catalog_items_link(items=CatalogImportItem.objects.all())

    listing = ChannelListing.objects.get()
    assert (decided.linked, decided.channels_pushed) == (1, 1)
    assert (listing.variant, listing.listing_sku, listing.price_override) == (
        sock,
        "WEB-SOCK",
        None,
    )
    assert listing.external_variant_id == linked.external_variant_id
    assert listing.inventory_item_id == linked.inventory_item_id
    assert set(SyncMarker.objects.values_list("kind", flat=True)) == {"price", "quantity"}
    linked.refresh_from_db()
    assert (linked.status, linked.listing) == (Status.LINKED, listing)


def test_keeping_the_channels_price_makes_it_the_listings_override(run, variant_factory) -> None:
    sock = variant_factory(sku="SOCK-M", price=Decimal("9.00"))
    item(run, "SOCK-M", variant=sock, price=Decimal("11.50"))

    catalog_items_link(items=CatalogImportItem.objects.all(), price_source=PriceSource.CHANNEL)

    listing = ChannelListing.objects.get()
    assert (listing.listing_sku, listing.price_override) == ("", Decimal("11.50"))


def test_first_values_show_the_channels_beside_pimsyncs(run, channel, variant_factory, location):
    sock = variant_factory(sku="SOCK-M", price=Decimal("9.00"))
    services.stock_adjust(
        variant=sock, location=location, quantity=8, reason="receive", source="t",
        idempotency_key="t-1",
    )  # fmt: skip
    row = item(run, "SOCK-M", variant=sock, price=Decimal("11.50"), quantity=3)

    (values,) = catalog_items_first_values(channel=channel, items=[row])

    assert (values.channel_price, values.channel_quantity) == (Decimal("11.50"), 3)
    assert (values.pimsync_price, values.pimsync_quantity) == (Decimal("9.00"), 8)
    assert values.price_differs
    assert values.quantity_differs


def test_items_without_a_variant_or_already_settled_are_skipped(run, variant_factory) -> None:
    sock = variant_factory(sku="SOCK-M")
    item(run, "A", status=Status.UNMATCHED)
    item(run, "B", variant=sock, status=Status.IGNORED)
    item(run, "C", variant=sock)
    item(run, "D", variant=sock)  # the same variant again

    decided = catalog_items_link(items=CatalogImportItem.objects.all())

    assert decided.linked == 1
    assert decided.skipped == {
        "no variant chosen (choose one or create it in pimsync)": ["A"],
        "already ignored": ["B"],
        "its variant is linked to another selected item": ["D"],
    }
    assert "Not done for 1 item(s), already ignored: B." in str(decided)


def test_linking_a_variant_listed_under_other_ids_updates_its_listing(
    run, channel, variant_factory
) -> None:
    sock = variant_factory(sku="SOCK-M")
    old = ChannelListing.objects.create(channel=channel, variant=sock, external_variant_id="old")
    item(run, "SOCK-M", variant=sock)

    decided = catalog_items_link(items=CatalogImportItem.objects.all())

    old.refresh_from_db()
    assert decided.linked == 1
    assert old.external_variant_id == "gid://shopify/ProductVariant/SOCK-M"
    assert ChannelListing.objects.count() == 1


def test_creating_in_pimsync_makes_one_product_per_channel_product(run, channel, location) -> None:
    item(run, "T-S", status=Status.UNMATCHED, product_title="Tee", title="S", barcode="1",
         options={"Size": "S"}, group_ref="p1", price=Decimal("20.00"), quantity=4)  # fmt: skip
    item(run, "T-M", status=Status.UNMATCHED, product_title="Tee", title="M",
         options={"Size": "M"}, group_ref="p1", price=Decimal("21.00"), quantity=0)  # fmt: skip
    item(run, "MUG", status=Status.UNMATCHED, product_title="Mug", group_ref="p2")

    decided = catalog_items_create(items=CatalogImportItem.objects.all(), stock_location=location)

    assert (decided.created, decided.linked) == (3, 3)
    tee = Variant.objects.get(sku="T-S")
    assert (tee.product.title, tee.title, tee.options, tee.barcode, tee.price) == (
        "Tee",
        "S",
        {"Size": "S"},
        "1",
        Decimal("20.00"),
    )
    assert Variant.objects.get(sku="T-M").product == tee.product
    assert Variant.objects.get(sku="MUG").product.title == "Mug"
    # the channel's quantity booked as received (none for a 0)
    assert sorted(StockMovement.objects.values_list("variant__sku", "delta_on_hand", "reason")) == [
        ("MUG", 3, "receive"),
        ("T-S", 4, "receive"),
    ]
    assert ChannelListing.objects.filter(channel=channel).count() == 3
    assert set(CatalogImportItem.objects.values_list("created_in_pimsync", flat=True)) == {True}


def test_a_taken_or_missing_sku_gets_one_from_the_channel(run, channel, variant_factory) -> None:
    variant_factory(sku="MUG")
    item(run, "gid://shopify/ProductVariant/77", sku="MUG", status=Status.UNMATCHED)
    item(run, "gid://shopify/ProductVariant/78", sku="", status=Status.UNMATCHED)

    catalog_items_create(items=CatalogImportItem.objects.all())

    assert set(Variant.objects.values_list("sku", flat=True)) == {
        "MUG",
        f"{channel.slug}-77",
        f"{channel.slug}-78",
    }


def test_matched_items_are_not_created_again(run, variant_factory) -> None:
    item(run, "SOCK-M", variant=variant_factory(sku="SOCK-M"))

    decided = catalog_items_create(items=CatalogImportItem.objects.all())

    assert decided.created == 0
    assert list(decided.skipped) == ["it matches a pimsync variant (link it instead)"]


def test_ignoring_leaves_linked_items_alone(run, variant_factory) -> None:
    item(run, "A", status=Status.UNMATCHED)
    item(run, "B", status=Status.LINKED)

    decided = catalog_items_ignore(items=CatalogImportItem.objects.all())

    assert decided.ignored == 1
    assert dict(CatalogImportItem.objects.values_list("key", "status")) == {
        "A": Status.IGNORED,
        "B": Status.LINKED,
    }


def test_choosing_a_variant_for_a_conflict_makes_it_a_proposal(run, variant_factory) -> None:
    sock = variant_factory(sku="SOCK-M")
    conflict = item(run, "A", status=Status.CONFLICT, candidates=[sock.pk])

    catalog_item_choose(item=conflict, variant=sock)

    conflict.refresh_from_db()
    assert (conflict.status, conflict.variant, conflict.note) == (
        Status.PROPOSED,
        sock,
        "chosen by a person",
    )
    with pytest.raises(ReviewError):
        catalog_item_choose(item=item(run, "B", status=Status.LINKED), variant=sock)
