"""The catalog import in the admin: started from a channel, its page while it reads
and once matched, the review screen and its bulk decisions, against the sandbox."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from channels_app.models import CatalogImport, CatalogImportItem, ChannelListing
from channels_app.onboarding.importer import catalog_import_run
from inventory.models import Location, StockMovement, Variant
from tests.support.catalog import sandbox_channel

pytestmark = pytest.mark.django_db
Status = CatalogImportItem.Status

ROWS = [
    {"sku": "SOCK-M", "price": "9.50", "quantity": 4, "product_title": "Trail Sock"},
    {"sku": "WEB-MUG", "price": "14.00", "quantity": 7, "product_title": "Enamel camp mugs"},
    {"sku": "SPORK", "price": "3.00", "quantity": 9, "product_title": "Titanium Spork"},
]


@pytest.fixture
def channel(sandbox, product_factory, variant_factory):
    variant_factory(
        product=product_factory(title="Trail Sock"), sku="SOCK-M", price=Decimal("9.00")
    )
    variant_factory(
        product=product_factory(title="Enamel Camp Mug"),
        sku="MUG",
        price=Decimal("12.00"),
        options={},
    )
    sandbox.platform("shopify").seed(ROWS)
    return sandbox_channel(sandbox, "shopify")


def start(admin_client, channel) -> CatalogImport:
    url = reverse("admin:channels_app_channel_changelist")
    response = admin_client.post(
        url,
        {"action": "catalog_import_action", ACTION_CHECKBOX_NAME: [channel.pk], "confirm": "yes"},
    )
    run = CatalogImport.objects.latest("pk")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:channels_app_catalogimport_change", args=[run.pk])
    return run


def review(admin_client, run, action: str, items, **fields):
    url = reverse("admin:channels_app_catalogimportitem_changelist") + f"?run__id__exact={run.pk}"
    data = {"action": action, ACTION_CHECKBOX_NAME: [i.pk for i in items], **fields}
    return admin_client.post(url, data)


def test_the_import_page_shows_progress_then_the_result(admin_client, channel) -> None:
    run = start(admin_client, channel)
    page_url = reverse("admin:channels_app_catalogimport_change", args=[run.pk])

    reading = admin_client.get(page_url).content.decode()
    progress = admin_client.get(
        reverse("admin:channels_app_catalogimport_progress", args=[run.pk])
    ).json()
    catalog_import_run(run.pk)
    result = admin_client.get(page_url).content.decode()

    assert "Reading the channel&#x27;s catalog" in reading
    assert 'id="ps-import-bar"' in reading
    assert 'data-done="0"' in reading
    assert "catalog_import.js" in reading
    assert progress == {
        "status": "running",
        "items_read": 0,
        "total": None,
        "percent": None,
        "pages": 0,
        "calls": 0,
        "done": False,
    }
    assert 'data-done="1"' in result
    assert "Result" in result
    review_link = reverse("admin:channels_app_catalogimportitem_changelist")
    assert f"{review_link}?run__id__exact={run.pk}&amp;status__exact=proposed" in result


def test_the_review_lists_the_items_with_filters_and_search(admin_client, channel) -> None:
    run = start(admin_client, channel)
    catalog_import_run(run.pk)
    url = reverse("admin:channels_app_catalogimportitem_changelist")

    everything = admin_client.get(url, {"run__id__exact": run.pk}).content.decode()
    proposed = admin_client.get(
        url, {"run__id__exact": run.pk, "status__exact": "proposed"}
    ).content.decode()
    found = admin_client.get(url, {"q": "spork"}).content.decode()

    assert f"Review catalog import #{run.pk} of {channel}" in everything
    assert all(sku in everything for sku in ("SOCK-M", "WEB-MUG", "SPORK"))
    assert "WEB-MUG" in proposed
    assert "SPORK" not in proposed
    assert "SPORK" in found
    assert "SOCK-M" not in found


def test_linking_shows_first_values_then_links_with_the_chosen_prices(
    admin_client, channel
) -> None:
    run = start(admin_client, channel)
    catalog_import_run(run.pk)
    items = list(run.items.filter(status__in=[Status.MATCHED, Status.PROPOSED]))

    confirm = review(admin_client, run, "link_action", items).content.decode()
    done = review(admin_client, run, "link_action", items, confirm="yes", price_source="channel")

    assert "First values" in confirm
    assert "Quantities are always pimsync's" in confirm
    assert "14.00" in confirm  # the channel's price beside pimsync's
    assert "12.00" in confirm
    assert done.status_code == 302
    overrides = dict(ChannelListing.objects.values_list("variant__sku", "price_override"))
    assert overrides == {"SOCK-M": Decimal("9.50"), "MUG": Decimal("14.00")}
    assert set(run.items.filter(status=Status.LINKED).values_list("sku", flat=True)) == {
        "SOCK-M",
        "WEB-MUG",
    }


def test_creating_and_ignoring_from_the_review(admin_client, channel) -> None:
    run = start(admin_client, channel)
    catalog_import_run(run.pk)
    spork = run.items.get(sku="SPORK")
    location = Location.objects.get(code="main")

    review(admin_client, run, "create_action", [spork], confirm="yes", stock_location=location.pk)
    mug = run.items.get(sku="WEB-MUG")
    review(admin_client, run, "ignore_action", [mug], confirm="yes")

    variant = Variant.objects.get(sku="SPORK")
    assert (variant.product.title, variant.price) == ("Titanium Spork", Decimal("3.00"))
    assert StockMovement.objects.get(variant=variant).delta_on_hand == 9
    assert run.items.get(sku="SPORK").status == Status.LINKED
    assert run.items.get(sku="WEB-MUG").status == Status.IGNORED


def test_choosing_a_variant_on_an_items_page(admin_client, channel) -> None:
    run = start(admin_client, channel)
    catalog_import_run(run.pk)
    spork = run.items.get(sku="SPORK")
    mug = Variant.objects.get(sku="MUG")
    url = reverse("admin:channels_app_catalogimportitem_change", args=[spork.pk])

    assert admin_client.get(url).status_code == 200
    admin_client.post(url, {"variant": mug.pk})

    spork.refresh_from_db()
    assert (spork.status, spork.variant) == (Status.PROPOSED, mug)


def test_a_failed_import_is_resumed_from_its_page(admin_client, channel) -> None:
    channel.credentials = {"access_token": "wrong"}
    channel.save()
    run = start(admin_client, channel)
    catalog_import_run(run.pk)
    page = admin_client.get(reverse("admin:channels_app_catalogimport_change", args=[run.pk]))
    channel.credentials = {"access_token": "shpat_sandbox"}
    channel.save()

    admin_client.post(reverse("admin:channels_app_catalogimport_resume", args=[run.pk]))
    catalog_import_run(run.pk)

    assert "Resume from where it stopped" in page.content.decode()
    run.refresh_from_db()
    assert (run.status, run.items_read) == ("finished", 3)


def test_review_and_import_lists_make_constant_queries(admin_client, channel, sandbox) -> None:
    def queries(model: str, **params) -> int:
        url = reverse(f"admin:channels_app_{model}_changelist")
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(url, params).status_code == 200
        return len(ctx.captured_queries)

    run = start(admin_client, channel)
    catalog_import_run(run.pk)
    before = (queries("catalogimportitem"), queries("catalogimport"))
    sandbox.platform("shopify").seed(
        [{"sku": f"MORE-{n}", "price": "1", "quantity": 1} for n in range(30)]
    )
    again = start(admin_client, channel)
    catalog_import_run(again.pk)

    assert (queries("catalogimportitem"), queries("catalogimport")) == before
