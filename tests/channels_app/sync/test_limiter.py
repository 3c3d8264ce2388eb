from datetime import UTC, datetime

import pytest

from channels_app.sync.limiter import DatabaseRateLimiter, _take_from_bucket

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
