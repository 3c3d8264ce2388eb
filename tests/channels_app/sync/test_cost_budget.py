"""Shopify's budget is its cost bucket in points, shared by every worker: each call takes
its requested cost before it goes, and the bucket follows extensions.cost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from channels_app.connectors.base import ListingRef
from channels_app.models import ChannelSyncState
from channels_app.sync.connection import channel_connector
from sandbox.server import RunningSandbox, start_sandbox
from tests.support.sandbox import SHOPIFY_LOCATION, SHOPIFY_TOKEN, seed_listings

pytestmark = pytest.mark.django_db

READ = 100  # ids per read: 1 + 3 * 100 = 301 points requested


@pytest.fixture(autouse=True)
def _database_limiter(settings: Any) -> None:
    """These tests read the bucket from its database row (the pg lane shares it via Redis:
    tests/channels_app/sync/test_tokens_pg.py)."""
    settings.PIMSYNC_RATE_LIMIT_REDIS_URL = ""


@pytest.fixture
def small_bucket() -> Iterator[RunningSandbox]:
    """Shopify with a 400-point bucket restored at 400 points/s: a few reads empty it."""
    running = start_sandbox(limits={"shopify": {"cost": {"maximum": 400, "restore_rate": 400}}})
    yield running
    running.stop()


def shopify_channel(channel_factory: Any, sandbox: RunningSandbox) -> Any:
    return channel_factory(
        platform="shopify",
        base_url=sandbox.platform_url("shopify"),
        credentials={"access_token": SHOPIFY_TOKEN},
        platform_config={"location_id": SHOPIFY_LOCATION},
    )


def test_the_bucket_learns_the_shops_size_rate_and_level_from_an_answer(
    channel_factory: Any, small_bucket: RunningSandbox
) -> None:
    listings = seed_listings(
        small_bucket.platform("shopify"),
        [{"sku": f"S-{n}", "price": "1", "quantity": 1} for n in range(READ)],
    )
    channel = shopify_channel(channel_factory, small_bucket)

    connector = channel_connector(channel)
    connector.read_listings(listings)

    state = ChannelSyncState.objects.get(channel=channel)
    # the shop's restore rate; a tenth under its size (the latency of a request)
    assert (state.bucket_rate, state.bucket_burst) == (400.0, 360.0)
    # 900 - 301 taken before the call, then what the shop said was left (400 - 301 + a
    # moment of restore): never more than that
    assert state.tokens == connector.throttle.available


def test_two_workers_reading_in_turn_are_never_throttled(
    channel_factory: Any, small_bucket: RunningSandbox
) -> None:
    shop = small_bucket.platform("shopify")
    listings: list[ListingRef] = seed_listings(
        shop, [{"sku": f"S-{n}", "price": "1", "quantity": 1} for n in range(READ)]
    )
    channel = shopify_channel(channel_factory, small_bucket)
    # two workers: each connector knows only the answers it got itself
    workers = [channel_connector(channel), channel_connector(channel)]

    states = [workers[n % 2].read_listings(listings) for n in range(6)]

    assert shop.counters.snapshot()["rate_limited"] == 0
    assert all(s.found and s.error is None for read in states for s in read)
    assert shop.counters.snapshot()["by_endpoint"] == {"graphql": 6}


def test_a_throttled_answer_gives_the_points_back_and_sets_the_level(
    channel_factory: Any,
) -> None:
    slow = start_sandbox(limits={"shopify": {"cost": {"maximum": 400, "restore_rate": 1}}})
    try:
        shop = slow.platform("shopify")
        listings = seed_listings(shop, [{"sku": "S-1", "price": "1", "quantity": 1}])
        channel = shopify_channel(channel_factory, slow)
        # another app of the same shop emptied the bucket: the shop knows, pimsync does not
        shop.drain_limits()

        [state] = channel_connector(channel).read_listings(listings)
    finally:
        slow.stop()

    assert state.error is not None
    assert state.error.code == "THROTTLED"
    bucket = ChannelSyncState.objects.get(channel=channel)
    # the 4 points requested came back, and the level is the shop's (not 1000 - 4)
    assert bucket.tokens == pytest.approx(0.0, abs=2.0)
    assert (bucket.bucket_rate, bucket.bucket_burst) == (1.0, 360.0)
