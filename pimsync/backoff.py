"""Retry delays: exponential with equal jitter, capped, never shorter than asked.

One formula for every retry pimsync schedules (channel pushes, inbound order
events, alert notifications); each caller passes its own base and cap.
"""

from __future__ import annotations

import random

_rng = random.SystemRandom()
# The band of the exponential step a delay is drawn from.
EQUAL_JITTER = (0.5, 1.0)
NO_JITTER = (1.0, 1.0)


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    jitter: tuple[float, float] = EQUAL_JITTER,
    rand: float | None = None,
) -> float:
    """Seconds before retry number ``attempt`` (1 = the first retry).

    The exponential step ``min(cap, base * 2^(attempt-1))`` scaled by a random
    factor within ``jitter``: by default equal jitter (half the step fixed, half
    random), so retries of many items spread out but never collapse to zero.
    ``rand`` (0..1) fixes the draw (1.0: the top of the band). The other side's
    own Retry-After / throttle wait is a floor.
    """
    step = min(cap, base * (2 ** max(attempt - 1, 0)))
    draw = _rng.random() if rand is None else rand
    low, high = jitter
    return max(step * (low + (high - low) * draw), retry_after or 0.0)


def backoff_elapsed(attempts: int, *, base: float, cap: float) -> float:
    """The least time from the first try until retry number ``attempts`` is due
    when each retry waits its whole step (no jitter): the sum of the steps."""
    return sum(
        backoff_delay(n, base=base, cap=cap, jitter=NO_JITTER) for n in range(1, attempts + 1)
    )
