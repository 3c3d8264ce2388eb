"""Every push rule, table-driven."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from channels_app.sync.rules import Action, Limits, price_decide, quantity_decide

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LIMITS = Limits(
    threshold=5,
    low_stock=3,
    min_interval=timedelta(seconds=10),
    max_interval=timedelta(seconds=300),
)


def q(new, last, *, pushed_ago=None, dirty_ago=0, forced=False, limits=LIMITS):
    return quantity_decide(
        new=new,
        last_pushed=last,
        last_pushed_at=None if pushed_ago is None else NOW - timedelta(seconds=pushed_ago),
        first_dirty_at=NOW - timedelta(seconds=dirty_ago),
        forced=forced,
        limits=limits,
        now=NOW,
    )


@pytest.mark.parametrize(
    ("case", "decision", "action", "why"),
    [
        ("never pushed", q(50, None), Action.PUSH, "never pushed"),
        ("unchanged is a no-op", q(50, 50, pushed_ago=60), Action.DROP, "unchanged"),
        ("at threshold", q(45, 50, pushed_ago=60), Action.PUSH, "threshold"),
        ("below threshold waits", q(47, 50, pushed_ago=60), Action.WAIT, "below threshold"),
        ("zero always, at once", q(0, 50, pushed_ago=1), Action.PUSH, "low stock"),
        ("low stock new side", q(3, 5, pushed_ago=60), Action.PUSH, "low stock"),
        ("low stock old side", q(6, 2, pushed_ago=60), Action.PUSH, "low stock"),
        ("minimum interval waits", q(10, 50, pushed_ago=4), Action.WAIT, "minimum interval"),
        (
            "maximum interval forces small change",
            q(48, 50, pushed_ago=400, dirty_ago=301),
            Action.PUSH,
            "maximum interval",
        ),
        ("forced pushes unchanged", q(50, 50, pushed_ago=60, forced=True), Action.PUSH, "forced"),
        (
            "forced still honours minimum interval",
            q(50, 50, pushed_ago=2, forced=True),
            Action.WAIT,
            "minimum interval",
        ),
    ],
)
def test_quantity_rules(case, decision, action, why):
    assert (decision.action, decision.why) == (action, why), case


def test_waiting_markers_say_until_when():
    assert q(10, 50, pushed_ago=4).until == NOW + timedelta(seconds=6)
    assert q(47, 50, pushed_ago=60, dirty_ago=100).until == NOW + timedelta(seconds=200)


def p(new, last, *, pushed_ago=None, forced=False):
    return price_decide(
        new=D(new),
        last_pushed=None if last is None else D(last),
        last_pushed_at=None if pushed_ago is None else NOW - timedelta(seconds=pushed_ago),
        forced=forced,
        limits=LIMITS,
        now=NOW,
    )


@pytest.mark.parametrize(
    ("decision", "action"),
    [
        (p("10.00", None), Action.PUSH),
        (p("10.00", "10.00", pushed_ago=60), Action.DROP),
        (p("10.01", "10.00", pushed_ago=60), Action.PUSH),
        (p("9.99", "10.00", pushed_ago=60), Action.PUSH),
        (p("10.01", "10.00", pushed_ago=3), Action.WAIT),
        (p("10.00", "10.00", pushed_ago=60, forced=True), Action.PUSH),
    ],
)
def test_price_rules(decision, action):
    assert decision.action == action


@pytest.mark.parametrize(
    ("attempt", "rand", "retry_after", "expected"),
    [
        (1, 0.0, None, 0.5),
        (1, 1.0, None, 1.0),
        (2, 0.0, None, 1.0),
        (4, 1.0, None, 8.0),
        (20, 1.0, None, 300.0),  # capped
        (20, 0.0, None, 150.0),  # equal jitter never collapses to 0
        (1, 0.0, 30.0, 30.0),  # Retry-After is a floor
    ],
)
def test_backoff_schedule(attempt, rand, retry_after, expected):
    from pimsync.backoff import backoff_delay as retry_delay

    assert retry_delay(attempt, retry_after=retry_after, base=1.0, cap=300.0, rand=rand) == expected
