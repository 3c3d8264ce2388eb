"""Helpers for catalog import tests: a pimsync channel on a sandbox platform."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from channels_app.models import Channel, ChannelLocation
from inventory.models import Location
from pimsync.demo import SANDBOX_CHANNELS
from sandbox.server import RunningSandbox


def sandbox_channel(sandbox: RunningSandbox, platform: str, **fields: Any) -> Channel:
    """A channel on the sandbox's ``platform`` with the demo's credentials and settings,
    fed by one location, with a generous rate (tests raise the sandbox's limits)."""
    spec = next(s for s in SANDBOX_CHANNELS if s["platform"] == platform)
    channel = Channel.objects.create(
        name=spec["name"],
        slug=fields.pop("slug", spec["slug"]),
        platform=platform,
        base_url=sandbox.platform_url(platform),
        credentials=spec["credentials"],
        platform_config=spec["platform_config"],
        rate_limit_per_second=Decimal("1000"),
        **fields,
    )
    location, _ = Location.objects.get_or_create(code="main", defaults={"name": "Main"})
    ChannelLocation.objects.create(channel=channel, location=location)
    return channel
