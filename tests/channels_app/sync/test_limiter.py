from datetime import UTC, datetime

import pytest

from channels_app.models import ChannelSyncState
from channels_app.sync.limiter import (
    DatabaseRateLimiter,
    _settle_bucket,
    _take_from_bucket,
    take_in_turn,
    urgent_calls,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("level", "updated", "now", "tokens", "expected"),
    [
        (0.0, None, 100.0, 1, (1.0, 0.0)),  # a fresh bucket starts full (burst 2)
        (2.0, 100.0, 100.0, 1, (1.0, 0.0)),
        (0.0, 100.0, 100.0, 1, (-1.0, 0.5)),  # debt: wait 1 token / 2 per s
        (-1.0, 100.0, 100.5, 1, (-1.0, 0.5)),  # refilled 1, took 1
        (0.0, 100.0, 200.0, 1, (1.0, 0.0)),  # refill capped at burst
    ],
)
def test_bucket_maths(level, updated, now, tokens, expected):
    assert _take_from_bucket(level, updated, now, rate=2.0, burst=2.0, tokens=tokens) == expected


def test_database_limiter_makes_callers_wait_in_turn(channel_factory, time_machine):
    channel = channel_factory()
    limiter = DatabaseRateLimiter()
    # The clock stands still: five callers at the same instant (on a busy machine the
    # calls themselves took long enough to refill the bucket between them).
    time_machine.move_to(datetime(2026, 12, 1, 12, 0, tzinfo=UTC), tick=False)
    waits = [limiter.take(channel.pk, rate=10.0, burst=1.0) for _ in range(5)]
    assert waits[0] == 0.0
    # each further call waits 0.1 s more than the one before
    assert waits[1:] == pytest.approx([0.1, 0.2, 0.3, 0.4], abs=1e-6)

    time_machine.shift(0.25)  # 2.5 tokens refilled: the debt of 4 leaves 1.5
    assert limiter.take(channel.pk, rate=10.0, burst=1.0) == pytest.approx(0.25, abs=1e-6)


@pytest.mark.parametrize(
    ("level", "refund", "available", "expected"),
    [
        (100.0, 50.0, None, 150.0),  # requested 60, charged 10: 50 back
        (990.0, 50.0, None, 1000.0),  # never above the bucket's size
        (500.0, 0.0, 300.0, 300.0),  # the platform says less is left: believe it
        (200.0, 40.0, 900.0, 240.0),  # it says more: in-flight takes stay counted
        (-100.0, 60.0, 0.0, -40.0),  # a debt stays a debt
    ],
)
def test_settle_maths(level, refund, available, expected):
    settled = _settle_bucket(
        level, 100.0, 100.0, rate=50.0, burst=1000.0, refund=refund, available=available
    )
    assert settled == expected


def test_database_limiter_follows_the_platforms_bucket_after_settle(channel_factory, time_machine):
    channel = channel_factory()
    limiter = DatabaseRateLimiter()
    time_machine.move_to(datetime(2026, 12, 1, 12, 0, tzinfo=UTC), tick=False)
    # configured (until the platform says otherwise): 1000 points at 50/s
    assert limiter.take(channel.pk, rate=50.0, burst=1000.0, tokens=751) == 0.0

    # the platform charged 502 of the 751, has 498 left, restores 100/s in a 2000 bucket
    limiter.settle(channel.pk, rate=100.0, burst=2000.0, refund=249.0, available=498.0)

    state = ChannelSyncState.objects.get(channel=channel)
    assert (state.tokens, state.bucket_rate, state.bucket_burst) == (498.0, 100.0, 2000.0)
    # later takes use the platform's figures whatever the caller configured
    assert limiter.take(channel.pk, rate=50.0, burst=1000.0, tokens=598) == pytest.approx(1.0)
    time_machine.shift(60)
    assert limiter.take(channel.pk, rate=50.0, burst=1000.0, tokens=2000) == 0.0


def test_an_operations_bucket_is_its_own_and_a_call_not_made_comes_back(
    channel_factory, time_machine
):
    channel = channel_factory()
    limiter = DatabaseRateLimiter()
    time_machine.move_to(datetime(2026, 12, 1, 12, 0, tzinfo=UTC), tick=False)
    # searchOrders-like: a burst of 2, then one call every 200 s
    waits = [
        limiter.take(channel.pk, rate=0.005, burst=2.0, scope="searchOrders") for _ in range(3)
    ]
    assert waits == [0.0, 0.0, pytest.approx(200.0)]
    # the channel's own bucket and another operation's are untouched
    assert limiter.take(channel.pk, rate=10.0, burst=1.0) == 0.0
    assert limiter.take(channel.pk, rate=0.5, burst=1.0, scope="getOrder") == 0.0
    # the third caller did not call: its token back, the next one waits as it would have
    limiter.settle(channel.pk, rate=0.005, burst=2.0, refund=1.0, scope="searchOrders")
    assert limiter.take(channel.pk, rate=0.005, burst=2.0, scope="searchOrders") == (
        pytest.approx(200.0)
    )
    # the platform refused for its quota: nothing left, whatever pimsync counted
    time_machine.shift(1000)
    limiter.settle(channel.pk, rate=0.005, burst=2.0, available=0.0, scope="searchOrders")
    assert limiter.take(channel.pk, rate=0.005, burst=2.0, scope="searchOrders") == (
        pytest.approx(200.0)
    )


@pytest.fixture
def queued_bucket(channel_factory, time_machine, settings):
    """A channel whose bucket (10 calls/s) other workers' calls fill 3 s ahead, on
    the database limiter and a clock that moves only when a caller sleeps."""
    settings.PIMSYNC_RATE_LIMIT_REDIS_URL = ""
    settings.PIMSYNC_RATE_LIMIT_QUEUE_SECONDS = 0.5
    channel = channel_factory()
    time_machine.move_to(datetime(2026, 12, 1, 12, 0, tzinfo=UTC), tick=False)
    limiter = DatabaseRateLimiter()
    for _ in range(30):
        limiter.take(channel.pk, rate=10.0, burst=1.0)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        time_machine.shift(seconds)

    return channel, sleep, slept


def test_a_routine_call_waits_outside_a_long_queue(queued_bucket):
    channel, sleep, slept = queued_bucket
    wait = take_in_turn(channel.pk, rate=10.0, burst=1.0, sleep=sleep)
    # 2.9 s were queued ahead: it gave its token back and slept until 0.5 s were left
    assert slept == [pytest.approx(2.4)]
    assert wait == pytest.approx(0.6)
    # an urgent call now has the routine call and 0.5 s ahead of it, not 3 s
    with urgent_calls():
        assert take_in_turn(channel.pk, rate=10.0, burst=1.0, sleep=sleep) == pytest.approx(0.7)
    assert slept == [pytest.approx(2.4)]


def test_an_urgent_call_joins_the_queue_at_once(queued_bucket):
    channel, sleep, slept = queued_bucket
    with urgent_calls():
        assert take_in_turn(channel.pk, rate=10.0, burst=1.0, sleep=sleep) == pytest.approx(3.0)
    assert slept == []
    # outside the block calls are routine again
    assert take_in_turn(channel.pk, rate=10.0, burst=1.0, sleep=sleep) == pytest.approx(0.6)
    assert slept == [pytest.approx(2.5)]


def test_a_routine_call_yields_for_a_bounded_time_then_queues(queued_bucket):
    channel, sleep, slept = queued_bucket
    wait = take_in_turn(channel.pk, rate=10.0, burst=1.0, sleep=sleep, max_yield=1.0)
    assert slept == [pytest.approx(1.0)]
    # then it queued behind the 1.9 s still ahead
    assert wait == pytest.approx(2.0)
    # its give-back left the bucket as it was: the next urgent call is right behind it
    with urgent_calls():
        assert take_in_turn(channel.pk, rate=10.0, burst=1.0, sleep=sleep) == pytest.approx(2.1)
