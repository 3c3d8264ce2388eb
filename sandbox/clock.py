"""The sandbox's source of monotonic time.

Every deadline in the sandbox (rate-limit refills, outage windows, the held
answer of a simulated timeout, Amazon's feed processing, the busiest-second
counter) reads one :data:`Clock`. Serving, that is ``time.monotonic``; a test
passes a fake it advances by hand, so what it asserts never depends on how
fast a loaded machine runs.
"""

from __future__ import annotations

from collections.abc import Callable

# Seconds on an arbitrary, never-decreasing scale (the contract of time.monotonic).
Clock = Callable[[], float]
