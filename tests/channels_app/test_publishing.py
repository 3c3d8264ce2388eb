"""Publishing a pimsync product on a channel, and its later content edits (attribute
events), against the validating sandbox."""

from __future__ import annotations

from decimal import Decimal

import pytest

from channels_app.models import ChannelListing, ChannelPublication, SyncMarker
from channels_app.publishing import PublishError, product_publish
from channels_app.sync import engine
from inventory import services
from sandbox.server import RunningSandbox
from synclog.models import SyncLogEntry
from tests.support.publishing import IMAGES, PLATFORMS, publishing_channels, sock_product
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
