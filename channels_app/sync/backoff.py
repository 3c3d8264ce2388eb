"""Retry delays: exponential with jitter, capped, never shorter than the channel asked."""

from __future__ import annotations

import random

from django.conf import settings

_rng = random.SystemRandom()


def retry_delay(
    attempt: int,
    *,
    retry_after: float | None = None,
    base: float | None = None,
    cap: float | None = None,
    rand: float | None = None,
) -> float:
    """Seconds before retry number ``attempt`` (1 = the first retry).

    Equal jitter: half the exponential step is fixed, half random, so retries
    of many SKUs spread out but never collapse to zero. The channel's own
    Retry-After / throttle wait is a floor.
    """
    base = settings.PIMSYNC_RETRY_BASE_SECONDS if base is None else base
    cap = settings.PIMSYNC_RETRY_CAP_SECONDS if cap is None else cap
    step = min(cap, base * (2 ** max(attempt - 1, 0)))
    jitter = _rng.random() if rand is None else rand
    delay = step / 2 + step / 2 * jitter
    return max(delay, retry_after or 0.0)
