"""Stock counts out and in as CSV from the admin: a count sheet export, a
preview of on hand now -> counted, confirm through the cycle-count service
(delta under the lock, ledger row with a key derived from the import), once."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from channels_app.models import SyncKind, SyncMarker
from inventory import services
from inventory.csv_imports import csv_import_apply
from inventory.models import CsvImport, MovementReason, Product, StockLevel, StockMovement, Variant

from .csv_helpers import (
    confirm,
    export_rows,
    import_queries,
    messages_of,
    preview_of,
    row_errors,
    upload,
    url,
)

pytestmark = pytest.mark.django_db


def receive(variant, location, quantity: int, key: str) -> None:
    services.stock_adjust(
        variant=variant,
        location=location,
        quantity=quantity,
        reason="receive",
        source="t",
        idempotency_key=key,
    )


def on_hand(variant, location) -> int:
    return StockLevel.objects.get(variant=variant, location=location).on_hand


@pytest.fixture
def stock(variant_factory, product_factory, location, location2):
    tee = product_factory(title="Tee")
    a = variant_factory(sku="A-1", product=tee)
    b = variant_factory(sku="B-2", product=tee, options={"size": "L"})
    receive(a, location, 10, "seed-a-main")
    receive(a, location2, 4, "seed-a-store")
    receive(b, location, 7, "seed-b-main")
    services.reservation_create(
        variant=b, location=location, quantity=2, source="t", idempotency_key="hold-b"
    )
    return {"A": a, "B": b}


def test_export_is_a_count_sheet_per_sku_and_location(admin_client, stock):
    rows = export_rows(admin_client.get(url("stocklevel", "csv_export")))

    assert rows[0] == [
        "sku",
        "product",
        "options",
        "location",
        "on_hand",
        "committed",
        "reserved",
        "damaged",
        "available",
        "counted",
    ]
    assert sorted(rows[1:]) == [
        ["A-1", "Tee", "M", "main", "10", "0", "0", "0", "10", ""],
        ["A-1", "Tee", "M", "store", "4", "0", "0", "0", "4", ""],
        ["B-2", "Tee", "L", "main", "7", "0", "2", "0", "5", ""],
    ]


def test_export_follows_the_changelist_filter(admin_client, stock, location2):
    rows = export_rows(
        admin_client.get(url("stocklevel", "csv_export"), {"location__id__exact": location2.pk})
    )

    assert [(r[0], r[3]) for r in rows[1:]] == [("A-1", "store")]


def test_stock_level_changelist_shows_import_and_export(admin_client, stock):
    page = admin_client.get(url("stocklevel", "changelist")).content.decode()

    assert "Import stock counts" in page
    assert "Export stock counts" in page


def test_preview_shows_on_hand_now_counted_and_delta(admin_client, stock):
    content = "sku,location,counted\nA-1,main,8\nA-1,store,4\nB-2,MAIN,1\n"

    record, page = preview_of(admin_client, "stocklevel", content)

    preview = page.context["preview"]
    assert [(r.sku, r.location.code, r.on_hand, r.counted, r.delta) for r in preview.rows] == [
        ("A-1", "main", 10, 8, -2),
        ("A-1", "store", 4, 4, 0),
        ("B-2", "main", 7, 1, -6),
    ]
    assert (preview.n_changed, preview.n_unchanged, preview.total_delta) == (2, 1, -8)
    assert preview.rows[2].warnings == [
        "2 unit(s) are committed, reserved or damaged: available becomes -1"
    ]
    html = page.content.decode()
    assert "Counts that change on hand" in html
    assert "Confirm and apply 3 rows" in html
    assert StockMovement.objects.filter(reason=MovementReason.COUNT).count() == 0
    assert record.rows[0] == {
        "row": 2,
        "sku": "A-1",
        "location": "main",
        "counted": 8,
        "on_hand_seen": 10,
        "on_hand_in_file": None,
    }


def test_row_errors_are_listed_and_nothing_is_stored_or_moved(
    admin_client, stock, location, location_factory
):
    location_factory(code="old", name="Old", is_active=False)
    content = (
        "sku,location,counted\n"
        "A-1,main,3\n"
        "NOPE,main,1\n"
        "A-1,attic,1\n"
        "B-2,main,-1\n"
        "B-2,store,2.5\n"
        "A-1,main,4\n"
        "A-1,old,1\n"
        ",main,1\n"
        "B-2,store,many\n"
    )

    response = upload(admin_client, "stocklevel", content)

    assert response.status_code == 200
    assert row_errors(response) == [
        (3, "NOPE", "unknown SKU"),
        (4, "A-1", "unknown location 'attic' (known: main, old, store)"),
        (5, "B-2", "counted '-1' is negative"),
        (6, "B-2", "counted '2.5' is not a whole number"),
        (7, "A-1", "A-1 at main appears twice (first in row 2)"),
        (8, "A-1", "location old is inactive"),
        (9, "", "SKU is empty"),
        (
            10,
            "B-2",
            "B-2 at store appears twice (first in row 6); counted 'many' is not a whole number",
        ),
    ]
    assert "nothing will be applied" in response.content.decode()
    assert CsvImport.objects.count() == 0
    assert StockMovement.objects.filter(reason=MovementReason.COUNT).count() == 0
    assert on_hand(stock["A"], location) == 10


def test_rows_without_a_count_are_skipped_and_an_edited_export_imports(
    admin_client, stock, location
):
    exported = export_rows(admin_client.get(url("stocklevel", "csv_export")))
    lines = [",".join(exported[0])]
    for row in exported[1:]:
        if (row[0], row[3]) == ("A-1", "main"):
            row[-1] = "12"
        lines.append(",".join(row))

    _, page = preview_of(admin_client, "stocklevel", "\n".join(lines) + "\n")

    preview = page.context["preview"]
    assert [(r.sku, r.counted, r.delta) for r in preview.rows] == [("A-1", 12, 2)]
    assert "2 row(s) without a counted quantity were skipped." in preview.notes


def test_confirm_runs_the_cycle_count_service_per_row_and_marks_channels(
    admin_client,
    stock,
    location,
    location2,
    channel_factory,
    channel_location_factory,
    listing_factory,
):
    web, shop = channel_factory(name="Web"), channel_factory(name="Shop")
    channel_location_factory(channel=web, location=location)
    channel_location_factory(channel=shop, location=location2)
    for channel in (web, shop):
        listing_factory(channel=channel, variant=stock["A"])
    content = "sku,location,counted\nA-1,main,8\nB-2,main,7\n"
    record, _ = preview_of(admin_client, "stocklevel", content, "count-2026-11.csv")

    done = confirm(admin_client, "stocklevel", record)

    assert messages_of(done) == [
        "2 count(s) applied from count-2026-11.csv: on hand changed by -2 unit(s) in total. "
        "Each delta was recomputed at apply time from the stock at that moment. "
        "1 channel(s) will be pushed: Web."
    ]
    counts = StockMovement.objects.filter(reason=MovementReason.COUNT).order_by("variant__sku")
    assert [(m.variant.sku, m.location.code, m.delta_on_hand, m.on_hand_after) for m in counts] == [
        ("A-1", "main", -2, 8),
        ("B-2", "main", 0, 7),
    ]
    a_count = counts[0]
    assert a_count.idempotency_key == f"csv-import:{record.pk}:{stock['A'].pk}:{location.pk}"
    assert (a_count.source, a_count.source_ref, a_count.created_by.username) == (
        "admin",
        f"csv-import:{record.pk}",
        "boss",
    )
    assert a_count.note == "Cycle count from count-2026-11.csv, row 2"
    assert on_hand(stock["A"], location) == 8
    assert list(
        SyncMarker.objects.filter(kind=SyncKind.QUANTITY).values_list("channel__name", flat=True)
    ) == ["Web"]
    record.refresh_from_db()
    assert (record.status, record.result["total_delta"], record.result["applied"]) == (
        CsvImport.Status.APPLIED,
        -2,
        2,
    )


def test_stock_that_moved_after_the_preview_is_recounted_at_apply_time(
    admin_client, stock, location
):
    record, _ = preview_of(admin_client, "stocklevel", "sku,location,counted\nA-1,main,8\n")
    receive(stock["A"], location, 5, "late-delivery")  # 10 -> 15 between preview and confirm

    done = confirm(admin_client, "stocklevel", record)

    assert messages_of(done) == [
        "1 count(s) applied from file.csv: on hand changed by -7 unit(s) in total. "
        "Each delta was recomputed at apply time from the stock at that moment "
        "(stock had moved since the preview at 1 row(s)). "
        "No enabled channel lists these variants, so nothing is pushed."
    ]
    assert on_hand(stock["A"], location) == 8


def test_confirming_twice_applies_once(admin_client, stock, location):
    record, _ = preview_of(admin_client, "stocklevel", "sku,location,counted\nA-1,main,8\n")
    confirm(admin_client, "stocklevel", record)
    receive(stock["A"], location, 3, "after-count")  # 8 -> 11, must survive

    again = confirm(admin_client, "stocklevel", record)

    assert "nothing was applied twice" in messages_of(again)[0]
    assert on_hand(stock["A"], location) == 11
    assert StockMovement.objects.filter(reason=MovementReason.COUNT).count() == 1


def test_the_ledger_keys_alone_keep_a_replayed_import_from_applying_twice(
    admin_user, admin_client, stock, location
):
    record, _ = preview_of(admin_client, "stocklevel", "sku,location,counted\nA-1,main,8\n")
    csv_import_apply(import_id=record.pk, user=admin_user)
    receive(stock["A"], location, 3, "after-count")
    # As if the record's state were lost: the deterministic keys still hold.
    CsvImport.objects.filter(pk=record.pk).update(status=CsvImport.Status.PREVIEWED)

    outcome = csv_import_apply(import_id=record.pk, user=admin_user)

    assert outcome.status == "applied"
    assert "1 row(s) had already been applied and were not applied again." in outcome.message
    assert on_hand(stock["A"], location) == 11
    assert StockMovement.objects.filter(reason=MovementReason.COUNT).count() == 1


def test_a_location_deactivated_after_the_preview_refuses_the_whole_import(
    admin_client, stock, location, location2
):
    content = "sku,location,counted\nA-1,main,1\nA-1,store,1\n"
    record, _ = preview_of(admin_client, "stocklevel", content)
    location2.is_active = False
    location2.save()

    response = confirm(admin_client, "stocklevel", record)

    assert row_errors(response) == [(3, "A-1", "location store is inactive")]
    assert on_hand(stock["A"], location) == 10
    assert StockMovement.objects.filter(reason=MovementReason.COUNT).count() == 0


def test_only_users_who_may_change_stock_levels_may_import(client, django_user_model, stock):
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_stocklevel"))
    client.force_login(viewer)

    assert upload(client, "stocklevel", "sku,location,counted\nA-1,main,1\n").status_code == 403
    assert client.get(url("stocklevel", "csv_import")).status_code == 403
    assert client.get(url("stocklevel", "csv_export")).status_code == 200
    assert "Import stock counts" not in client.get(url("stocklevel", "changelist")).content.decode()

    counter = django_user_model.objects.create_user("counter", password="pw", is_staff=True)
    counter.user_permissions.add(
        Permission.objects.get(codename="view_stocklevel"),
        Permission.objects.get(codename="change_stocklevel"),
    )
    client.force_login(counter)
    record, _ = preview_of(client, "stocklevel", "sku,location,counted\nA-1,main,1\n")
    client.force_login(viewer)
    assert client.post(url("stocklevel", "csv_preview", record.pk)).status_code == 403
    client.force_login(counter)
    assert confirm(client, "stocklevel", record).status_code == 200
    assert StockMovement.objects.get(reason=MovementReason.COUNT).created_by == counter


def test_a_price_import_is_not_reachable_through_the_stock_pages(admin_client, stock):
    record, _ = preview_of(admin_client, "variant", "sku,price\nA-1,1.00\n")

    assert admin_client.get(url("stocklevel", "csv_preview", record.pk)).status_code == 404


def test_preview_queries_do_not_grow_with_the_row_count(admin_client, location, location2):
    def count_file(prefix: str, n: int) -> str:
        product = Product.objects.create(title=prefix, handle=prefix.lower())
        Variant.objects.bulk_create(
            [Variant(product=product, sku=f"{prefix}-{i}", price=1) for i in range(n)]
        )
        return "sku,location,counted\n" + "".join(
            f"{prefix}-{i},{loc},{i}\n" for i in range(n) for loc in ("main", "store")
        )

    small, large = count_file("S", 5), count_file("L", 150)

    assert import_queries(admin_client, "stocklevel", small) == (
        import_queries(admin_client, "stocklevel", large)
    )


def test_count_files_are_capped_by_rows_that_carry_a_count(admin_client, stock, settings):
    settings.PIMSYNC_CSV_IMPORT_MAX_COUNT_ROWS = 2
    sheet = "sku,location,counted\nA-1,main,1\nA-1,store,\nB-2,main,\n"
    assert upload(admin_client, "stocklevel", sheet).status_code == 302

    too_many = upload(admin_client, "stocklevel", "sku,location,counted\n" + "A-1,main,1\n" * 3)

    assert too_many.context["form"].errors["file"] == [
        "The file has 3 rows to import; at most 2 stock counts are imported at once. "
        "Split it into smaller files."
    ]


def test_a_count_sheet_with_nothing_counted_says_so(admin_client, stock):
    exported = b"".join(admin_client.get(url("stocklevel", "csv_export")).streaming_content)

    response = upload(admin_client, "stocklevel", exported)

    assert response.context["form"].errors["file"] == [
        "No row has a counted quantity: fill in the counted column."
    ]
