"""Catalog import against the sandbox: the whole catalog read page by page and
matched; restartable (a failure, a killed worker); one import per channel; exact
SKU matches linked without review only when the channel says so."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone

from channels_app.connectors.errors import RetryableError
from channels_app.dispatch import CATALOG_IMPORT
from channels_app.models import (
    CatalogImport,
    CatalogImportItem,
    ChannelListing,
    SyncMarker,
)
from channels_app.onboarding import importer
from channels_app.onboarding.importer import (
    CatalogImportBusyError,
    catalog_import_resume,
    catalog_import_run,
    catalog_import_start,
    catalog_imports_sweep,
)
from inventory.models import Variant
from tests.support.catalog import sandbox_channel

pytestmark = pytest.mark.django_db
Status = CatalogImportItem.Status


@pytest.fixture
def pimsync_catalog(product_factory, variant_factory):
    """Sock in M and L (with barcodes), a mug, a cap."""
    sock = product_factory(title="Trail Sock", handle="trail-sock")
    variant_factory(product=sock, sku="SOCK-M", barcode="4006381333931", options={"size": "M"})
    variant_factory(product=sock, sku="SOCK-L", barcode="4006381333948", options={"size": "L"})
    variant_factory(product=product_factory(title="Enamel Camp Mug"), sku="MUG", options={})
    variant_factory(product=product_factory(title="Cap"), sku="CAP", options={})


# The channel's catalog: one item of each class.
CHANNEL_ROWS = [
    # exact SKU
    {"sku": "SOCK-M", "price": "9.50", "quantity": 4, "product_title": "Trail Sock"},
    # barcode only (another SKU on the channel)
    {"sku": "WEB-SOCK-L", "price": "9.50", "quantity": 2, "barcode": "4006381333948"},
    # title only
    {"sku": "WEB-MUG", "price": "14.00", "quantity": 7, "product_title": "Enamel camp mugs"},
    # duplicates: the cap under its SKU, and an old copy of it with the same title
    {"sku": "CAP", "price": "5.00", "quantity": 1, "product_title": "Cap"},
    {"sku": "OLD-CAP", "price": "5.00", "quantity": 1, "product_title": "Cap"},
    # unknown
    {"sku": "SPORK", "price": "3.00", "quantity": 9, "product_title": "Titanium Spork"},
]


def import_channel(sandbox, platform: str = "shopify", rows=CHANNEL_ROWS, **fields):
    sandbox.platform(platform).seed(rows)
    return sandbox_channel(sandbox, platform, **fields)


def statuses(run: CatalogImport) -> dict[str, tuple[str, str]]:
    return {
        item.sku: (item.status, item.variant.sku if item.variant else "")
        for item in run.items.select_related("variant")
    }


def test_an_import_reads_every_page_and_matches_each_item(sandbox, pimsync_catalog) -> None:
    channel = import_channel(sandbox)
    run = catalog_import_start(channel=channel)

    with override_settings(PIMSYNC_CATALOG_IMPORT_PAGE_SIZE=2):
        outcome = catalog_import_run(run.pk)

    run.refresh_from_db()
    assert (outcome, run.status, run.pages, run.items_read) == ("finished", "finished", 3, 6)
    assert statuses(run) == {
        "SOCK-M": (Status.MATCHED, "SOCK-M"),
        "WEB-SOCK-L": (Status.MATCHED, "SOCK-L"),
        "WEB-MUG": (Status.PROPOSED, "MUG"),
        "CAP": (Status.MATCHED, "CAP"),
        "OLD-CAP": (Status.CONFLICT, ""),
        "SPORK": (Status.UNMATCHED, ""),
    }
    assert run.counts == {"matched": 3, "proposed": 1, "conflict": 1, "unmatched": 1}
    assert ChannelListing.objects.count() == 0  # nothing linked without a person
    mug = run.items.get(sku="WEB-MUG")
    assert (mug.price, mug.quantity, mug.match) == (Decimal("14.00"), 7, "title")
    assert mug.external_variant_id.startswith("gid://shopify/ProductVariant/")
    assert mug.inventory_item_id.startswith("gid://shopify/InventoryItem/")


@pytest.mark.parametrize("platform", ["woocommerce", "ebay", "amazon", "magento"])
def test_every_platform_imports_and_matches_alike(sandbox, pimsync_catalog, platform) -> None:
    channel = import_channel(sandbox, platform)
    run = catalog_import_start(channel=channel)

    assert catalog_import_run(run.pk) == "finished"

    run.refresh_from_db()
    assert run.counts == {"matched": 3, "proposed": 1, "conflict": 1, "unmatched": 1}


def test_exact_skus_are_linked_at_once_when_the_channel_says_so(sandbox, pimsync_catalog) -> None:
    channel = import_channel(sandbox, auto_link_exact_sku=True)
    run = catalog_import_start(channel=channel)

    catalog_import_run(run.pk)

    run.refresh_from_db()
    linked = run.items.filter(status=Status.LINKED)
    assert sorted(linked.values_list("sku", flat=True)) == ["CAP", "SOCK-M"]
    assert run.auto_linked == 2
    assert sorted(ChannelListing.objects.values_list("variant__sku", flat=True)) == [
        "CAP",
        "SOCK-M",
    ]
    listing = ChannelListing.objects.get(variant__sku="SOCK-M")
    assert listing.external_variant_id == run.items.get(sku="SOCK-M").external_variant_id
    # pimsync's values go out: both kinds marked for a push
    assert SyncMarker.objects.filter(listing=listing).count() == 2
    # the barcode match still waits for a person
    assert run.items.get(sku="WEB-SOCK-L").status == Status.MATCHED


def test_an_item_the_channel_already_lists_is_linked(sandbox, pimsync_catalog) -> None:
    channel = import_channel(sandbox, "woocommerce")
    item = sandbox.platform("woocommerce").catalog.get("WEB-MUG")
    ChannelListing.objects.create(
        channel=channel,
        variant=Variant.objects.get(sku="MUG"),
        listing_sku="WEB-MUG",
        external_variant_id=item.ids["variant_id"],
    )
    run = catalog_import_start(channel=channel)

    catalog_import_run(run.pk)

    assert statuses(run)["WEB-MUG"] == (Status.LINKED, "MUG")


def test_one_import_per_channel_at_a_time(sandbox, pimsync_catalog) -> None:
    channel = import_channel(sandbox)
    catalog_import_start(channel=channel)

    with pytest.raises(CatalogImportBusyError):
        catalog_import_start(channel=channel)


def test_a_failed_read_resumes_at_the_page_it_stopped(
    sandbox, pimsync_catalog, monkeypatch
) -> None:
    channel = import_channel(sandbox, "woocommerce")
    run = catalog_import_start(channel=channel)
    calls = []
    original = importer._read_page

    def failing_third_page(connector, cursor, sleep):
        calls.append(cursor)
        if len(calls) == 3:
            raise importer.CatalogImportError("the shop went away")
        return original(connector, cursor, sleep)

    monkeypatch.setattr(importer, "_read_page", failing_third_page)
    with override_settings(PIMSYNC_CATALOG_IMPORT_PAGE_SIZE=2):
        assert catalog_import_run(run.pk) == "failed"
        run.refresh_from_db()
        assert (run.status, run.pages, run.items_read, run.error_message) == (
            "failed",
            2,
            4,
            "the shop went away",
        )
        stored_cursor = run.cursor

        assert catalog_import_resume(run=run)
        assert catalog_import_run(run.pk) == "finished"

    run.refresh_from_db()
    assert calls[3] == stored_cursor  # the resumed read asked for the page that failed
    assert (run.status, run.items_read, run.items.count(), run.resumes) == ("finished", 6, 6, 1)


def test_a_killed_workers_import_is_taken_over_by_the_sweeper(
    sandbox, pimsync_catalog, task_sends
) -> None:
    channel = import_channel(sandbox)
    run = catalog_import_start(channel=channel)
    with override_settings(PIMSYNC_CATALOG_IMPORT_PAGE_SIZE=2):
        # The first worker reads two pages and dies holding the lease.
        lease = importer._claim(run.pk, timezone.now())
        connector = importer.channel_connector(channel)
        page = connector.catalog_page(None, page_size=2)
        importer._store_page(run, lease, page, 0, 0.1, timezone.now())

        assert catalog_imports_sweep() == []  # the lease still holds
        assert catalog_import_run(run.pk) == "busy"

        later = timezone.now() + timedelta(seconds=301)
        assert catalog_imports_sweep(now=later) == [run.pk]
        assert task_sends.args_of(CATALOG_IMPORT) == [[run.pk]]
        CatalogImport.objects.filter(pk=run.pk).update(lease_until=timezone.now())
        assert catalog_import_run(run.pk) == "finished"

    run.refresh_from_db()
    assert (run.items.count(), run.pages, run.resumes) == (6, 3, 1)


def test_retryable_failures_are_waited_out(sandbox, pimsync_catalog, monkeypatch) -> None:
    channel = import_channel(sandbox)
    run = catalog_import_start(channel=channel)
    waits = []
    connector_class = type(importer.channel_connector(channel))
    original = connector_class.catalog_page
    failures = iter([RetryableError("THROTTLED", code="THROTTLED", retry_after=1.5)])

    def throttled_once(self, cursor, *, page_size=100):
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return original(self, cursor, page_size=page_size)

    monkeypatch.setattr(connector_class, "catalog_page", throttled_once)

    assert catalog_import_run(run.pk, sleep=waits.append) == "finished"
    assert waits == [1.5]


def test_refused_credentials_fail_the_import_with_the_reason(sandbox, pimsync_catalog) -> None:
    channel = import_channel(sandbox)
    channel.credentials = {"access_token": "wrong"}
    channel.save()
    run = catalog_import_start(channel=channel)

    assert catalog_import_run(run.pk) == "failed"

    run.refresh_from_db()
    assert run.status == "failed"
    assert "Invalid API key or access token" in run.error_message


def test_a_long_read_continues_in_a_new_task(sandbox, pimsync_catalog, task_sends) -> None:
    channel = import_channel(sandbox)
    run = catalog_import_start(channel=channel)

    with override_settings(PIMSYNC_CATALOG_IMPORT_PAGE_SIZE=2):
        assert catalog_import_run(run.pk, budget_seconds=0.001) == "continued"
        assert task_sends.args_of(CATALOG_IMPORT) == [[run.pk]]
        assert catalog_import_run(run.pk) == "finished"

    run.refresh_from_db()
    assert (run.pages, run.items.count()) == (3, 6)


def test_magento_children_take_their_configurable_as_product(sandbox, pimsync_catalog) -> None:
    rows = [
        {"sku": "SOCK-M", "price": "9.50", "quantity": 4, "group": "SOCK", "product_title": "Sock"},
        {"sku": "MUG", "price": "14.00", "quantity": 7, "product_title": "Mug"},
    ]
    channel = import_channel(sandbox, "magento", rows=rows)
    run = catalog_import_start(channel=channel)

    catalog_import_run(run.pk)

    sock = run.items.get(sku="SOCK-M")
    assert (sock.external_product_id, sock.group_ref, sock.product_title) == (
        "SOCK",
        "SOCK",
        "Sock",
    )
    assert run.items.get(sku="MUG").external_product_id == ""
