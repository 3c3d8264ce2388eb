"""Linking a pimsync product to a Magento configurable: its variants are listed by SKU
with the channel's ids (service, API and admin action), against the sandbox."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from channels_app import services
from channels_app.models import ChannelListing, SyncMarker
from tests.support.sandbox import MAGENTO_TOKEN

SIZES = ("S", "M", "L", "XL")


@pytest.fixture
def configurable(sandbox):
    """Magento: configurable TEE with four simple children, and a fifth pimsync lacks."""
    rows = [
        {"sku": f"TEE-{size}", "price": "20.00", "quantity": 3, "group": "TEE"}
        for size in (*SIZES, "XXL")
    ]
    return {item.sku: item for item in sandbox.platform("magento").seed(rows)}


@pytest.fixture
def tee(db, product_factory, variant_factory):
    """pimsync: product Tee with the four sizes and a 3XL Magento does not sell."""
    product = product_factory(title="Tee", handle="tee")
    for size in (*SIZES, "3XL"):
        variant_factory(product=product, sku=f"TEE-{size}", price=Decimal("20.00"))
    return product


@pytest.fixture
def magento_channel(db, sandbox, channel_factory):
    return channel_factory(
        slug="magento",
        platform="magento",
        base_url=sandbox.platform_url("magento"),
        credentials={"access_token": MAGENTO_TOKEN},
        platform_config={},
    )


def test_the_four_children_of_a_configurable_are_listed_by_sku(configurable, tee, magento_channel):
    linked = services.product_variants_link(channel=magento_channel, product=tee, product_ref="TEE")

    assert linked.created == ["TEE-L", "TEE-M", "TEE-S", "TEE-XL"]
    assert (linked.updated, linked.unchanged) == ([], [])
    assert (linked.missing_on_channel, linked.unknown_to_pimsync) == (["TEE-3XL"], ["TEE-XXL"])
    listings = ChannelListing.objects.filter(channel=magento_channel).select_related("variant")
    assert sorted(
        (lst.variant.sku, lst.external_product_id, lst.external_variant_id) for lst in listings
    ) == sorted(
        (f"TEE-{size}", "TEE", configurable[f"TEE-{size}"].ids["variant_id"]) for size in SIZES
    )
    # new listings push their price and quantity
    assert SyncMarker.objects.filter(channel=magento_channel).count() == 8
    assert "Linked 4 variant(s) to TEE: 4 new listing(s), 0 updated." in str(linked)


def test_linking_again_changes_nothing_and_fills_ids_of_existing_listings(
    configurable, tee, magento_channel, listing_factory
):
    medium = tee.variants.get(sku="TEE-M")
    listing_factory(channel=magento_channel, variant=medium, external_variant_id="")
    first = services.product_variants_link(channel=magento_channel, product=tee, product_ref="TEE")
    SyncMarker.objects.all().delete()

    again = services.product_variants_link(channel=magento_channel, product=tee, product_ref="TEE")

    assert (first.created, first.updated) == (["TEE-L", "TEE-S", "TEE-XL"], ["TEE-M"])
    assert (again.created, again.updated, len(again.unchanged)) == ([], [], 4)
    assert not SyncMarker.objects.exists()
    assert ChannelListing.objects.get(variant=medium).external_product_id == "TEE"


def test_a_link_that_cannot_be_made_changes_nothing(
    sandbox, configurable, tee, magento_channel, channel_factory
):
    sandbox.platform("magento").seed(
        [{"sku": "HAT-1", "price": "9", "quantity": 1, "group": "HAT"}]
    )

    with pytest.raises(services.VariantLinkError, match=r"None of Tee's SKUs .*\(it has HAT-1\)"):
        services.product_variants_link(channel=magento_channel, product=tee, product_ref="HAT")
    with pytest.raises(services.VariantLinkError, match="doesn't exist"):
        services.product_variants_link(channel=magento_channel, product=tee, product_ref="NOPE")
    with pytest.raises(services.VariantLinkError, match="cannot list a product's variants"):
        services.product_variants_link(
            channel=channel_factory(platform="shopify"), product=tee, product_ref="TEE"
        )
    assert not ChannelListing.objects.exists()


def test_the_api_links_variants_and_explains_a_refusal(
    configurable, tee, magento_channel, admin_user
):
    api = APIClient()  # who may call it: tests/api/test_roles.py
    api.force_authenticate(admin_user)
    url = "/api/v1/listings/link-variants/"

    done = api.post(
        url,
        {"channel": magento_channel.pk, "product": tee.pk, "product_ref": "TEE"},
        format="json",
    )
    refused = api.post(
        url,
        {"channel": magento_channel.pk, "product": tee.pk, "product_ref": "NOPE"},
        format="json",
    )

    assert done.status_code == 200
    assert done.json()["created"] == ["TEE-L", "TEE-M", "TEE-S", "TEE-XL"]
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "link_failed"
    assert "doesn't exist" in refused.json()["error"]["message"]


def test_the_channel_admin_action_links_variants(configurable, tee, magento_channel, admin_client):
    response = admin_client.post(
        reverse("admin:channels_app_channel_changelist"),
        {
            "action": "link_variants_action",
            "_selected_action": [magento_channel.pk],
            "confirm": "yes",
            "product": "tee",
            "product_ref": "TEE",
        },
        follow=True,
    )

    assert response.status_code == 200
    assert "Linked 4 variant(s) to TEE" in response.content.decode()
    assert ChannelListing.objects.filter(channel=magento_channel).count() == 4
