"""Variant prices out and in as CSV from the admin: export, preview with row
errors, all-or-nothing confirm through the price service, once."""

from __future__ import annotations

import csv
import io
import time
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from channels_app.models import SyncKind, SyncMarker
from inventory import events
from inventory.models import CsvImport, Product, Variant

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


@pytest.fixture
def catalog(variant_factory, product_factory):
    tee = product_factory(title="Tee")
    return {
        "A": variant_factory(
            sku="A-1", product=tee, price=Decimal("20.00"), compare_at_price=Decimal("25.00")
        ),
        "B": variant_factory(sku="B-2", product=tee, price=Decimal("10.00"), options={"size": "L"}),
        "C": variant_factory(sku="C-3", price=Decimal("5.50"), map_price=Decimal("5.00")),
    }


def test_export_lists_every_price_column_of_the_selected_variants(admin_client, catalog):
    rows = export_rows(admin_client.get(url("variant", "csv_export")))

    assert rows[0] == [
        "sku",
        "product",
        "options",
        "barcode",
        "price",
        "compare_at_price",
        "map_price",
    ]
    assert sorted(rows[1:]) == [
        ["A-1", "Tee", "M", "", "20.00", "25.00", ""],
        ["B-2", "Tee", "L", "", "10.00", "", ""],
        ["C-3", catalog["C"].product.title, "M", "", "5.50", "", "5.00"],
    ]
    searched = export_rows(admin_client.get(url("variant", "csv_export"), {"q": "B-2"}))
    assert [r[0] for r in searched[1:]] == ["B-2"]


def test_changelist_shows_import_and_export_buttons(admin_client, catalog):
    page = admin_client.get(url("variant", "changelist")).content.decode()

    assert url("variant", "csv_import") in page
    assert url("variant", "csv_export") in page


def test_preview_shows_old_and_new_values_and_a_summary_without_changing_anything(
    admin_client, catalog
):
    content = "sku,price,compare_at_price\nA-1,21.50,25.00\nB-2,10,\nC-3,5.50,7\n"

    record, page = preview_of(admin_client, "variant", content, "prices.csv")

    preview = page.context["preview"]
    assert (preview.n_total, preview.n_changed, preview.n_unchanged, len(preview.errors)) == (
        3,
        2,
        1,
        0,
    )
    assert preview.field_changes == {"price": 1, "compare-at price": 1}
    html = page.content.decode()
    assert "20.00 → <strong>21.50</strong>" in html
    assert "— → <strong>7.00</strong>" in html
    assert "Confirm and apply 3 rows" in html
    assert record.status == CsvImport.Status.PREVIEWED
    assert record.rows[0] == {
        "row": 2,
        "sku": "A-1",
        "values": {"price": "21.50", "compare_at_price": "25.00"},
    }
    assert sorted(Variant.objects.values_list("price", flat=True)) == [
        Decimal("5.50"),
        Decimal("10.00"),
        Decimal("20.00"),
    ]


def test_row_errors_are_listed_with_their_row_numbers_and_nothing_is_stored(admin_client, catalog):
    content = (
        "sku,price\nA-1,21.00\nNOPE-9,3.00\nB-2,abc\nC-3,-1\nA-1,22.00\n,4.00\nB-2,1.234\nC-3,\n"
    )

    response = upload(admin_client, "variant", content)

    assert response.status_code == 200
    assert row_errors(response) == [
        (3, "NOPE-9", "unknown SKU"),
        (4, "B-2", "price 'abc' is not a number (write e.g. 12.50)"),
        (5, "C-3", "price '-1' is negative"),
        (6, "A-1", "SKU appears twice (first in row 2)"),
        (7, "", "SKU is empty"),
        (8, "B-2", "SKU appears twice (first in row 4)"),
        (9, "C-3", "SKU appears twice (first in row 5)"),
    ]
    html = response.content.decode()
    assert "7 rows cannot be imported, so nothing will be applied" in html
    assert "Confirm and apply" not in html
    assert CsvImport.objects.count() == 0
    assert Variant.objects.get(sku="A-1").price == Decimal("20.00")


def test_price_value_errors_name_the_problem(admin_client, catalog):
    content = "sku;price;map_price\nA-1;1.234;\nB-2;;\nC-3;1e3;x\n"

    response = upload(admin_client, "variant", content)

    assert row_errors(response) == [
        (
            2,
            "A-1",
            "price '1.234' has more than 2 decimal places (no thousands separators, please)",
        ),
        (3, "B-2", "price is empty"),
        (
            4,
            "C-3",
            "price '1e3' is not a number (write e.g. 12.50); "
            "MAP price 'x' is not a number (write e.g. 12.50)",
        ),
    ]


def test_excel_utf8_bom_semicolons_and_decimal_commas_are_read(admin_client, catalog):
    content = "\ufeffSKU;Price;Compare at price\r\nA-1;19,99;\r\n;;\r\n".encode()

    record, page = preview_of(admin_client, "variant", content)

    row = page.context["preview"].rows[0]
    assert (row.new, row.old) == (
        {"price": Decimal("19.99"), "compare_at_price": None},
        {"price": Decimal("20.00"), "compare_at_price": Decimal("25.00")},
    )
    assert "Read as UTF-8 (with BOM), semicolon-separated." in page.context["preview"].notes
    assert (record.encoding, record.delimiter, record.row_count) == (
        "UTF-8 (with BOM)",
        "semicolon",
        1,
    )


def test_a_windows_code_page_file_is_read(admin_client, catalog):
    content = "sku,product,price\nA-1,Café tee,20.00\n".encode("cp1252")

    _, page = preview_of(admin_client, "variant", content)

    assert page.context["preview"].notes[0] == "Read as Windows-1252, comma-separated."


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"PK\x03\x04binary", "This file is an Excel workbook (.xlsx), not CSV."),
        (b"", "The submitted file is empty."),
        (b"\n\n", "The file is empty."),
        (b"sku,cost\nA-1,3\n", "The file needs the column(s) price; its header has: sku, cost."),
        (b"sku,price\n", "The file has no rows to import."),
        (b"sku,price,sku\nA-1,2,A-1\n", "The header names these columns twice: sku."),
    ],
)
def test_unreadable_files_are_refused_with_a_reason(admin_client, catalog, content, message):
    response = upload(admin_client, "variant", content)

    assert response.status_code == 200
    assert any(e.startswith(message) for e in response.context["form"].errors["file"])
    assert CsvImport.objects.count() == 0


def test_size_and_row_limits(admin_client, catalog, settings):
    settings.PIMSYNC_CSV_IMPORT_MAX_BYTES = 100
    big = upload(admin_client, "variant", "sku,price\n" + "A-1,1\n" * 30)
    assert big.context["form"].errors["file"] == [
        "The file is 190\xa0bytes; at most 100\xa0bytes can be imported at once. "
        "Split it into smaller files."
    ]
    settings.PIMSYNC_CSV_IMPORT_MAX_BYTES = 10_000
    settings.PIMSYNC_CSV_IMPORT_MAX_ROWS = 2
    many = upload(admin_client, "variant", "sku,price\nA-1,1\nB-2,1\nC-3,1\n")
    assert many.context["form"].errors["file"] == [
        "The file has 3 rows; at most 2 are imported at once. Split it into smaller files."
    ]


def test_confirm_applies_through_the_price_service_and_marks_every_listing(
    admin_client, catalog, listing_factory, channel_factory
):
    shop, ebay, off = (
        channel_factory(name="Shop"),
        channel_factory(name="Ebay"),
        channel_factory(name="Off", is_enabled=False),
    )
    for channel in (shop, ebay, off):
        listing_factory(channel=channel, variant=catalog["A"])
    listing_factory(channel=shop, variant=catalog["B"])
    record, _ = preview_of(admin_client, "variant", "sku,price\nA-1,21.50\nB-2,10.00\n")
    seen = []
    events.price_changed.connect(
        handler := lambda sender, variant_ids, **kw: seen.append(variant_ids)
    )
    try:
        done = confirm(admin_client, "variant", record)
    finally:
        events.price_changed.disconnect(handler)

    assert messages_of(done) == [
        "Prices changed for 1 variant(s) from file.csv; 1 row(s) already had these prices "
        "(checked again when applying). 2 channel(s) will be pushed: Ebay, Shop."
    ]
    assert seen == [frozenset({catalog["A"].pk})]
    assert Variant.objects.get(sku="A-1").price == Decimal("21.50")
    markers = SyncMarker.objects.filter(kind=SyncKind.PRICE)
    assert sorted(markers.values_list("channel__name", "listing__variant__sku")) == [
        ("Ebay", "A-1"),
        ("Shop", "A-1"),
    ]
    record.refresh_from_db()
    assert (record.status, record.applied_by.username) == (CsvImport.Status.APPLIED, "boss")
    assert record.result | {"columns": None, "notes": None} == {
        "rows": 2,
        "changed": 1,
        "unchanged": 1,
        "columns": None,
        "notes": None,
    }


def test_an_empty_compare_at_cell_clears_it(admin_client, catalog):
    record, _ = preview_of(admin_client, "variant", "sku,price,compare_at_price\nA-1,20.00,\n")

    confirm(admin_client, "variant", record)

    assert Variant.objects.get(sku="A-1").compare_at_price is None


def test_a_second_confirm_applies_nothing_twice(admin_client, catalog):
    record, _ = preview_of(admin_client, "variant", "sku,price\nA-1,21.50\n")
    confirm(admin_client, "variant", record)
    Variant.objects.filter(sku="A-1").update(price=Decimal("30.00"))  # edited since

    again = confirm(admin_client, "variant", record)

    assert messages_of(again)[0].startswith("This import was already applied on ")
    assert "nothing was applied twice" in messages_of(again)[0]
    assert Variant.objects.get(sku="A-1").price == Decimal("30.00")
    result_page = admin_client.get(url("variant", "csv_preview", record.pk)).content.decode()
    assert "Applied on " in result_page
    assert "Prices changed for 1 variant(s) from file.csv" in result_page
    assert "Confirm and apply" not in result_page


def test_confirm_checks_again_and_applies_nothing_when_a_row_no_longer_passes(
    admin_client, catalog
):
    record, _ = preview_of(admin_client, "variant", "sku,price\nA-1,21.50\nB-2,11.00\n")
    Variant.objects.filter(sku="B-2").update(sku="B-2-RENAMED")

    response = confirm(admin_client, "variant", record)

    assert response.status_code == 200
    assert messages_of(response) == [
        "1 row(s) no longer pass the checks (the catalog changed since the preview); "
        "nothing was applied."
    ]
    assert row_errors(response) == [(3, "B-2", "unknown SKU")]
    assert Variant.objects.get(sku="A-1").price == Decimal("20.00")
    record.refresh_from_db()
    assert record.status == CsvImport.Status.PREVIEWED


def test_an_expired_preview_cannot_be_confirmed(admin_client, catalog, settings):
    record, _ = preview_of(admin_client, "variant", "sku,price\nA-1,21.50\n")
    settings.PIMSYNC_CSV_IMPORT_PREVIEW_HOURS = 0

    response = confirm(admin_client, "variant", record)

    assert messages_of(response) == ["This preview has expired; upload the file again."]
    assert Variant.objects.get(sku="A-1").price == Decimal("20.00")


def test_the_same_file_applied_before_is_pointed_out(admin_client, catalog):
    content = "sku,price\nA-1,21.50\n"
    record, _ = preview_of(admin_client, "variant", content)
    confirm(admin_client, "variant", record)

    _, page = preview_of(admin_client, "variant", content)

    assert any(
        n.startswith("This exact file was already applied on ")
        for n in page.context["preview"].notes
    )


def test_warnings_flag_map_compare_at_and_big_changes(admin_client, catalog):
    content = "sku,price,compare_at_price\nA-1,9.00,8.00\nC-3,4.00,\n"

    _, page = preview_of(admin_client, "variant", content)

    assert [r.warnings for r in page.context["preview"].rows] == [
        ["compare-at price is not above the price", "price changes by -55%"],
        ["below the MAP price 5.00: channels are sent 5.00"],
    ]


def test_only_users_who_may_change_variants_may_import(client, django_user_model, catalog):
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_variant"))
    client.force_login(viewer)

    assert upload(client, "variant", "sku,price\nA-1,1\n").status_code == 403
    assert client.get(url("variant", "csv_import")).status_code == 403
    assert client.get(url("variant", "csv_export")).status_code == 200
    page = client.get(url("variant", "changelist")).content.decode()
    assert url("variant", "csv_import") not in page

    editor = django_user_model.objects.create_user("editor", password="pw", is_staff=True)
    editor.user_permissions.add(Permission.objects.get(codename="change_variant"))
    client.force_login(editor)
    stored, _ = preview_of(client, "variant", "sku,price\nA-1,1\n")
    client.force_login(viewer)
    assert client.post(url("variant", "csv_preview", stored.pk)).status_code == 403
    assert client.get(url("variant", "csv_preview", stored.pk)).status_code == 403
    assert Variant.objects.get(sku="A-1").price == Decimal("20.00")


def _catalog_of(n: int, prefix: str) -> list[Variant]:
    product = Product.objects.create(title=f"Bulk {prefix}", handle=f"bulk-{prefix.lower()}")
    Variant.objects.bulk_create(
        [
            Variant(product=product, sku=f"{prefix}-{i:05d}", price=Decimal("10.00"))
            for i in range(n)
        ],
        batch_size=2000,
    )
    return list(Variant.objects.filter(product=product))


def _price_file(variants: list[Variant], price: str) -> str:
    return "sku,price\n" + "".join(f"{v.sku},{price}\n" for v in variants)


def test_preview_makes_the_same_number_of_queries_for_10_and_300_rows(admin_client, db):
    small, large = _catalog_of(10, "S"), _catalog_of(300, "L")

    assert import_queries(admin_client, "variant", _price_file(small, "11.00")) == (
        import_queries(admin_client, "variant", _price_file(large, "11.00"))
    )


def test_ten_thousand_rows_preview_and_apply(admin_client, listing_factory, channel_factory):
    variants = _catalog_of(10_000, "T")
    channel = channel_factory(name="Shop")
    listing_factory(channel=channel, variant=variants[0])
    listing_factory(channel=channel, variant=variants[-1])
    content = _price_file(variants, "12.34")

    started = time.perf_counter()
    record, page = preview_of(admin_client, "variant", content)
    previewed = time.perf_counter()
    done = confirm(admin_client, "variant", record)
    applied = time.perf_counter()

    assert page.context["preview"].n_changed == 10_000
    assert len(page.context["price_rows"]) == 500
    assert messages_of(done) == [
        "Prices changed for 10000 variant(s) from file.csv; 0 row(s) already had these "
        "prices (checked again when applying). 1 channel(s) will be pushed: Shop."
    ]
    assert Variant.objects.filter(price=Decimal("12.34")).count() == 10_000
    assert SyncMarker.objects.filter(kind=SyncKind.PRICE).count() == 2
    print(
        f"\nbench csv prices rows=10000 upload+preview_s={previewed - started:.2f} "
        f"confirm_s={applied - previewed:.2f}"
    )


def test_export_defuses_formulas_and_the_import_reads_them_back(
    admin_client, variant_factory, product_factory
):
    evil = product_factory(title='=HYPERLINK("http://x.example","click")')
    variant_factory(sku="-X1", product=evil, price=Decimal("3.00"))

    rows = export_rows(admin_client.get(url("variant", "csv_export")))

    assert rows[1][:2] == ["'-X1", '\'=HYPERLINK("http://x.example","click")']
    rows[1][4] = "4.00"
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    _, page = preview_of(admin_client, "variant", out.getvalue())
    assert [(r.sku, r.new["price"]) for r in page.context["preview"].rows] == [
        ("-X1", Decimal("4.00"))
    ]
