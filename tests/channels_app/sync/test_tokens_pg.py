"""Token refresh and the cost bucket under real parallel connections (PostgreSQL +
Redis lane): many workers due at once make one refresh; workers reading Shopify at
once stay inside its cost bucket."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from django.db import connection

from channels_app.connectors.base import ChannelConfig
from channels_app.connectors.oauth import TokenGrant
from channels_app.models import ChannelToken
from channels_app.sync.connection import channel_config, channel_connector
from channels_app.sync.limiter import DatabaseRateLimiter, RedisRateLimiter, rate_limiter
from channels_app.sync.tokens import TokenProvider
from sandbox.server import RunningSandbox, start_sandbox
from tests.support.sandbox import SHOPIFY_LOCATION, SHOPIFY_TOKEN, seed_listings

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
WORKERS = 8
T = TypeVar("T")


def in_parallel(work: Callable[[int], T], workers: int = WORKERS) -> list[T]:
    """``work(n)`` in ``workers`` threads released together, each on its own connection."""
    barrier = threading.Barrier(workers)

    def run(n: int) -> T:
        try:
            barrier.wait()
            return work(n)
        finally:
            connection.close()

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(run, range(workers)))


def oauth_channel(channel_factory: Any, sandbox: RunningSandbox, platform: str) -> Any:
    credentials = {
        k: v
        for k, v in sandbox.platform(platform).default_credentials.items()
        if k != "access_token"
    }
    config = {"token_url": "/auth/o2/token", "seller_id": "A2SELLER", "pacing": False}
    return channel_factory(
        platform=platform,
        base_url=sandbox.platform_url(platform),
        credentials=credentials,
        platform_config=config if platform == "amazon" else {},
    )


@pytest.mark.parametrize("platform", ["ebay", "amazon"])
def test_workers_calling_at_once_without_a_token_make_one_refresh(
    channel_factory: Any, sandbox: RunningSandbox, platform: str
) -> None:
    channel = oauth_channel(channel_factory, sandbox, platform)

    checks = in_parallel(lambda _: channel_connector(channel).test_connection())

    assert [c.ok for c in checks] == [True] * WORKERS
    assert sandbox.platform(platform).issuer().describe()["grants"] == 1
    assert ChannelToken.objects.get(channel=channel).refresh_count == 1


def test_workers_refused_the_same_expired_token_make_one_refresh(
    channel_factory: Any, sandbox: RunningSandbox
) -> None:
    channel = oauth_channel(channel_factory, sandbox, "ebay")
    assert channel_connector(channel).test_connection().ok
    issuer = sandbox.platform("ebay").issuer()
    issuer.expire_all()  # every worker's next call is refused with the same token

    checks = in_parallel(lambda _: channel_connector(channel).test_connection())

    assert [c.ok for c in checks] == [True] * WORKERS
    assert issuer.describe()["grants"] == 2
    assert issuer.describe()["expired_refusals"] == WORKERS


def test_a_slow_token_endpoint_is_waited_for_not_called_again(channel_factory: Any) -> None:
    """The refresh holds the row lock for as long as the token call takes; the others
    wait on it and take the token it stored."""
    channel = channel_factory(
        platform="ebay",
        base_url="http://127.0.0.1:9/ebay",
        credentials={"client_id": "c", "client_secret": "s", "refresh_token": "r"},
    )
    calls: list[int] = []
    entered = threading.Event()

    def slow_grant(config: ChannelConfig) -> TokenGrant:
        calls.append(1)
        entered.set()
        threading.Event().wait(0.5)
        return TokenGrant(f"token-{len(calls)}", 7200, "User Access Token")

    tokens = in_parallel(
        lambda _: TokenProvider(
            channel_id=channel.pk, config=channel_config(channel), refresher=slow_grant
        ).current()
    )

    assert entered.is_set()
    assert (len(calls), set(tokens)) == (1, {"token-1"})


def test_workers_reading_shopify_at_once_stay_inside_its_cost_bucket(
    channel_factory: Any,
) -> None:
    """Four workers read 100 listings each, three times, against a 400-point bucket
    restored at 400/s: without the shared points budget they would be throttled."""
    shop_sandbox = start_sandbox(
        limits={"shopify": {"cost": {"maximum": 400, "restore_rate": 400}}}
    )
    try:
        shop = shop_sandbox.platform("shopify")
        listings = seed_listings(
            shop, [{"sku": f"P-{n}", "price": "1", "quantity": 1} for n in range(100)]
        )
        channel = channel_factory(
            platform="shopify",
            base_url=shop_sandbox.platform_url("shopify"),
            credentials={"access_token": SHOPIFY_TOKEN},
            # the shop's bucket as configured: the four first calls go before any answer
            platform_config={
                "location_id": SHOPIFY_LOCATION,
                "cost_bucket_size": 400,
                "cost_restore_rate": 400,
            },
        )
        _forget_bucket(channel.pk)

        def reads(_: int) -> int:
            connector = channel_connector(channel)
            return sum(
                1 for _ in range(3) for state in connector.read_listings(listings) if state.found
            )

        found = in_parallel(reads, workers=4)
    finally:
        shop_sandbox.stop()

    assert found == [300] * 4
    assert shop.counters.snapshot()["rate_limited"] == 0
    assert shop.counters.snapshot()["calls"] == 12


def _forget_bucket(channel_id: int) -> None:
    """A channel id may repeat across test databases; Redis outlives them."""
    limiter: Any = rate_limiter()
    client = getattr(limiter, "_client", None)
    if client is not None:
        client.delete(f"pimsync:ratelimit:{channel_id}")


@pytest.mark.parametrize("backend", ["database", "redis"])
def test_settle_makes_every_worker_follow_the_platforms_bucket(
    backend: str, channel_factory: Any
) -> None:
    channel = channel_factory()
    if backend == "redis":
        url = os.environ.get("REDIS_URL")
        if not url:
            pytest.fail("the PostgreSQL + Redis lane exports REDIS_URL")
        limiter: Any = RedisRateLimiter(url)
        limiter._client.delete(f"pimsync:ratelimit:{channel.pk}")
    else:
        limiter = DatabaseRateLimiter()
    assert limiter.take(channel.pk, rate=50.0, burst=1000.0, tokens=751) == 0.0

    # the shop charged 502, has 498 left, restores 100/s up to 2000
    limiter.settle(channel.pk, rate=100.0, burst=2000.0, refund=249.0, available=498.0)

    # another worker, still configured with the assumption, waits by the shop's figures
    waits = in_parallel(
        lambda _: limiter.take(channel.pk, rate=50.0, burst=1000.0, tokens=299), workers=2
    )
    first, second = sorted(waits)
    # 498 left: one take goes at once, the other waits 100 points at 100/s (less the
    # refill since the settle); without the settle: 249 at 50/s, a second and 7 s
    assert first == 0.0
    assert 0.5 < second <= 1.0
