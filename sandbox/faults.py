"""Injected failures of one platform, configured through the control API."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .clock import Clock
from .http import JsonDict


@dataclass
class Faults:
    """Injected failures for one platform. Shares are probabilities in [0, 1]."""

    error_5xx: float = 0.0
    error_status: int = 503
    timeout: float = 0.0
    timeout_seconds: float = 30.0
    auth: float = 0.0
    throttle: float = 0.0  # share answered as over the rate limit (the platform's 429/THROTTLED)
    item_failure: float = 0.0
    fail_skus: set[str] = field(default_factory=set)  # always fail these items
    webhook_drop: float = 0.0  # share of order webhooks never delivered (as platforms do)
    outage_until: float = 0.0  # deadline on ``clock``
    endpoints: set[str] = field(default_factory=set)  # empty: every endpoint
    seed: int | None = None
    clock: Clock = field(default=time.monotonic, repr=False, compare=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    # Webhook drops roll their own dice: with a seed, which deliveries are lost does
    # not depend on how many API calls happened in between.
    _webhook_rng: random.Random = field(default_factory=random.Random, repr=False)

    FIELDS: ClassVar[tuple[str, ...]] = (
        "error_5xx",
        "error_status",
        "timeout",
        "timeout_seconds",
        "auth",
        "throttle",
        "item_failure",
        "fail_skus",
        "webhook_drop",
        "outage_seconds",
        "endpoints",
        "seed",
    )

    def configure(self, spec: Mapping[str, Any]) -> None:
        """Apply a control-API fault spec (unknown keys are rejected)."""
        unknown = set(spec) - set(self.FIELDS)
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        for key in ("error_5xx", "timeout", "auth", "throttle", "item_failure", "webhook_drop"):
            if key in spec:
                share = float(spec[key])
                if not 0.0 <= share <= 1.0:
                    raise ValueError(f"{key} must be a share between 0 and 1")
                setattr(self, key, share)
        if "error_status" in spec:
            self.error_status = int(spec["error_status"])
        if "timeout_seconds" in spec:
            self.timeout_seconds = float(spec["timeout_seconds"])
        if "fail_skus" in spec:
            self.fail_skus = {str(s) for s in spec["fail_skus"]}
        if "endpoints" in spec:
            self.endpoints = {str(e) for e in spec["endpoints"]}
        if "outage_seconds" in spec:
            self.outage_until = self.clock() + float(spec["outage_seconds"])
        if "seed" in spec:
            self.seed = None if spec["seed"] is None else int(spec["seed"])
            self._rng = random.Random(self.seed)  # noqa: S311 - fault dice, not crypto
            self._webhook_rng = random.Random(self.seed)  # noqa: S311 - fault dice, not crypto

    def clear(self) -> None:
        fresh = Faults()
        for name in ("error_5xx", "error_status", "timeout", "timeout_seconds", "auth", "throttle"):
            setattr(self, name, getattr(fresh, name))
        self.item_failure = 0.0
        self.fail_skus = set()
        self.webhook_drop = 0.0
        self.outage_until = 0.0
        self.endpoints = set()

    def applies_to(self, route_name: str) -> bool:
        return not self.endpoints or route_name in self.endpoints

    def roll(self, share: float) -> bool:
        return _rolls(self._rng, share)

    def in_outage(self) -> bool:
        return self.clock() < self.outage_until

    def item_fails(self, sku: str) -> bool:
        """Whether one item of a batch should fail (partial batch failure)."""
        return sku in self.fail_skus or self.roll(self.item_failure)

    def webhook_dropped(self) -> bool:
        """Whether the next order webhook is lost (never delivered; polling still finds it)."""
        return _rolls(self._webhook_rng, self.webhook_drop)

    def describe(self) -> JsonDict:
        return {
            "error_5xx": self.error_5xx,
            "error_status": self.error_status,
            "timeout": self.timeout,
            "timeout_seconds": self.timeout_seconds,
            "auth": self.auth,
            "throttle": self.throttle,
            "item_failure": self.item_failure,
            "fail_skus": sorted(self.fail_skus),
            "webhook_drop": self.webhook_drop,
            "outage_remaining": max(0.0, round(self.outage_until - self.clock(), 3)),
            "endpoints": sorted(self.endpoints),
        }


def _rolls(rng: random.Random, share: float) -> bool:
    # Not security relevant: a reproducible stream when a seed is set.
    return share > 0.0 and (share >= 1.0 or rng.random() < share)
