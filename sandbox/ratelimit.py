"""Rate-limit primitives: a token bucket (requests per second with a burst) and
Shopify's leaky bucket of query cost."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from .clock import Clock


class TokenBucket:
    """Classic token bucket: ``burst`` tokens, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_take(self, tokens: float = 1.0) -> float:
        """Take ``tokens`` if available and return 0.0, else return the seconds to wait."""
        with self._lock:
            self._refill()
            if self._tokens >= tokens:
                self._tokens -= tokens
                return 0.0
            return (tokens - self._tokens) / self.rate if self.rate > 0 else float("inf")

    def available(self) -> float:
        with self._lock:
            self._refill()
            return self._tokens


@dataclass(frozen=True)
class CostStatus:
    maximum_available: float
    currently_available: float
    restore_rate: float


class CostBucket:
    """Shopify-style leaky bucket of query cost.

    The requested cost must be free before a query runs; the unused part
    (requested - actual) is refunded afterwards.
    """

    def __init__(
        self,
        maximum: float,
        restore_rate: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self.maximum = float(maximum)
        self.restore_rate = float(restore_rate)
        self._clock = clock
        self._available = float(maximum)
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        restored = (now - self._stamp) * self.restore_rate
        self._available = min(self.maximum, self._available + restored)
        self._stamp = now

    def try_take(self, cost: float) -> tuple[bool, CostStatus]:
        """Take ``cost`` points if free; the status is after the attempt."""
        with self._lock:
            self._refill()
            granted = self._available >= cost
            if granted:
                self._available -= cost
            return granted, self._status()

    def refund(self, points: float) -> CostStatus:
        with self._lock:
            self._refill()
            self._available = min(self.maximum, self._available + max(0.0, points))
            return self._status()

    def status(self) -> CostStatus:
        with self._lock:
            self._refill()
            return self._status()

    def _status(self) -> CostStatus:
        return CostStatus(self.maximum, self._available, self.restore_rate)
