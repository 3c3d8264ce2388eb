"""Bulk prices and stock movements: all or nothing, one transaction, one push per channel."""

from __future__ import annotations

from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from channels_app import dispatch
from channels_app.models import SyncMarker
from inventory.models import StockLevel, StockMovement, Variant
from tests import factories

pytestmark = pytest.mark.django_db

PRICES = "/api/v1/bulk/prices/"
MOVEMENTS = "/api/v1/bulk/stock-movements/"


def _snapshot():
    return (
        list(Variant.objects.order_by("pk").values_list("sku", "price")),
        list(StockLevel.objects.order_by("pk").values_list("on_hand", "damaged")),
        StockMovement.objects.count(),
        SyncMarker.objects.count(),
    )


@pytest.fixture
def merchandiser_api(client_for):
    return client_for("merchandiser")


def test_bulk_prices_apply_and_mark_every_listing(catalog, merchandiser_api):
    rows = [{"sku": f"TEE-{s}", "price": "24.50"} for s in ("S", "M", "L")]
    response = merchandiser_api.post(PRICES, {"prices": rows}, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {"rows": 3, "changed": 3}
    assert set(Variant.objects.values_list("price", flat=True)) == {Decimal("24.50")}
    assert SyncMarker.objects.filter(kind="price").count() == 3


@pytest.mark.parametrize(
    ("bad_row", "field"),
    [
        ({"sku": "NOPE", "price": "1.00"}, "sku"),
        ({"sku": "TEE-L", "price": "-1"}, "price"),
        ({"sku": "TEE-L", "price": "1.001"}, "price"),
        ({"sku": "TEE-S", "price": "3.00"}, "sku"),  # the same SKU twice
        ({"price": "3.00"}, "sku"),
    ],
)
def test_one_bad_price_row_rejects_the_request_and_changes_nothing(
    catalog, merchandiser_api, bad_row, field
):
    before = _snapshot()
    rows = [{"sku": "TEE-S", "price": "30.00"}, {"sku": "TEE-M", "price": "31.00"}, bad_row]
    response = merchandiser_api.post(PRICES, {"prices": rows}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_rows"
    assert [(r["row"], list(r["errors"])) for r in error["details"]["rows"]] == [(2, [field])]
    assert _snapshot() == before


@override_settings(PIMSYNC_API_BULK_MAX_ROWS=5)
def test_too_many_rows_are_refused_before_validation(catalog, merchandiser_api):
    rows = [{"sku": "TEE-S", "price": "1.00"}] * 6
    response = merchandiser_api.post(PRICES, {"prices": rows}, format="json")
    assert response.status_code == 400
    assert "At most 5 rows" in response.json()["error"]["message"]


def _mv(sku, location="main", reason="receive", quantity=1, **extra):
    return {"sku": sku, "location": location, "reason": reason, "quantity": quantity, **extra}


def test_bulk_movements_write_one_ledger_row_each_in_order(catalog, integrator_api):
    rows = [
        _mv("TEE-S", quantity=5),
        _mv("TEE-S", reason="sale", quantity=-15),  # sees the 5 received just before
        _mv("TEE-M", location="store", quantity=2),
        _mv("TEE-L", reason="damage", quantity=1, idempotency_key="dmg-1"),
    ]
    response = integrator_api.post(
        MOVEMENTS, {"movements": rows}, format="json", HTTP_IDEMPOTENCY_KEY="batch-1"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["applied"], body["already_applied"]) == (4, 0)
    movements = {m.pk: m for m in StockMovement.objects.filter(source="api")}
    ordered = [movements[r["id"]] for r in body["movements"]]
    user_id = ordered[0].created_by_id
    assert [m.idempotency_key for m in ordered] == [
        f"api:{user_id}:batch-1:0",
        f"api:{user_id}:batch-1:1",
        f"api:{user_id}:batch-1:2",
        f"api:{user_id}:dmg-1",
    ]
    assert [(m.on_hand_after, m.available_after) for m in ordered] == [
        (15, 15),
        (0, 0),
        (2, 2),
        (10, 9),
    ]
    levels = {
        (lvl.variant.sku, lvl.location.code): (lvl.on_hand, lvl.damaged)
        for lvl in StockLevel.objects.select_related("variant", "location")
    }
    assert levels == {
        ("TEE-S", "main"): (0, 0),
        ("TEE-M", "main"): (10, 0),
        ("TEE-L", "main"): (10, 1),
        ("TEE-M", "store"): (2, 0),
    }
    # Every StockLevel is still the sum of its ledger rows.
    for level in StockLevel.objects.all():
        ledger = StockMovement.objects.filter(variant=level.variant, location=level.location)
        assert sum(m.delta_on_hand for m in ledger) == level.on_hand
        assert sum(m.delta_damaged for m in ledger) == level.damaged


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        (_mv("NOPE"), "Unknown SKU"),
        (_mv("TEE-M", location="nowhere"), "Unknown location"),
        (_mv("TEE-M", reason="sale", quantity=-12), "Not enough stock"),
        (_mv("TEE-M", reason="sale", quantity=3), "below 0"),
        (_mv("TEE-M", reason="adjust", quantity=-12), "cannot be negative"),
        (_mv("TEE-M", quantity=0), "0 changes nothing"),
        (_mv("TEE-M", quantity=2, idempotency_key="used"), "different stock change"),
        (_mv("TEE-M", reason="ship"), "valid choice"),
    ],
)
def test_one_bad_movement_rejects_the_request_and_changes_nothing(
    catalog, integrator_api, bad_row, message
):
    from pimsync.models import ApiIdempotencyKey

    used = _mv("TEE-M", quantity=1, idempotency_key="used")
    integrator_api.post(MOVEMENTS, {"movements": [used]}, format="json", HTTP_IDEMPOTENCY_KEY="u")
    ApiIdempotencyKey.objects.all().delete()
    before = _snapshot()
    rows = [_mv("TEE-S", quantity=3), _mv("TEE-L", reason="sale", quantity=-2), bad_row]
    response = integrator_api.post(
        MOVEMENTS, {"movements": rows}, format="json", HTTP_IDEMPOTENCY_KEY="b"
    )

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_rows"
    [row] = error["details"]["rows"]
    assert row["row"] == 2
    assert message in str(row["errors"])
    assert _snapshot() == before
    assert not ApiIdempotencyKey.objects.exists()


def test_a_row_key_applied_before_is_reported_not_reapplied(catalog, integrator_api):
    row = _mv("TEE-S", quantity=2, idempotency_key="grn-77")
    integrator_api.post(MOVEMENTS, {"movements": [row]}, format="json", HTTP_IDEMPOTENCY_KEY="a")
    response = integrator_api.post(
        MOVEMENTS,
        {"movements": [row, _mv("TEE-M", quantity=1)]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="b",
    )
    assert response.status_code == 201
    assert (response.json()["applied"], response.json()["already_applied"]) == (1, 1)
    assert StockLevel.objects.get(variant__sku="TEE-S", location__code="main").on_hand == 12


def _push_requests(client, path, body, **headers) -> list[int]:
    """The channel ids a push task was sent for once the request's transaction committed."""
    with (
        mock.patch("celery.current_app.send_task") as send,
        CaptureOnCommit() as hooks,
    ):
        response = client.post(path, body, format="json", **headers)
        assert response.status_code in (200, 201), response.content
        for hook in hooks.callbacks:
            hook()
    return sorted(
        call.kwargs["args"][0] for call in send.call_args_list if call.args[0] == dispatch.PUSH
    )


class CaptureOnCommit:
    """Collect on_commit callbacks of the request (the test transaction never commits)."""

    def __enter__(self):
        from django.db import connection as conn

        self._start = len(conn.run_on_commit)
        self._conn = conn
        return self

    def __exit__(self, *exc):
        return False

    @property
    def callbacks(self):
        return [cb for _, cb, _ in self._conn.run_on_commit[self._start :]]


@pytest.fixture
def many_channels(catalog):
    """Three more channels listing 40 more variants each (four channels in all)."""
    extra = [factories.VariantFactory(product=catalog["product"]) for _ in range(40)]
    channels = [catalog["channel"]]
    for n in range(3):
        channel = factories.ChannelFactory(slug=f"more-{n}")
        factories.ChannelLocationFactory(channel=channel, location=catalog["main"])
        channels.append(channel)
    for channel in channels:
        for v in extra:
            factories.ChannelListingFactory(channel=channel, variant=v)
    return {"variants": extra, "channels": channels}


def test_bulk_prices_ask_for_one_push_per_channel(many_channels, client_for):
    rows = [{"sku": v.sku, "price": "11.00"} for v in many_channels["variants"]]
    pushed = _push_requests(client_for("merchandiser"), PRICES, {"prices": rows})
    assert pushed == sorted(c.pk for c in many_channels["channels"])
    marked = SyncMarker.objects.filter(listing__variant__in=many_channels["variants"])
    assert marked.filter(kind="price").count() == 40 * 4


def test_bulk_movements_ask_for_one_push_per_channel(many_channels, client_for):
    rows = [_mv(v.sku, quantity=3) for v in many_channels["variants"]]
    pushed = _push_requests(
        client_for("integrator"), MOVEMENTS, {"movements": rows}, HTTP_IDEMPOTENCY_KEY="m"
    )
    assert pushed == sorted(c.pk for c in many_channels["channels"])
    marked = SyncMarker.objects.filter(listing__variant__in=many_channels["variants"])
    assert marked.filter(kind="quantity").count() == 40 * 4


def _queries_for(client, path, body, **headers) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.post(path, body, format="json", **headers)
    assert response.status_code in (200, 201), response.content
    return len(ctx)


def test_bulk_queries_do_not_grow_with_the_rows(catalog, client_for):
    variants = [factories.VariantFactory(product=catalog["product"]) for _ in range(120)]
    for v in variants:
        factories.ChannelListingFactory(channel=catalog["channel"], variant=v)
    merch, integ = client_for("merchandiser"), client_for("integrator")

    def prices(vs, price):
        return {"prices": [{"sku": v.sku, "price": price} for v in vs]}

    def moves(vs):
        return {"movements": [_mv(v.sku, quantity=2) for v in vs]}

    # 11× the rows: the same statements, at most split into a couple more batches (SQLite
    # allows 999 parameters per statement).
    small = _queries_for(merch, PRICES, prices(variants[:10], "5.00"))
    large = _queries_for(merch, PRICES, prices(variants[10:120], "6.00"))
    assert small <= large <= small + 2
    small = _queries_for(integ, MOVEMENTS, moves(variants[:10]), HTTP_IDEMPOTENCY_KEY="s")
    large = _queries_for(integ, MOVEMENTS, moves(variants[10:120]), HTTP_IDEMPOTENCY_KEY="l")
    assert small <= large <= small + 3


def test_ten_thousand_prices_on_four_channels_in_one_request(catalog, client_for):
    """The documented maximum on the embedded database (SQLite's parameter limits)."""
    from channels_app.models import ChannelListing

    variants = Variant.objects.bulk_create(
        Variant(product=catalog["product"], sku=f"BULK{i:05d}", price=Decimal("1.00"))
        for i in range(10_000)
    )
    channels = [catalog["channel"], *(factories.ChannelFactory() for _ in range(3))]
    ChannelListing.objects.bulk_create(
        (ChannelListing(channel=c, variant=v) for c in channels for v in variants),
        batch_size=2000,
    )
    rows = [{"sku": v.sku, "price": f"{2 + i % 90}.50"} for i, v in enumerate(variants)]
    response = client_for("merchandiser").post(PRICES, {"prices": rows}, format="json")

    assert response.status_code == 200, response.content[:500]
    assert response.json() == {"rows": 10_000, "changed": 10_000}
    assert Variant.objects.get(sku="BULK00091").price == Decimal("3.50")
    marked = SyncMarker.objects.filter(kind="price", listing__variant__sku__startswith="BULK")
    assert marked.count() == 40_000
