"""What a platform has seen: calls, rate-limited answers, faults, items written,
and the stale overwrites it suffered (see score.py)."""

from __future__ import annotations

import threading
import time
from collections import deque

from .clock import Clock
from .http import JsonDict

# Stale overwrites kept in detail (the count has no limit).
STALE_DETAIL_LIMIT = 1000


class Counters:
    """What a platform has seen; read by tests, the bench and /_control/counters."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.calls = 0
            self.by_endpoint: dict[str, int] = {}
            self.rate_limited = 0
            self.faults: dict[str, int] = {}
            self.items: dict[str, int] = {}
            self.max_rate_1s = 0
            self._window: deque[float] = deque()
            self.stale_overwrites = 0
            self.stale_detail: deque[JsonDict] = deque(maxlen=STALE_DETAIL_LIMIT)

    def record_call(self, endpoint: str) -> None:
        now = self._clock()
        with self._lock:
            self.calls += 1
            self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1
            self._window.append(now)
            while self._window and now - self._window[0] >= 1.0:
                self._window.popleft()
            self.max_rate_1s = max(self.max_rate_1s, len(self._window))

    def record_rate_limited(self) -> None:
        with self._lock:
            self.rate_limited += 1

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] = self.faults.get(kind, 0) + 1

    def count_items(self, kind: str, n: int) -> None:
        with self._lock:
            self.items[kind] = self.items.get(kind, 0) + n

    def record_stale_overwrite(self, detail: JsonDict) -> None:
        with self._lock:
            self.stale_overwrites += 1
            self.stale_detail.append(detail)

    def stale_overwrites_detail(self) -> list[JsonDict]:
        with self._lock:
            return list(self.stale_detail)

    def snapshot(self) -> JsonDict:
        with self._lock:
            return {
                "calls": self.calls,
                "by_endpoint": dict(self.by_endpoint),
                "rate_limited": self.rate_limited,
                "faults": dict(self.faults),
                "items": dict(self.items),
                "max_rate_1s": self.max_rate_1s,
                "stale_overwrites": self.stale_overwrites,
            }
