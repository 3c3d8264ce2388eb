"""Amazon's per-operation usage plans counted once for every worker (the shared
limiter's operation buckets), not in each connector's memory."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import responses

from channels_app.connectors.amazon import AmazonConnector
from channels_app.connectors.base import ChannelConfig
from channels_app.connectors.errors import RetryableError
from channels_app.sync.connection import SharedOperationBudget

pytestmark = pytest.mark.django_db

BASE = "https://sellingpartnerapi-na.amazon.test"
SELLER = "A2SELLER"
TOKEN = "Atza|lwa-access-token"


@pytest.fixture(autouse=True)
def _database_limiter(settings):
    # The database's buckets follow time_machine; Redis's use the server's clock
    # (the Redis buckets are tested in test_concurrency_pg.py).
    settings.PIMSYNC_RATE_LIMIT_REDIS_URL = ""


@responses.activate
def test_workers_share_an_operations_quota_and_a_long_wait_is_answered_without_a_call(
    channel_factory, time_machine
) -> None:
    """Two connectors (two workers) count against one searchOrders usage plan; once
    it is spent the call is not sent: a retryable QuotaWait with the seconds to wait."""
    time_machine.move_to(datetime(2026, 12, 1, 12, 0, tzinfo=UTC), tick=False)
    channel = channel_factory(platform="amazon")
    responses.get(f"{BASE}/orders/2026-01-01/orders", json={"orders": []})

    def worker() -> AmazonConnector:
        config = ChannelConfig(
            channel_id=channel.pk,
            platform="amazon",
            base_url=BASE,
            credentials={"access_token": TOKEN},
            platform_config={"seller_id": SELLER, "rate_limits": {"searchOrders": {"burst": 3}}},
            operation_budget=SharedOperationBudget(channel.pk),
        )
        return AmazonConnector(config, sleep=lambda _seconds: None)

    first, second = worker(), worker()
    first.orders_since("2026-05-01T00:00:00Z", page_size=2)
    second.orders_since("2026-05-01T00:00:00Z", page_size=2)  # burst 3, one kept in reserve
    assert len(responses.calls) == 2
    with pytest.raises(RetryableError) as refused:
        first.orders_since("2026-05-01T00:00:00Z", page_size=2)
    assert refused.value.code == "QuotaWait"
    # Amazon's 0.0056/s paced at 90 %: one call per 198 s
    assert refused.value.retry_after == pytest.approx(1 / (0.0056 * 0.9), rel=1e-3)
    assert len(responses.calls) == 2  # not sent
    time_machine.shift(200)
    second.orders_since("2026-05-01T00:00:00Z", page_size=2)
    assert len(responses.calls) == 3


@responses.activate
def test_a_quota_refusal_empties_the_shared_bucket(channel_factory, time_machine) -> None:
    time_machine.move_to(datetime(2026, 12, 1, 12, 0, tzinfo=UTC), tick=False)
    channel = channel_factory(platform="amazon")
    responses.get(
        f"{BASE}/orders/2026-01-01/orders",
        status=429,
        json={"errors": [{"code": "QuotaExceeded", "message": "quota"}]},
    )
    config = ChannelConfig(
        channel_id=channel.pk,
        platform="amazon",
        base_url=BASE,
        credentials={"access_token": TOKEN},
        platform_config={"seller_id": SELLER},
        operation_budget=SharedOperationBudget(channel.pk),
    )
    connector = AmazonConnector(config, sleep=lambda _seconds: None)
    with pytest.raises(RetryableError):
        connector.orders_since("2026-05-01T00:00:00Z", page_size=2)
    sent = len(responses.calls)
    # another worker's connector learns it from the shared bucket, not from Amazon
    other = AmazonConnector(config, sleep=lambda _seconds: None)
    with pytest.raises(RetryableError) as refused:
        other.orders_since("2026-05-01T00:00:00Z", page_size=2)
    assert refused.value.code == "QuotaWait"
    assert len(responses.calls) == sent
