"""Publishing a pimsync product on a channel, and its later content edits (attribute
events), against the validating sandbox."""

from __future__ import annotations

from decimal import Decimal

import pytest

from channels_app.models import ChannelListing, ChannelPublication, SyncMarker
from channels_app.publishing import PublishError, product_publish
from channels_app.sync import engine
from inventory import services
from inventory.models import Variant
from sandbox.server import RunningSandbox
from synclog.models import Alert, SyncLogEntry
from tests.support.publishing import (
    IMAGES,
    PLATFORMS,
    publishing_channels,
    single_product,
    sock_product,
)
from tests.support.sandbox import control

pytestmark = pytest.mark.django_db(transaction=True)


def content(sandbox: RunningSandbox, platform: str) -> dict:
    return control(sandbox.url, "GET", f"/_control/content/{platform}")[1]


def values(sandbox: RunningSandbox, platform: str) -> dict:
    return control(sandbox.url, "GET", f"/_control/values/{platform}")[1]


def refusals(sandbox: RunningSandbox, platform: str) -> dict:
    found = control(sandbox.url, "GET", f"/_control/refusals/{platform}")[1][platform]
    return {"refusals": found["refusals"], "answer_problems": found["answer_problems"]}


@pytest.fixture
def validating(sandbox: RunningSandbox) -> RunningSandbox:
    for platform in sandbox.app.platforms.values():
        platform.check_answers = True
    return sandbox


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_product_is_published_with_its_variants_prices_quantities_and_content(
    validating, platform
) -> None:
    channel = publishing_channels(validating, [platform])[platform]
    product = sock_product()

    outcome = product_publish(channel=channel, product=product)

    assert outcome.ok, outcome.refused
    assert sorted(outcome.listed) == ["TRAIL-SOCK-L", "TRAIL-SOCK-M", "TRAIL-SOCK-S"]
    publication = ChannelPublication.objects.get(channel=channel, product=product)
    assert publication.status == "published"
    assert publication.product_ref
    listings = ChannelListing.objects.filter(channel=channel).order_by("variant__sku")
    assert [lst.sync_content for lst in listings] == [True, True, True]
    shown = content(validating, platform)
    live = values(validating, platform)
    for listing in listings:
        sku = listing.channel_sku
        assert shown[sku]["title"] == "Trail Sock"
        assert "Merino trail sock." in shown[sku]["description"]
        size = listing.variant.options["size"]
        if platform == "amazon":  # a SIZE family: the size is in the child's title
            assert shown[sku]["variant_title"] == f"Trail Sock - {size}"
        else:  # option names as the platform spells them (eBay's aspects are title-cased)
            assert {k.lower(): v for k, v in shown[sku]["options"].items()} == {"size": size}
        assert Decimal(live[sku]["price"]) == Decimal("12.00")
        assert live[sku]["quantity"] == 7
    # Magento's media API takes file contents, not URLs: pimsync sends no images there
    assert shown["TRAIL-SOCK-S"]["images"] == ([] if platform == "magento" else IMAGES)
    assert shown["TRAIL-SOCK-M"]["barcode"] == "0400638133391"
    logged = SyncLogEntry.objects.filter(channel=channel, event_type="attribute")
    assert sorted(logged.values_list("sku", "status", "value_sent")) == [
        (sku, "success", "published") for sku in ("TRAIL-SOCK-L", "TRAIL-SOCK-M", "TRAIL-SOCK-S")
    ]
    assert refusals(validating, platform) == {"refusals": [], "answer_problems": []}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_description_edit_reaches_the_channel_as_an_attribute_push(validating, platform) -> None:
    channel = publishing_channels(validating, [platform])[platform]
    product = sock_product()
    product_publish(channel=channel, product=product)
    engine.channel_push(channel.pk)  # the price / quantity pushes that follow publishing

    product.description = "<p>Merino trail sock, now with a reinforced heel.</p>"
    services.product_save(product=product)

    markers = SyncMarker.objects.filter(channel=channel, kind="attribute")
    assert markers.count() == 3
    report = engine.channel_push(channel.pk)
    assert report.pushed == 3
    shown = content(validating, platform)
    assert {shown[sku]["description"] for sku in shown} == {
        "<p>Merino trail sock, now with a reinforced heel.</p>"
    }
    logged = SyncLogEntry.objects.filter(
        channel=channel, event_type="attribute", value_sent="product"
    )
    assert sorted(logged.values_list("sku", "status")) == [
        (sku, "success") for sku in ("TRAIL-SOCK-L", "TRAIL-SOCK-M", "TRAIL-SOCK-S")
    ]
    assert not SyncMarker.objects.filter(channel=channel).exists()
    assert refusals(validating, platform) == {"refusals": [], "answer_problems": []}


def test_a_disabled_channel_or_an_archived_product_is_refused_before_any_call(sandbox) -> None:
    channel = publishing_channels(sandbox, ["shopify"])["shopify"]
    product = sock_product()
    channel.is_enabled = False
    channel.save()

    with pytest.raises(PublishError, match="is disabled"):
        product_publish(channel=channel, product=product)
    assert control(sandbox.url, "GET", "/_control/counters/shopify")[1]["calls"] == 0


def products_on(sandbox: RunningSandbox, platform: str) -> set[str]:
    """The product each SKU is shown on (one key per product page)."""
    return {row["product"] for row in content(sandbox, platform).values()}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_product_without_options_is_published_as_a_single_listing(validating, platform) -> None:
    channel = publishing_channels(validating, [platform])[platform]
    product = single_product()

    outcome = product_publish(channel=channel, product=product)

    assert outcome.ok, outcome.refused
    listing = ChannelListing.objects.get(channel=channel)
    shown = content(validating, platform)[listing.channel_sku]
    # Shopify names the one variant of a product without options "Default Title";
    # Amazon's product type asks for a colour, "Multicolor" when pimsync has none
    no_options = {"shopify": {"Title": "Default Title"}, "amazon": {"color": "Multicolor"}}
    assert (shown["title"], shown["options"]) == ("Cap", no_options.get(platform, {}))
    assert Decimal(values(validating, platform)[listing.channel_sku]["price"]) == Decimal("9.50")
    assert refusals(validating, platform) == {"refusals": [], "answer_problems": []}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_publishing_again_updates_the_product_and_lists_a_variant_added_since(
    validating, platform
) -> None:
    channel = publishing_channels(validating, [platform])[platform]
    product = sock_product(sizes=("S", "M"))
    first = product_publish(channel=channel, product=product)
    services.variant_save(
        variant=Variant(
            product=product, sku="TRAIL-SOCK-XL", options={"size": "XL"}, price=Decimal("12.00")
        )
    )

    again = product_publish(channel=channel, product=product)

    assert (first.ok, again.ok) == (True, True), again.refused
    assert again.publication.product_ref == first.publication.product_ref
    assert again.publication.attempts == 2
    assert sorted(again.listed) == ["TRAIL-SOCK-M", "TRAIL-SOCK-S", "TRAIL-SOCK-XL"]
    assert ChannelListing.objects.filter(channel=channel).count() == 3
    assert len(products_on(validating, platform)) == 1
    assert refusals(validating, platform) == {"refusals": [], "answer_problems": []}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_publish_whose_answer_was_lost_makes_nothing_twice(validating, platform) -> None:
    channel = publishing_channels(validating, [platform])[platform]
    product = sock_product(sizes=("S", "M"))
    product_publish(channel=channel, product=product)
    # pimsync never learnt the outcome: no publication, no listings
    ChannelPublication.objects.all().delete()
    ChannelListing.objects.all().delete()

    again = product_publish(channel=channel, product=product)

    assert again.ok, again.refused
    assert len(products_on(validating, platform)) == 1
    assert len(content(validating, platform)) == 2
    assert refusals(validating, platform) == {"refusals": [], "answer_problems": []}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_options_barcode_and_image_edits_reach_the_channel(validating, platform) -> None:
    channel = publishing_channels(validating, [platform])[platform]
    product = sock_product(sizes=("S", "M"))
    product_publish(channel=channel, product=product)
    engine.channel_push(channel.pk)
    variant = Variant.objects.get(sku="TRAIL-SOCK-M")
    variant.options = {"size": "Medium"}
    variant.barcode = "0400638133999"
    services.variant_save(variant=variant)
    product.image_urls = ["https://images.example.com/new-front.jpg"]
    services.product_save(product=product)

    report = engine.channel_push(channel.pk)

    assert report.pushed == 2
    shown = content(validating, platform)
    medium = shown[ChannelListing.objects.get(variant=variant).channel_sku]
    if platform == "amazon":  # a variant's size is its title; Amazon keeps the identifier
        assert medium["variant_title"] == "Trail Sock - Medium"
    else:
        assert {k.lower(): v for k, v in medium["options"].items()} == {"size": "Medium"}
        assert medium["barcode"] == "0400638133999"
    if platform != "magento":
        assert medium["images"] == ["https://images.example.com/new-front.jpg"]
    logged = SyncLogEntry.objects.get(
        channel=channel,
        event_type="attribute",
        sku=variant.sku,
        status="success",
        value_sent__contains="variant",
    )
    assert logged.value_sent == "images,variant"
    assert refusals(validating, platform) == {"refusals": [], "answer_problems": []}


def test_a_variant_the_channel_refuses_leaves_a_partial_publication(sandbox) -> None:
    channel = publishing_channels(sandbox, ["woocommerce"])["woocommerce"]
    product = sock_product()
    control(
        sandbox.url, "POST", "/_control/faults", {"woocommerce": {"fail_skus": ["TRAIL-SOCK-M"]}}
    )

    outcome = product_publish(channel=channel, product=product)

    assert sorted(outcome.listed) == ["TRAIL-SOCK-L", "TRAIL-SOCK-S"]
    assert [(sku, code) for sku, code, _ in outcome.refused] == [
        ("TRAIL-SOCK-M", "woocommerce_rest_product_not_saved")
    ]
    assert outcome.publication.status == "partial"
    failed = SyncLogEntry.objects.get(channel=channel, event_type="attribute", status="failed")
    assert (failed.sku, failed.error_code) == ("TRAIL-SOCK-M", "woocommerce_rest_product_not_saved")
    assert not ChannelListing.objects.filter(variant__sku="TRAIL-SOCK-M").exists()


def test_a_channel_that_is_down_fails_the_publication_and_lists_nothing(sandbox) -> None:
    channel = publishing_channels(sandbox, ["shopify"])["shopify"]
    product = sock_product()
    control(sandbox.url, "POST", "/_control/faults", {"shopify": {"outage_seconds": 60}})

    outcome = product_publish(channel=channel, product=product)

    assert (outcome.ok, outcome.publication.status) == (False, "failed")
    assert outcome.publication.message.startswith("not published: ")
    assert not ChannelListing.objects.exists()
    assert not SyncMarker.objects.exists()
    assert SyncLogEntry.objects.filter(event_type="attribute", status="failed").count() == 3


def test_content_pushes_retry_then_a_refusal_is_dead_lettered_and_alerted(sandbox) -> None:
    channel = publishing_channels(sandbox, ["woocommerce"])["woocommerce"]
    product = sock_product(sizes=("S",))
    product_publish(channel=channel, product=product)
    engine.channel_push(channel.pk)
    faults = {"woocommerce": {"error_5xx": 1.0, "error_status": 503}}
    control(sandbox.url, "POST", "/_control/faults", faults)
    product.title = "Trail Sock Pro"
    services.product_save(product=product)

    engine.channel_push(channel.pk)
    marker = SyncMarker.objects.get(kind="attribute")
    assert (marker.status, marker.attempts) == ("pending", 1)
    # then a refusal for good: the product's update answers 400
    faults = {"woocommerce": {"error_5xx": 1.0, "error_status": 400}}
    control(sandbox.url, "POST", "/_control/faults", faults)
    SyncMarker.objects.update(due_at=marker.first_dirty_at)
    engine.channel_push(channel.pk)

    marker.refresh_from_db()
    assert (marker.status, marker.attempts) == ("dead", 2)
    statuses = list(
        SyncLogEntry.objects.filter(event_type="attribute", value_sent="product")
        .order_by("id")
        .values_list("status", flat=True)
    )
    assert statuses == ["retrying", "dead"]
    assert Alert.objects.get(kind="dead_letter").sku == "TRAIL-SOCK-S"


def test_listings_whose_content_pimsync_does_not_own_get_no_content_push(
    sandbox, listing_factory, variant
) -> None:
    listing_factory(variant=variant, sync_content=False)

    variant.title = "Renamed"
    services.variant_save(variant=variant)

    assert not SyncMarker.objects.filter(kind="attribute").exists()


def test_quick_edits_coalesce_into_one_content_push(sandbox) -> None:
    channel = publishing_channels(sandbox, ["shopify"])["shopify"]
    product = sock_product(sizes=("S",))
    product_publish(channel=channel, product=product)
    engine.channel_push(channel.pk)
    control(sandbox.url, "POST", "/_control/counters/reset", {})

    for n in range(5):
        product.description = f"<p>Edit {n}</p>"
        services.product_save(product=product)
    engine.channel_push(channel.pk)

    assert content(sandbox, "shopify")["TRAIL-SOCK-S"]["description"] == "<p>Edit 4</p>"
    assert control(sandbox.url, "GET", "/_control/counters/shopify")[1]["calls"] == 1
