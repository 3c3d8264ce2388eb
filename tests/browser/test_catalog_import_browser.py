"""Bringing a store in, in a real headless browser against the sandbox: a person
connects a Shopify channel in the admin, imports its catalog (the import's page
follows the read by itself and shows the result), reviews the matches, links them in
bulk after seeing the first values, and finds the first push in the sync log.

The worker's two steps (reading the catalog, pushing) run in the test's thread with
the tasks' own code, between the person's clicks; a screenshot is saved for people."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from channels_app.models import CatalogImport, Channel, ChannelListing
from channels_app.onboarding.importer import catalog_import_run
from channels_app.sync import engine
from inventory import services
from inventory.models import Location, Product, Variant
from synclog.models import SyncLogEntry
from tests.support.browser import SCREENSHOTS, own_db_connections_closed
from tests.support.sandbox import SHOPIFY_LOCATION, SHOPIFY_TOKEN

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "merch-Very-Long-Pass-1"

# The store's catalog: two SKUs pimsync has, one it names otherwise, one it lacks.
STORE = [
    {"sku": "SOCK-M", "price": "11.00", "quantity": 3, "product_title": "Trail Sock",
     "options": {"Size": "M"}, "group": "sock"},
    {"sku": "SOCK-L", "price": "11.00", "quantity": 0, "product_title": "Trail Sock",
     "options": {"Size": "L"}, "group": "sock"},
    {"sku": "WEB-MUG-1", "price": "15.00", "quantity": 9, "product_title": "Enamel camp mugs"},
    {"sku": "KITE-9", "price": "60.00", "quantity": 1, "product_title": "Stunt Kite"},
]  # fmt: skip


def pimsync_catalog() -> None:
    main = Location.objects.create(code="main", name="Main warehouse")
    sock = Product.objects.create(title="Trail Sock", handle="trail-sock")
    mug = Product.objects.create(title="Enamel Camp Mug", handle="enamel-camp-mug")
    for product, sku, options, on_hand in (
        (sock, "SOCK-M", {"size": "M"}, 8),
        (sock, "SOCK-L", {"size": "L"}, 5),
        (mug, "MUG", {}, 12),
    ):
        variant = Variant.objects.create(
            product=product, sku=sku, options=options, price=Decimal("10.00")
        )
        services.stock_adjust(
            variant=variant,
            location=main,
            quantity=on_hand,
            reason="receive",
            source="t",
            idempotency_key=f"seed-{sku}",
        )


def test_bring_a_store_in_with_a_real_browser(live_server, browser_page, sandbox, settings):
    settings.PIMSYNC_CATALOG_IMPORT_PAGE_SIZE = 2
    with own_db_connections_closed():
        store_onboarding_walk(live_server, browser_page, sandbox)


def store_onboarding_walk(live_server, page, sandbox) -> None:
    pimsync_catalog()
    sandbox.platform("shopify").seed(STORE)
    get_user_model().objects.create_superuser("merch", password=PASSWORD)

    # Given a person logged in to the admin
    page.goto(f"{live_server.url}{reverse('admin:login')}?next={reverse('admin:index')}")
    page.fill("#id_username", "merch")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}{reverse('admin:index')}")

    # When they connect the store: Channels > Add channel
    page.goto(f"{live_server.url}{reverse('admin:channels_app_channel_add')}")
    page.fill("#id_name", "Our Shopify")
    page.select_option("#id_platform", "shopify")
    page.fill("#id_base_url", sandbox.platform_url("shopify"))
    page.fill("#id_new_credentials", f'{{"access_token": "{SHOPIFY_TOKEN}"}}')
    page.fill("#id_platform_config", f'{{"location_id": "{SHOPIFY_LOCATION}"}}')
    page.click("#channel_locations-group .add-row a")
    page.select_option(
        "#id_channel_locations-0-location", str(Location.objects.get(code="main").pk)
    )
    page.click("input[name=_save]")
    page.wait_for_url(f"{live_server.url}{reverse('admin:channels_app_channel_changelist')}")
    channel = Channel.objects.get(name="Our Shopify")  # its slug filled in by the admin

    # And start the catalog import from the channel list
    page.check(f"input[name=_selected_action][value='{channel.pk}']")
    page.select_option("select[name=action]", "catalog_import_action")
    page.click("button[name=index]")
    page.get_by_role("button", name="Yes, import the channel's catalog").click()

    # Then the import's page follows the read
    page.locator("#ps-import-bar").wait_for()
    assert "Reading the channel" in page.content()
    run = CatalogImport.objects.get(channel=channel)
    # (the worker reads it now, page after page, while the page polls its progress)
    worker = threading.Thread(target=catalog_import_run, args=(run.pk,))
    worker.start()
    worker.join(timeout=60)

    # and shows the result by itself once it is matched
    page.locator("table.ps-import-result").wait_for(timeout=15_000)
    result = page.locator("table.ps-import-result").inner_text()
    assert "Matched (SKU or barcode)\t2" in result
    assert "Proposed (title and options)\t1" in result
    assert "Unmatched\t1" in result
    assert ChannelListing.objects.count() == 0  # nothing linked without a person

    # When they review every item and link the matched and proposed ones in bulk
    page.get_by_role("link", name="Review every item").click()
    page.locator("#result_list").wait_for()
    for sku in ("SOCK-M", "SOCK-L", "WEB-MUG-1"):
        row = page.locator("#result_list tr", has_text=sku)
        row.locator("input[name=_selected_action]").check()
    page.select_option("select[name=action]", "link_action")
    page.click("button[name=index]")

    # Then they see the channel's first values beside pimsync's
    first_values = page.locator("table.ps-first-values").inner_text()
    assert "15.00" in first_values  # the mug's price on the channel
    assert "Quantities are always pimsync's" in page.content()
    page.get_by_role("button", name="Yes, link 3 items").click()
    assert "Linked 3 item(s)" in page.locator("ul.messagelist").inner_text()
    assert ChannelListing.objects.filter(channel=channel).count() == 3

    # When the worker pushes the new listings
    engine.channel_push(channel.pk)

    # Then the sync log shows the first push of each linked SKU
    page.goto(
        f"{live_server.url}{reverse('admin:synclog_synclogentry_changelist')}"
        f"?channel__id__exact={channel.pk}"
    )
    log = page.locator("#result_list").inner_text()
    for sku in ("SOCK-M", "SOCK-L", "MUG"):
        assert sku in log
    assert SyncLogEntry.objects.filter(channel=channel, status="success").count() == 6
    values = sandbox.platform("shopify").catalog
    assert (values.get("SOCK-M").quantity, values.get("WEB-MUG-1").quantity) == (8, 12)
    assert values.get("WEB-MUG-1").price == Decimal("10.00")  # pimsync's price

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "catalog-import-sync-log.png"), full_page=True)
