"""What admin forms post, for tests that save through the admin."""

from __future__ import annotations

from typing import Any


def channel_form_data(channel: Any, **changes: Any) -> dict:
    """What the channel change page posts when saved unchanged, plus ``changes``."""
    data = {
        "name": channel.name,
        "slug": channel.slug,
        "platform": channel.platform,
        "base_url": channel.base_url,
        "currency": "USD",
        "is_enabled": "on",
        "platform_config": "{}",
        "inventory_threshold": 1,
        "low_stock_level": 5,
        "min_push_interval_seconds": 0,
        "max_push_interval_seconds": 300,
        "poll_interval_seconds": 300,
        "rate_limit_per_second": "2",
        "reservation_minutes": 60,
        "returns_restock": "damaged",
        "retry_max_attempts": 50,
        "retry_max_hours": 24,
        "reconcile_interval_minutes": 240,
        "drift_quantity_threshold": 1,
        "drift_price_amount": "0.01",
        "drift_price_percent": "0",
        "conflict_policy": "trust_pimsync",
        "public_url": "",
    }
    for inline in ("channel_locations", "alert_settings", "listings", "listings-2"):
        data[f"{inline}-TOTAL_FORMS"] = 0
        data[f"{inline}-INITIAL_FORMS"] = 0
    return data | changes
