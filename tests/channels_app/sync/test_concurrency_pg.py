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

    def claim_all(_: int) -> list[int]:
        try:
            barrier.wait()
            got = []
            while batch := engine.markers_claim(channel.pk, limit=25, now=timezone.now()):
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
