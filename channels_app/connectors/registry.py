"""Platform name -> connector class, imported lazily by dotted path.

Lazy imports keep one platform's import error (or a missing optional module)
from breaking every other channel, and keep start-up cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, cast

from .base import ChannelConfig, Connector

CONNECTORS: dict[str, str] = {
    "shopify": "channels_app.connectors.shopify.ShopifyConnector",
    "woocommerce": "channels_app.connectors.woocommerce.WooCommerceConnector",
    "ebay": "channels_app.connectors.ebay.EbayConnector",
    "amazon": "channels_app.connectors.amazon.AmazonConnector",
    "magento": "channels_app.connectors.magento.MagentoConnector",
}


# Platforms whose connector module checks its channel settings (functions
# platform_config_problems / credentials_problems returning messages).
SETTINGS_CHECKS: dict[str, str] = {
    "magento": "channels_app.connectors.magento",
    "shopify": "channels_app.connectors.shopify",
}


class UnknownPlatformError(LookupError):
    """No connector is registered for the platform."""


def connector_class(platform: str) -> type[Connector]:
    """The connector class for ``platform`` (UnknownPlatformError if none)."""
    try:
        dotted = CONNECTORS[platform]
    except KeyError:
        known = ", ".join(sorted(CONNECTORS))
        raise UnknownPlatformError(f"no connector for {platform!r} (known: {known})") from None
    module_name, _, class_name = dotted.rpartition(".")
    return cast("type[Connector]", getattr(importlib.import_module(module_name), class_name))


def get_connector(config: ChannelConfig) -> Connector:
    """A new connector for the channel; instances are cheap (one requests.Session)."""
    return connector_class(config.platform)(config)


def platforms() -> list[str]:
    return sorted(CONNECTORS)


def _settings_check(platform: str, name: str) -> Callable[[Any], list[str]] | None:
    module = SETTINGS_CHECKS.get(platform)
    if module is None:
        return None
    return cast("Callable[[Any], list[str]]", getattr(importlib.import_module(module), name))


def platform_config_problems(platform: str, platform_config: Any) -> list[str]:
    """What is wrong with a channel's platform_config for its platform ([] when nothing)."""
    check = _settings_check(platform, "platform_config_problems")
    return check(platform_config) if check else []


def credentials_problems(platform: str, credentials: Any) -> list[str]:
    """What is missing from a channel's credentials for its platform ([] when nothing)."""
    check = _settings_check(platform, "credentials_problems")
    return check(credentials) if check else []
