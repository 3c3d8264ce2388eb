"""Confirming the same CSV import from two requests at once applies it once (PostgreSQL)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import close_old_connections, connection

from inventory import services
from inventory.csv_imports import csv_import_apply, csv_import_preview
from inventory.models import CsvImport, MovementReason, StockLevel, StockMovement

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_simultaneous_confirms_apply_the_counts_once(variant_factory, location, location2):
    variants = [variant_factory(sku=f"C-{i}") for i in range(20)]
    for v in variants:
        services.stock_adjust(
            variant=v,
            location=location,
            quantity=10,
            reason="receive",
            source="t",
            idempotency_key=f"seed-{v.pk}",
        )
    content = "sku,location,counted\n" + "".join(
        f"{v.sku},{code},{i}\n" for i, v in enumerate(variants) for code in ("main", "store")
    )
    _, record = csv_import_preview(
        kind=CsvImport.Kind.COUNTS, file_name="c.csv", data=content.encode(), user=None
    )
    barrier = threading.Barrier(2)

    def confirm(_: int) -> str:
        close_old_connections()
        try:
            barrier.wait()
            return csv_import_apply(import_id=record.pk, user=None).status
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(confirm, range(2)))

    assert statuses == ["already_applied", "applied"]
    assert StockMovement.objects.filter(reason=MovementReason.COUNT).count() == 40
    assert sorted(
        StockLevel.objects.filter(location=location).values_list("on_hand", flat=True)
    ) == list(range(20))
