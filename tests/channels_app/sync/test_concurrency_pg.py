"""Claims and the shared rate limiter under real parallel connections (PostgreSQL + Redis lane)."""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from channels_app.models import ChannelListing
from channels_app.sync import engine
from channels_app.sync.limiter import DatabaseRateLimiter, RedisRateLimiter
from channels_app.sync.markers import listings_mark_dirty

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_parallel_claimers_never_get_the_same_marker(
    channel_factory, listing_factory, variant_factory
):
    channel = channel_factory()
    for _ in range(400):
        listing_factory(channel=channel, variant=variant_factory())
    listings_mark_dirty(ChannelListing.objects.filter(channel=channel))  # 800 markers
    barrier = threading.Barrier(8)

    def claim_all(n: int) -> list[int]:
        try:
            barrier.wait()
            got = []
            while batch := engine.markers_claim(
                channel.pk, limit=25, now=timezone.now(), token=f"claimer-{n}"
            ):
                got += [m.pk for m in batch]
            return got
        finally:
            connection.close()

    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(claim_all, range(8)))
    flat = [pk for c in claims for pk in c]
    assert len(flat) == 800
    assert len(set(flat)) == 800
    assert sum(1 for c in claims if c) > 1, "the work was shared between claimers"


def _calls_per_window(limiter, channel_id: int, rate: float, threads: int, calls: int) -> float:
    stamps: list[float] = []
    lock = threading.Lock()

    def caller(_: int) -> None:
        try:
            for _ in range(calls):
                wait = limiter.take(channel_id, rate=rate, burst=1.0)
                time.sleep(wait)
                with lock:
                    stamps.append(time.monotonic())
        finally:
            connection.close()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(caller, range(threads)))
    stamps.sort()
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


@pytest.mark.parametrize("backend", ["database", "redis"])
def test_shared_limiter_holds_the_rate_across_parallel_callers(backend, channel_factory):
    channel = channel_factory(rate_limit_per_second=Decimal("20"))
    if backend == "redis":
        url = os.environ.get("REDIS_URL")
        if not url:
            pytest.fail("the PostgreSQL + Redis lane exports REDIS_URL")
        limiter = RedisRateLimiter(url)
        limiter._client.delete(f"pimsync:ratelimit:{channel.pk}")
    else:
        limiter = DatabaseRateLimiter()
    observed = _calls_per_window(limiter, channel.pk, rate=20.0, threads=6, calls=10)
    assert observed <= 20.0 * 1.1, observed
    assert observed >= 20.0 * 0.7, observed


def test_a_live_run_keeps_its_claims_past_the_lease_and_a_dead_one_loses_them(
    channel_factory, listing_factory, variant_factory, settings, monkeypatch
):
    """The heartbeat renews a run's short leases while its worker lives, however
    long one call to the channel takes; claims that stop being renewed (a killed
    worker) are free again after one lease."""
    from tests.support.sync import FakeConnector

    settings.PIMSYNC_PUSH_LEASE_SECONDS = 1
    channel = channel_factory(rate_limit_per_second=Decimal("1000"))
    for _ in range(3):
        listing_factory(channel=channel, variant=variant_factory())
    listings_mark_dirty(ChannelListing.objects.filter(channel=channel))
    in_call, release = threading.Event(), threading.Event()
    connector = FakeConnector()

    def slow_channel(kind, items):
        in_call.set()
        release.wait(10)

    connector.on_call = slow_channel
    monkeypatch.setattr(engine, "channel_connector", lambda ch: connector)

    def run_push() -> None:
        try:
            engine.channel_push(channel.pk, time_budget=30)
        finally:
            connection.close()

    pusher = threading.Thread(target=run_push)
    pusher.start()
    try:
        assert in_call.wait(10)
        time.sleep(3)  # three leases long inside one call
        stolen = engine.markers_claim(channel.pk, limit=10, now=timezone.now(), token="other")
        assert stolen == []  # the live run still holds every marker it claimed
    finally:
        release.set()
        pusher.join(30)
    # a run that died holding claims (no heartbeat any more): free after one lease
    listings_mark_dirty(ChannelListing.objects.filter(channel=channel))
    dead = engine.markers_claim(channel.pk, limit=10, now=timezone.now(), token="dead-run")
    assert dead
    assert engine.markers_claim(channel.pk, limit=10, now=timezone.now(), token="x") == []
    later = timezone.now() + timezone.timedelta(seconds=1.5)
    taken = engine.markers_claim(channel.pk, limit=10, now=later, token="survivor")
    assert {m.pk for m in taken} == {m.pk for m in dead}


def test_a_zero_marked_from_another_connection_goes_before_the_rest_of_a_long_batch(
    channel_factory,
    location,
    channel_location_factory,
    listing_factory,
    variant_factory,
    monkeypatch,
):
    """Real parallel connections: while a push works through a long price batch one
    SKU per call, another connection sells a SKU out; its 0 is the next call."""
    from inventory import services
    from tests.support.sync import FakeConnector

    channel = channel_factory(rate_limit_per_second=Decimal("1000"), batch_size=1)
    channel_location_factory(channel=channel, location=location)
    variants = [variant_factory(sku=f"Z-{i}") for i in range(6)]
    for v in variants:
        listing_factory(channel=channel, variant=v)
        services.stock_adjust(
            variant=v,
            location=location,
            quantity=10,
            reason="receive",
            source="t",
            idempotency_key=f"z-{v.sku}",
        )
    connector = FakeConnector()
    monkeypatch.setattr(engine, "channel_connector", lambda ch: connector)
    engine.channel_push(channel.pk, time_budget=30)
    listings_mark_dirty(
        ChannelListing.objects.filter(channel=channel), kinds=["price"], forced=True
    )
    connector.calls.clear()
    first_call, sold = threading.Event(), threading.Event()

    def during_the_batch(kind, items):
        if not first_call.is_set():
            first_call.set()
            sold.wait(10)

    connector.on_call = during_the_batch

    def sell_out() -> None:
        try:
            first_call.wait(10)
            services.stock_adjust(
                variant=variants[-1],
                location=location,
                quantity=-10,
                reason="adjust",
                source="t",
                idempotency_key="z-sold",
            )
        finally:
            sold.set()
            connection.close()

    seller = threading.Thread(target=sell_out)
    seller.start()
    engine.channel_push(channel.pk, time_budget=30)
    seller.join(10)
    kinds = [kind for kind, _ in connector.calls]
    assert kinds[:2] == ["price", "quantity"]
    assert connector.calls[1] == ("quantity", [("Z-5", 0)])
    assert kinds.count("price") == 6


def test_redis_keeps_an_operations_bucket_apart_from_the_channels(channel_factory):
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.fail("the PostgreSQL + Redis lane exports REDIS_URL")
    channel = channel_factory()
    limiter = RedisRateLimiter(url)
    limiter._client.delete(f"pimsync:ratelimit:{channel.pk}:searchOrders")
    waits = [
        limiter.take(channel.pk, rate=0.005, burst=2.0, scope="searchOrders") for _ in range(3)
    ]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2] == pytest.approx(200.0, abs=1.0)
    limiter.settle(channel.pk, rate=0.005, burst=2.0, refund=1.0, scope="searchOrders")
    assert limiter.take(channel.pk, rate=0.005, burst=2.0, scope="searchOrders") == (
        pytest.approx(200.0, abs=1.0)
    )
    assert limiter.take(channel.pk, rate=0.005, burst=2.0, scope="getOrder") == 0.0
