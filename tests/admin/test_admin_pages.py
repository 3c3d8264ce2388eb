"""The admin walked with the test client over the seeded demo: every changelist,
change and add page renders, and list pages make a constant number of queries."""

from decimal import Decimal

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from channels_app.models import Channel, ChannelListing
from inventory import services
from inventory.models import Location
from tests import factories

pytestmark = pytest.mark.django_db

APP_LABELS = {"inventory", "channels_app", "synclog"}


def our_models():
    return [m for m in admin.site._registry if m._meta.app_label in APP_LABELS]


def grow_every_table() -> None:
    """Add rows to every model shown in the admin."""
    loc = Location.objects.get(code="main")
    new_loc = factories.LocationFactory()
    channel = factories.ChannelFactory(platform="woocommerce")
    factories.ChannelLocationFactory(channel=channel, location=new_loc)
    factories.PriceRuleFactory(channel=channel, multiplier=Decimal("1.2"))
    for i in range(3):
        product = factories.ProductFactory()
        for _ in range(2):
            v = factories.VariantFactory(product=product)
            services.stock_adjust(
                variant=v,
                location=loc,
                quantity=5,
                reason="receive",
                source="t",
                idempotency_key=f"grow-{v.pk}",
            )
            services.reservation_create(
                variant=v, location=loc, quantity=1, source="t", idempotency_key=f"grow-r-{v.pk}"
            )
            factories.ChannelListingFactory(channel=channel, variant=v)
        factories.BufferRuleFactory(channel=channel, product=product, value=Decimal(i))
    from channels_app.sync.markers import listings_mark_dirty
    from synclog import services as synclog

    listings_mark_dirty(ChannelListing.objects.filter(channel=channel))
    # The earlier outage recovers; a new one opens an incident the dead letters below join.
    from synclog.models import Alert

    synclog.alerts_resolve(Alert.objects.filter(kind="dead_channel"))
    synclog.alert_raise(kind="circuit_open", channel_id=channel.pk, message="5 failed calls")
    for listing in ChannelListing.objects.filter(channel=channel).select_related("variant"):
        synclog.sync_log_record(
            [
                synclog.Attempt(
                    channel.pk, listing.variant.sku, listing.pk, "inventory", "3", "retrying", "503"
                )
            ]
        )
        synclog.alert_raise(
            kind="dead_letter", channel_id=channel.pk, sku=listing.variant.sku, message="x"
        )
    some_orders(channel, "G", 3)
    from channels_app.webhook_secrets import webhook_secret_reveal

    for _ in range(3):
        webhook_secret_reveal(channel=channel, via="command")
    some_csv_imports(3)
    reconciliation_rows(channel, n=3)
    health_snapshot_record(channel.pk)
    catalog_import_rows(channel, n=3)


def changelist_queries(client, model) -> int:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(ctx.captured_queries)


def test_every_list_page_makes_constant_queries_whatever_the_row_count(
    demo, admin_client, monkeypatch
):
    for model_admin in admin.site._registry.values():
        monkeypatch.setattr(model_admin, "list_per_page", 1000)
    runtime_rows()
    before = {m: changelist_queries(admin_client, m) for m in our_models()}
    rows_before = {m: m._base_manager.count() for m in our_models()}
    grow_every_table()
    grown = [m.__name__ for m in our_models() if m._base_manager.count() <= rows_before[m]]
    assert grown == [], "every list must have more rows for the comparison to mean anything"
    after = {m: changelist_queries(admin_client, m) for m in our_models()}
    assert after == before
    assert max(before.values()) <= 15, before


def some_orders(channel, prefix: str, n: int) -> None:
    """Orders (with lines, customers and calls to their channel) and inbound events,
    as channels send them."""
    from datetime import UTC, datetime

    from channels_app.connectors.base import OrderData, OrderLineData
    from channels_app.models import InboundEvent, OrderChannelCall
    from channels_app.orders.apply import order_apply

    sku = (
        ChannelListing.objects.filter(channel=channel)
        .values_list("variant__sku", flat=True)
        .first()
    )
    when = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(n):
        result = order_apply(
            channel=channel,
            data=OrderData(
                external_id=f"{prefix}{i}",
                name=f"#{prefix}{i}",
                status="cancelled",
                financial_status="voided",
                fulfillment_status="",
                currency="USD",
                total=Decimal("10"),
                updated_at=when,
                created_at=when,
                lines=[
                    OrderLineData("1", sku, 1, Decimal("10")),
                    OrderLineData("2", "NOPE", 1, Decimal("1")),
                ],
                customer_email=f"{prefix}{i}@example.com",
            ),
            source="poll",
        )
        InboundEvent.objects.create(channel=channel, source="poll", delivery_id=f"{prefix}{i}")
        OrderChannelCall.objects.create(
            order=result.order,
            kind="cancel",
            status=("pending", "done", "dead")[i % 3],
            attempts=i % 3,
            next_attempt_at=when,
            last_error="503 Service Unavailable" if i % 3 != 1 else "",
        )


def runtime_rows() -> None:
    """Rows the demo only gets once the worker runs: make one of each."""
    from channels_app.models import ChannelListing, SyncMarker
    from synclog import services as synclog

    listing = ChannelListing.objects.select_related("variant").first()
    from channels_app.webhook_secrets import webhook_secret_reveal

    webhook_secret_reveal(channel=listing.channel, via="admin")
    if not SyncMarker.objects.exists():
        from channels_app.sync.markers import listings_mark_dirty

        listings_mark_dirty(ChannelListing.objects.filter(pk=listing.pk))
    synclog.sync_log_record(
        [
            synclog.Attempt(
                listing.channel_id,
                listing.variant.sku,
                listing.pk,
                "price",
                "9.99",
                "dead",
                "400",
                "refused",
            )
        ]
    )
    synclog.alert_raise(
        kind="dead_letter",
        channel_id=listing.channel_id,
        sku=listing.variant.sku,
        message="refused",
    )
    # A channel outage: opens an incident (and, like every alert, notifications).
    synclog.alert_raise(kind="dead_channel", channel_id=listing.channel_id, message="dead")
    some_orders(listing.channel, "R", 1)
    some_csv_imports(1)
    reconciliation_rows(listing.channel, n=1)
    health_snapshot_record(listing.channel_id)
    catalog_import_rows(listing.channel, n=1)


def catalog_import_rows(channel, n: int) -> None:
    """Catalog imports with items of every kind, and a listings CSV, as people leave them."""
    from django.utils import timezone

    from channels_app.models import CatalogImport, CatalogImportItem, ListingCsvImport

    listings = list(ChannelListing.objects.filter(channel=channel).select_related("variant"))
    for i in range(n):
        run = CatalogImport.objects.create(
            channel=channel,
            status="finished",
            started_at=timezone.now(),
            finished_at=timezone.now(),
            items_read=2,
            counts={"linked": 1, "unmatched": 1},
        )
        CatalogImportItem.objects.create(
            run=run,
            key=f"{i}-a",
            position=0,
            sku=listings[0].variant.sku,
            status="linked",
            match="sku",
            variant=listings[0].variant,
            listing=listings[0],
        )
        CatalogImportItem.objects.create(
            run=run, key=f"{i}-b", position=1, sku=f"NEW-{i}", candidates=[listings[0].variant_id]
        )
        ListingCsvImport.objects.create(file_name=f"l{i}.csv", file_sha256="0" * 64, row_count=1)


def some_csv_imports(n: int) -> None:
    """Price imports as merchandisers leave them: applied or only previewed."""
    from inventory.csv_imports import csv_import_apply, csv_import_preview
    from inventory.models import Variant

    sku, price = Variant.objects.order_by("pk").values_list("sku", "price").first()
    for i in range(n):
        _, record = csv_import_preview(
            kind="prices",
            file_name=f"p{i}.csv",
            data=f"sku,price\n{sku},{price}\n".encode(),
            user=None,
        )
        if i % 2 == 0:
            csv_import_apply(import_id=record.pk, user=None)


def reconciliation_rows(channel, n: int) -> None:
    """Reconciliation runs (by a person and by beat) with findings, as a worker leaves them."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from synclog.models import DriftFinding, ReconciliationRun

    user = get_user_model().objects.filter(is_superuser=True).first()
    listings = list(ChannelListing.objects.filter(channel=channel).select_related("variant")[:2])
    for i in range(n):
        now = timezone.now()
        run = ReconciliationRun.objects.create(
            channel=channel,
            trigger="manual" if i % 2 else "scheduled",
            status="finished",
            started_at=now,
            finished_at=now,
            total=2,
            checked=2,
            drifted=2,
            resynced=1,
            fixed=1,
            requested_by=user if i % 2 else None,
        )
        for j, listing in enumerate(listings):
            DriftFinding.objects.create(
                run=run,
                channel=channel,
                listing_id=listing.pk,
                sku=listing.variant.sku,
                field="quantity" if j else "price",
                expected=5,
                found=7,
                difference=2,
                beyond_threshold=not j,
                resync_requested=not j,
                found_at=now,
                resolved_at=now if not j else None,
            )


def health_snapshot_record(channel_id: int) -> None:
    from django.utils import timezone

    from synclog.models import ChannelHealthSnapshot

    ChannelHealthSnapshot.objects.create(
        channel_id=channel_id, taken_at=timezone.now(), state="healthy", pushes=3
    )


def test_every_change_and_add_page_renders_for_the_demo(demo, admin_client):
    runtime_rows()
    for model in our_models():
        info = (model._meta.app_label, model._meta.model_name)
        obj = model.objects.order_by("pk").first()
        assert obj is not None, f"demo has no {model.__name__}"
        response = admin_client.get(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))
        assert response.status_code == 200, model
        model_admin = admin.site._registry[model]
        if model_admin.has_add_permission(response.wsgi_request):
            assert admin_client.get(reverse("admin:{}_{}_add".format(*info))).status_code == 200, (
                model
            )


def test_variant_search_by_sku_and_barcode(demo, admin_client):
    url = reverse("admin:inventory_variant_changelist")
    page = admin_client.get(url, {"q": "DEMO-007-M"}).content.decode()
    assert "DEMO-007-M" in page
    assert "DEMO-008-M" not in page
    from inventory.models import Variant

    barcode = Variant.objects.get(sku="DEMO-003-L").barcode
    assert "DEMO-003-L" in admin_client.get(url, {"q": barcode}).content.decode()


def test_channel_page_never_shows_credentials_in_clear(demo, admin_client):
    channel = Channel.objects.get(slug="shopify")
    page = admin_client.get(
        reverse("admin:channels_app_channel_change", args=[channel.pk])
    ).content.decode()
    assert "shpat_sandbox" not in page
    assert channel.webhook_secret not in page
    assert "access_token" in page  # the key is shown, masked


def test_variant_page_shows_channel_price_and_atp(demo, admin_client):
    from channels_app.selectors import channel_atp, channel_price
    from inventory.models import Variant

    variant = Variant.objects.get(sku="DEMO-001-S")
    page = admin_client.get(
        reverse("admin:inventory_variant_change", args=[variant.pk])
    ).content.decode()
    amazon = Channel.objects.get(slug="amazon")
    assert str(channel_price(channel=amazon, variant=variant)) in page
    assert "Channel ATP" in page
    assert "Adjust stock" in page
    assert f">{channel_atp(channel=amazon, variant=variant)}<" in page
    assert ChannelListing.objects.filter(variant=variant).count() == 5  # one per platform


def test_channel_page_shows_the_access_tokens_expiry(admin_client, time_machine):
    from datetime import UTC, datetime, timedelta

    from channels_app.models import ChannelToken

    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    time_machine.move_to(now, tick=False)
    refreshing = factories.ChannelFactory(
        platform="ebay", credentials={"client_id": "c", "client_secret": "s", "refresh_token": "r"}
    )
    ChannelToken.objects.create(
        channel=refreshing,
        access_token="v^1.1#secret-access-token",
        refreshed_at=now - timedelta(minutes=5),
        expires_at=now + timedelta(minutes=115),
        refresh_count=3,
    )
    static = factories.ChannelFactory(platform="amazon", credentials={"access_token": "Atza|x"})

    def page(channel: Channel) -> str:
        url = reverse("admin:channels_app_channel_change", args=[channel.pk])
        return admin_client.get(url).content.decode()

    shown = page(refreshing)
    assert (
        "Refresh token configured; access token expires 2026-12-01 13:55:00 (in 115 min 0 s)"
        in shown
    )
    assert "refreshed 3 times" in shown
    assert "secret-access-token" not in shown
    assert "Static access token (no refresh token configured)" in page(static)
