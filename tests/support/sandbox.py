"""Helpers for tests that talk to the channel sandbox: credentials it accepts,
connector configs pointing at it, its control API, and a clock to drive it.

The fixtures (``sandbox``, ``webhook_receiver``) live in tests/plugins/sandbox.py
and reach every test by name.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from channels_app.connectors.base import ChannelConfig, ListingRef
from sandbox.platform import SandboxPlatform
from sandbox.store import ID_KEYS

SHOPIFY_TOKEN = "shpat_sandbox"
SHOPIFY_LOCATION = "gid://shopify/Location/1"
WOO_KEY, WOO_SECRET = "ck_sandbox", "cs_sandbox"
MAGENTO_TOKEN = "sandbox-magento-token"
WEBHOOK_SECRET = "whsec-test-secret"

GRAPHQL = "/shopify/admin/api/2026-01/graphql.json"


class FakeClock:
    """A monotonic clock that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _config(base_url: str, overrides: dict[str, Any], **defaults: Any) -> ChannelConfig:
    """A connector config for the sandbox: short timeouts, ``overrides`` win."""
    values = {"base_url": base_url, "connect_timeout": 2.0, "read_timeout": 5.0, **defaults}
    return ChannelConfig(**(values | overrides))


def shopify_config(base_url: str, **overrides: Any) -> ChannelConfig:
    return _config(
        base_url,
        overrides,
        channel_id=1,
        platform="shopify",
        credentials={"access_token": SHOPIFY_TOKEN},
        webhook_secret=WEBHOOK_SECRET,
        platform_config={"location_id": SHOPIFY_LOCATION},
    )


def woocommerce_config(base_url: str, **overrides: Any) -> ChannelConfig:
    return _config(
        base_url,
        overrides,
        channel_id=2,
        platform="woocommerce",
        credentials={"consumer_key": WOO_KEY, "consumer_secret": WOO_SECRET},
        webhook_secret=WEBHOOK_SECRET,
    )


def magento_config(base_url: str, **overrides: Any) -> ChannelConfig:
    """A Magento channel on the sandbox; ``platform_config`` keys merge into the defaults."""
    platform_config = {"bulk_poll_seconds": 0.05, **overrides.pop("platform_config", {})}
    return _config(
        base_url,
        overrides,
        channel_id=5,
        platform="magento",
        credentials={"access_token": MAGENTO_TOKEN},
        platform_config=platform_config,
    )


EBAY_TOKEN = "sandbox-ebay-token"
AMAZON_TOKEN = "sandbox-amazon-token"
AMAZON_SELLER = "A2SANDBOXSELLER"


def _loopback_config(
    channel_id: int, platform: str, base_url: str, token: str, platform_config: dict[str, Any]
) -> ChannelConfig:
    return ChannelConfig(
        channel_id=channel_id,
        platform=platform,
        base_url=base_url,
        credentials={"access_token": token},
        platform_config=platform_config,
        connect_timeout=2.0,
        read_timeout=5.0,
    )


def ebay_config(base_url: str, **platform_config: Any) -> ChannelConfig:
    defaults = {"marketplace_id": "EBAY_US", "rate_limit_per_second": 0}
    return _loopback_config(3, "ebay", base_url, EBAY_TOKEN, defaults | platform_config)


def amazon_config(base_url: str, **platform_config: Any) -> ChannelConfig:
    defaults = {
        "seller_id": AMAZON_SELLER,
        "marketplace_id": "ATVPDKIKX0DER",
        "pacing": False,
        "feed_poll_seconds": 0.05,
    }
    return _loopback_config(4, "amazon", base_url, AMAZON_TOKEN, defaults | platform_config)


def seed_listings(platform: SandboxPlatform, rows: Sequence[Mapping[str, Any]]) -> list[ListingRef]:
    """Seed the sandbox catalog and return the ListingRefs pimsync would hold."""
    items = platform.seed(rows)
    return [
        ListingRef(sku=item.sku, **{k: v for k, v in item.ids.items() if k in ID_KEYS})
        for item in items
    ]


def control(base_url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Call the sandbox control API; returns (status, parsed JSON)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback test server
        base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def graphql(
    base_url: str, query: str, variables: dict[str, Any] | None = None
) -> requests.Response:
    """One Shopify Admin GraphQL call to the sandbox with the accepted token."""
    return requests.post(
        base_url + GRAPHQL,
        json={"query": query, "variables": variables or {}},
        headers={"X-Shopify-Access-Token": SHOPIFY_TOKEN},
        timeout=5,
    )


def woo(base_url: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    """One WooCommerce REST v3 call to the sandbox with the accepted keys."""
    return requests.request(
        method,
        f"{base_url}/woocommerce/wp-json/wc/v3/{path}",
        auth=(WOO_KEY, WOO_SECRET),
        timeout=5,
        **kwargs,
    )


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    path: str = ""


@dataclass
class WebhookReceiver:
    """A tiny HTTP endpoint that records what the sandbox delivers."""

    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 200
    arrived: threading.Event = field(default_factory=threading.Event)


def oauth_config(sandbox: Any, platform: str, **overrides: Any) -> ChannelConfig:
    """A ChannelConfig with the refresh-token credentials the sandbox's platform
    accepts (eBay, Amazon; Login with Amazon on the sandbox's path), no static token.
    Credential keys among ``overrides`` replace single credentials."""
    credentials = {
        key: value
        for key, value in sandbox.platform(platform).default_credentials.items()
        if key != "access_token"
    }
    for key in ("client_id", "client_secret", "refresh_token"):
        if key in overrides:
            credentials[key] = overrides.pop(key)
    platform_config: dict[str, Any] = (
        {"token_url": "/auth/o2/token"} if platform == "amazon" else {}
    )
    platform_config.update(overrides.pop("platform_config", {}))
    values: dict[str, Any] = {
        "channel_id": 3 if platform == "ebay" else 4,
        "platform": platform,
        "base_url": sandbox.platform_url(platform),
        "credentials": credentials,
        "platform_config": platform_config,
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
    }
    values.update(overrides)
    return ChannelConfig(**values)


def demo_channel(sandbox: Any, platform: str, *, location_code: str, location_name: str) -> Any:
    """A channel configured as the demo's for ``platform`` (credentials, platform_config;
    eBay and Amazon with refresh tokens), pointing at ``sandbox``, fed by a new location
    and unthrottled on pimsync's side. Returns (channel, location)."""
    from decimal import Decimal

    from channels_app.models import Channel, ChannelLocation
    from inventory.models import Location
    from pimsync.demo import SANDBOX_CHANNELS

    spec = next(s for s in SANDBOX_CHANNELS if s["platform"] == platform)
    location = Location.objects.create(code=location_code, name=location_name)
    channel = Channel.objects.create(
        name=spec["name"],
        slug=spec["slug"],
        platform=platform,
        base_url=sandbox.platform_url(platform),
        credentials=spec["credentials"],
        platform_config=spec["platform_config"],
        rate_limit_per_second=Decimal("1000"),
    )
    ChannelLocation.objects.create(channel=channel, location=location)
    return channel, location
