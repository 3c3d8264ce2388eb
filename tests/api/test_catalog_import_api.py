"""Catalog imports over the API (start, follow, items, resume) against the sandbox,
and POST /api/v1/bulk/listings/: all or nothing, one transaction, one push per channel."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test.utils import override_settings

from channels_app import dispatch
from channels_app.models import CatalogImport, ChannelListing, SyncMarker
from channels_app.onboarding.importer import catalog_import_run
from inventory.models import Variant
from tests import factories
from tests.support.catalog import sandbox_channel

pytestmark = pytest.mark.django_db

BULK = "/api/v1/bulk/listings/"


@pytest.fixture
def merchandiser_api(client_for):
    return client_for("merchandiser")


@pytest.fixture
def shop(sandbox, catalog):
    for variant in catalog["variants"]:
        variant.options = {"size": variant.sku.rsplit("-", 1)[1]}
        variant.save()
    sandbox.platform("shopify").seed(
        [
            {"sku": "TEE-S", "price": "20.00", "quantity": 1},
            {"sku": "WEB-TEE-M", "price": "21.00", "quantity": 2, "product_title": "Tee M"},
            {"sku": "KITE", "price": "99.00", "quantity": 1, "product_title": "Kite"},
        ]
    )
    return sandbox_channel(sandbox, "shopify", slug="shopify-api")


def test_an_import_is_started_followed_and_its_items_read(
    shop, merchandiser_api, task_sends, django_capture_on_commit_callbacks
) -> None:
    url = f"/api/v1/channels/{shop.pk}/catalog-import/"
    assert merchandiser_api.get(url).status_code == 404  # none yet

    with django_capture_on_commit_callbacks(execute=True):
        started = merchandiser_api.post(url)
    busy = merchandiser_api.post(url)
    run_id = started.json()["id"]
    catalog_import_run(run_id)
    followed = merchandiser_api.get(f"/api/v1/catalog-imports/{run_id}/").json()
    latest = merchandiser_api.get(url).json()
    proposed = merchandiser_api.get(
        f"/api/v1/catalog-imports/{run_id}/items/", {"status": "proposed"}
    ).json()

    assert started.status_code == 202
    assert (started.json()["status"], started.json()["channel_slug"]) == ("running", "shopify-api")
    assert task_sends.args_of(dispatch.CATALOG_IMPORT) == [[run_id]]
    assert (busy.status_code, busy.json()["error"]["code"]) == (409, "import_busy")
    assert (followed["status"], followed["items_read"], followed["counts"]) == (
        "finished",
        3,
        {"matched": 1, "proposed": 1, "unmatched": 1},
    )
    assert latest["id"] == run_id
    assert [(i["sku"], i["variant_sku"], i["match"]) for i in proposed["results"]] == [
        ("WEB-TEE-M", "TEE-M", "title")
    ]


def test_only_a_stopped_import_resumes(shop, merchandiser_api) -> None:
    run = CatalogImport.objects.create(channel=shop, status="failed", started_at=shop.created_at)

    resumed = merchandiser_api.post(f"/api/v1/catalog-imports/{run.pk}/resume/")
    again = merchandiser_api.post(f"/api/v1/catalog-imports/{run.pk}/resume/")

    assert (resumed.status_code, resumed.json()["status"]) == (202, "running")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_stopped")


# --- bulk listings -------------------------------------------------------------------------------


def test_bulk_listings_are_saved_and_each_channel_pushed_once(
    catalog, merchandiser_api, task_sends, django_capture_on_commit_callbacks
) -> None:
    ebay = factories.ChannelFactory(slug="ebay", platform="ebay")
    rows = [
        {"sku": "TEE-S", "channel": "shop", "external_variant_id": "gid://1"},  # update
        {"sku": "TEE-M", "channel": "shop"},  # unchanged
        {"sku": "TEE-S", "channel": "ebay", "listing_sku": "E-S", "offer_id": "9"},
        {"sku": "TEE-M", "channel": "ebay", "offer_id": "10", "price_override": "30.00"},
    ]

    with django_capture_on_commit_callbacks(execute=True):
        response = merchandiser_api.post(BULK, {"listings": rows}, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "rows": 4,
        "created": 2,
        "updated": 1,
        "unchanged": 1,
        "channels_pushed": 2,
    }
    assert sorted(task_sends.args_of(dispatch.PUSH)) == sorted([[catalog["channel"].pk], [ebay.pk]])
    assert ChannelListing.objects.get(channel=ebay, variant__sku="TEE-M").price_override == (
        Decimal("30.00")
    )


def test_ten_thousand_listings_on_four_channels_in_one_request(
    catalog, merchandiser_api, task_sends, django_capture_on_commit_callbacks
) -> None:
    """The documented maximum on the embedded database: 2,500 variants linked on four
    channels in one request instead of 10,000 single POSTs."""
    variants = Variant.objects.bulk_create(
        Variant(product=catalog["product"], sku=f"LINK{i:05d}", price=Decimal("1.00"))
        for i in range(2_500)
    )
    channels = [factories.ChannelFactory(slug=f"ch{n}") for n in range(4)]
    rows = [
        {"sku": v.sku, "channel": c.slug, "external_variant_id": f"{c.slug}-{i}"}
        for c in channels
        for i, v in enumerate(variants)
    ]

    with django_capture_on_commit_callbacks(execute=True):
        response = merchandiser_api.post(BULK, {"listings": rows}, format="json")

    assert response.status_code == 200, response.content[:500]
    assert response.json() == {
        "rows": 10_000,
        "created": 10_000,
        "updated": 0,
        "unchanged": 0,
        "channels_pushed": 4,
    }
    assert ChannelListing.objects.filter(variant__sku__startswith="LINK").count() == 10_000
    assert ChannelListing.objects.get(
        channel=channels[2], variant=variants[7]
    ).external_variant_id == ("ch2-7")
    assert sorted(task_sends.args_of(dispatch.PUSH)) == sorted([[c.pk] for c in channels])


@pytest.mark.parametrize(
    ("bad_row", "field"),
    [
        ({"sku": "NOPE", "channel": "shop"}, "sku"),
        ({"sku": "TEE-S", "channel": "nowhere"}, "channel"),
        ({"sku": "TEE-S", "channel": "shop", "price_override": "-1"}, "price_override"),
        ({"sku": "TEE-S", "channel": "shop", "offer_id": "x" * 121}, "offer_id"),
    ],
)
def test_one_bad_row_changes_nothing(catalog, merchandiser_api, bad_row, field) -> None:
    before = list(ChannelListing.objects.values_list("pk", "external_variant_id"))
    markers = list(SyncMarker.objects.values_list("pk", "change_token"))
    rows = [{"sku": "TEE-L", "channel": "shop", "external_variant_id": "new"}, bad_row]

    response = merchandiser_api.post(BULK, {"listings": rows}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_rows"
    assert [r["row"] for r in error["details"]["rows"]] == [1]
    assert field in error["details"]["rows"][0]["errors"]
    assert list(ChannelListing.objects.values_list("pk", "external_variant_id")) == before
    assert list(SyncMarker.objects.values_list("pk", "change_token")) == markers


def test_the_same_sku_twice_on_a_channel_is_refused(catalog, merchandiser_api) -> None:
    rows = [{"sku": "TEE-L", "channel": "shop"}, {"sku": "TEE-L", "channel": "shop"}]

    response = merchandiser_api.post(BULK, {"listings": rows}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"]["rows"] == [
        {"row": 1, "errors": ["the same SKU on the same channel is also in row 0"]}
    ]


@override_settings(PIMSYNC_API_BULK_MAX_ROWS=2)
def test_more_rows_than_allowed_are_refused(catalog, merchandiser_api) -> None:
    rows = [{"sku": f"TEE-{s}", "channel": "shop"} for s in ("S", "M", "L")]

    response = merchandiser_api.post(BULK, {"listings": rows}, format="json")

    assert response.status_code == 400
    assert "At most 2 rows" in response.json()["error"]["message"]


def test_a_repeated_request_with_its_key_is_answered_again(catalog, merchandiser_api) -> None:
    rows = [{"sku": "TEE-S", "channel": "shop", "external_variant_id": "v1"}]
    key = {"HTTP_IDEMPOTENCY_KEY": "listings-1"}

    first = merchandiser_api.post(BULK, {"listings": rows}, format="json", **key)
    replay = merchandiser_api.post(BULK, {"listings": rows}, format="json", **key)

    assert (
        first.json()
        == replay.json()
        == {
            "rows": 1,
            "created": 0,
            "updated": 1,
            "unchanged": 0,
            "channels_pushed": 1,
        }
    )
    assert replay["Idempotent-Replayed"] == "true"


def test_an_id_that_is_not_a_number_is_not_found(merchandiser_api) -> None:
    response = merchandiser_api.get("/api/v1/catalog-imports/null/items/")

    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")
