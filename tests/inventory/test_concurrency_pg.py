"""Concurrency claims, proven on PostgreSQL with real parallel connections."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import close_old_connections, connection

from inventory import services
from inventory.models import StockLevel, StockMovement

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _in_thread(fn):
    def run(*args):
        try:
            return fn(*args)
        finally:
            connection.close()

    return run


def test_eight_threads_fifty_decrements_each_end_exactly_400_lower(variant, location):
    services.stock_adjust(
        variant=variant,
        location=location,
        quantity=1000,
        reason="receive",
        source="t",
        idempotency_key="seed",
    )
    barrier = threading.Barrier(8)

    @_in_thread
    def worker(t: int) -> None:
        close_old_connections()
        barrier.wait()
        for i in range(50):
            services.stock_adjust(
                variant=variant,
                location=location,
                quantity=-1,
                reason="adjust",
                source="t",
                idempotency_key=f"dec-{t}-{i}",
            )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))
    lvl = StockLevel.objects.get(variant=variant, location=location)
    assert lvl.on_hand == 600
    assert StockMovement.objects.filter(reason="adjust").count() == 400


def test_same_key_from_two_threads_changes_stock_once(variant, location):
    barrier = threading.Barrier(2)
    results = []

    @_in_thread
    def worker(_: int) -> None:
        barrier.wait()
        results.append(
            services.stock_adjust(
                variant=variant,
                location=location,
                quantity=3,
                reason="receive",
                source="t",
                idempotency_key="dup",
            )
        )

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(worker, range(2)))
    assert sorted(r.created for r in results) == [False, True]
    assert len({r.movement.pk for r in results}) == 1
    assert StockLevel.objects.get(variant=variant, location=location).on_hand == 3


def test_parallel_reservations_never_exceed_available(variant, location):
    from inventory.errors import InsufficientStock

    services.stock_adjust(
        variant=variant,
        location=location,
        quantity=10,
        reason="receive",
        source="t",
        idempotency_key="seed",
    )
    barrier = threading.Barrier(8)
    outcomes = []

    @_in_thread
    def worker(t: int) -> None:
        barrier.wait()
        for i in range(4):
            try:
                services.reservation_create(
                    variant=variant,
                    location=location,
                    quantity=1,
                    source="t",
                    idempotency_key=f"r-{t}-{i}",
                )
                outcomes.append("ok")
            except InsufficientStock:
                outcomes.append("short")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))
    lvl = StockLevel.objects.get(variant=variant, location=location)
    assert outcomes.count("ok") == 10
    assert (lvl.reserved, lvl.available) == (10, 0)


def test_transfers_in_opposite_directions_do_not_deadlock(variant, location, location2):
    for loc in (location, location2):
        services.stock_adjust(
            variant=variant,
            location=loc,
            quantity=100,
            reason="receive",
            source="t",
            idempotency_key=f"seed-{loc.code}",
        )

    @_in_thread
    def worker(t: int) -> None:
        src, dst = (location, location2) if t % 2 else (location2, location)
        for i in range(20):
            services.stock_transfer(
                variant=variant,
                from_location=src,
                to_location=dst,
                quantity=1,
                source="t",
                idempotency_key=f"x-{t}-{i}",
            )

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(worker, range(6)))
    total = sum(StockLevel.objects.filter(variant=variant).values_list("on_hand", flat=True))
    assert total == 200
