"""The platforms' published API definitions the sandbox validates requests against.

Copies trimmed to the operations pimsync uses, descriptions removed, each with
its source noted in the file (``x-pimsync`` in the JSON ones, a header comment
in the SDL); ``python scripts/check_contracts.py`` checks them against the
official files (/work/shared/reference/specs/, see its SOURCES.md).

* ``shopify_2026-01.graphql`` - Admin GraphQL API 2026-01 (graphql_contract.py).
* ``ebay_sell_inventory_v1.json``, ``ebay_sell_fulfillment_v1.json`` - OpenAPI 3.
* ``amazon_*.json`` - SP-API Swagger 2.0 models (listings items, feeds, orders
  2026-01-01, orders v0 for confirmShipment), the JSON_LISTINGS_FEED schema and the
  PRODUCT product type definition (the listing attributes pimsync sends;
  product_type.py checks a listing's or a patch's attributes against it).
* ``woocommerce_v3.json`` - WooCommerce publishes no OpenAPI document: the routes,
  parameters and fields pimsync uses, written from the REST API v3 reference and
  WooCommerce's source (each entry says where it comes from).

``openapi_contract.py`` validates paths, query parameters and JSON bodies
(jsonschema, $refs resolved) and stays stricter than the platforms in one way:
an object schema that lists its properties accepts no others, so a field or
parameter pimsync misspells is refused instead of silently ignored.
"""

from __future__ import annotations

from pathlib import Path

CONTRACTS_DIR = Path(__file__).resolve().parent


def contract_path(name: str) -> str:
    return str(CONTRACTS_DIR / name)
