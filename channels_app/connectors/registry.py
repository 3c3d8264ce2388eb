"""Platform name -> connector class, imported lazily by dotted path.

Lazy imports keep one platform's import error (or a missing optional module)
from breaking every other channel, and keep start-up cheap.
"""

from __future__ import annotations

import importlib
from typing import cast

from .base import ChannelConfig, Connector

CONNECTORS: dict[str, str] = {
    "shopify": "channels_app.connectors.shopify.ShopifyConnector",
    "woocommerce": "channels_app.connectors.woocommerce.WooCommerceConnector",
    "ebay": "channels_app.connectors.ebay.EbayConnector",
    "amazon": "channels_app.connectors.amazon.AmazonConnector",
    "magento": "channels_app.connectors.magento.MagentoConnector",
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
