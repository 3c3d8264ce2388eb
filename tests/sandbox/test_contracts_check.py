"""scripts/check_contracts.py: the trimmed definitions agree with the official ones, and
any difference is named (sandbox.contracts.trim does the work)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sandbox.contracts import CONTRACTS_DIR
from sandbox.contracts.trim import openapi_differences, sdl_differences, trim_openapi

ROOT = Path(__file__).resolve().parents[2]
KEPT_SDL = (CONTRACTS_DIR / "shopify_2026-01.graphql").read_text()


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_contracts", ROOT / "scripts" / "check_contracts.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------- GraphQL SDL


def test_the_kept_sdl_agrees_with_itself_as_official() -> None:
    assert sdl_differences(KEPT_SDL, KEPT_SDL) == []


@pytest.mark.parametrize(
    ("official_change", "difference"),
    [
        (
            ("  locationId: ID!\n  quantity: Int!\n}", "  locationId: ID!\n  quantity: Float!\n}"),
            "InventoryQuantityInput(quantity:): type Int! here, Float! officially",
        ),
        (
            ("  sku: String\n  variant", "  variant"),
            "LineItem.sku: no such field in the official schema",
        ),
        (
            ("staffNote: String = null", "staffNote: String = null, reasonNote: String!"),
            "Mutation.orderCancel(reasonNote:): required officially, missing from the copy",
        ),
        (
            ("  STAFF\n  OTHER\n}", "  STAFF\n  OTHER\n  MERCHANT\n}"),
            "OrderCancelReason: enum values differ (extra [], missing ['MERCHANT'])",
        ),
        (
            ("allowPartialUpdates: Boolean = false", "allowPartialUpdates: Boolean = true"),
            "Mutation.productVariantsBulkUpdate(allowPartialUpdates:): default false here, "
            "true officially",
        ),
    ],
)
def test_each_kind_of_difference_from_the_official_schema_is_named(
    official_change: tuple[str, str], difference: str
) -> None:
    old, new = official_change
    assert KEPT_SDL.count(old) == 1
    official = KEPT_SDL.replace(old, new)
    assert sdl_differences(KEPT_SDL, official) == [difference]


# ---------------------------------------------------------------------- OpenAPI


def official_document() -> dict[str, Any]:
    return {
        "openapi": "3.0.0",
        "info": {"title": "Shop API", "version": "1.2", "description": "long text"},
        "servers": [{"url": "https://x{basePath}", "variables": {"basePath": {"default": "/v1"}}}],
        "paths": {
            "/item": {
                "post": {
                    "operationId": "createItem",
                    "summary": "Create",
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Item"}}
                        },
                        "required": True,
                    },
                    "responses": {"201": {"description": "Created"}},
                },
                "get": {"operationId": "listItems", "responses": {"200": {"description": "ok"}}},
            }
        },
        "components": {
            "schemas": {
                "Item": {
                    "type": "object",
                    "description": "An item",
                    "properties": {
                        "description": {"type": "string", "description": "shown to buyers"},
                        "price": {"$ref": "#/components/schemas/Amount"},
                    },
                },
                "Amount": {"type": "object", "properties": {"value": {"type": "string"}}},
                "Unused": {"type": "string"},
            }
        },
    }


def test_trimming_keeps_the_operations_listed_and_what_they_reference_without_docs() -> None:
    keep = {"official": "x.json", "operations": ["createItem"]}

    trimmed = trim_openapi(official_document(), keep)

    assert trimmed == {
        "x-pimsync": keep,
        "openapi": "3.0.0",
        "servers": [{"url": "https://x{basePath}", "variables": {"basePath": {"default": "/v1"}}}],
        "info": {"title": "Shop API", "version": "1.2"},
        "paths": {
            "/item": {
                "post": {
                    "operationId": "createItem",
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Item"}}
                        },
                        "required": True,
                    },
                    "responses": {"201": {}},
                }
            }
        },
        "components": {
            "schemas": {
                "Amount": {"type": "object", "properties": {"value": {"type": "string"}}},
                "Item": {
                    "type": "object",
                    # a property called "description" is data, kept; its description is not
                    "properties": {
                        "description": {"type": "string"},
                        "price": {"$ref": "#/components/schemas/Amount"},
                    },
                },
            }
        },
    }
    assert openapi_differences(trimmed, official_document()) == []


def test_a_copy_that_drifted_from_the_official_document_is_reported() -> None:
    keep = {"official": "x.json", "operations": ["createItem"]}
    kept = trim_openapi(official_document(), keep)
    changed = official_document()
    changed["components"]["schemas"]["Amount"]["properties"]["value"]["type"] = "number"
    del changed["paths"]["/item"]["post"]["requestBody"]["required"]

    assert openapi_differences(kept, changed) == [
        "/components/schemas/Amount/properties/value/type: copy has 'string', "
        "official has 'number'",
        "/paths/~1item/post/requestBody/required: kept but not in the official definition",
    ]
    with pytest.raises(ValueError, match="createOrder"):
        trim_openapi(official_document(), {"operations": ["createOrder"]})


# ---------------------------------------------------------------------- the script


def official_copies(specs: Path) -> None:
    """Official files rebuilt from the kept copies (the real ones are 0.7 MB each)."""
    script = load_script()
    for name, official in script.SDL_SOURCES.items():
        (specs / official).parent.mkdir(parents=True, exist_ok=True)
        (specs / official).write_text((CONTRACTS_DIR / name).read_text())
    for path in CONTRACTS_DIR.glob("*.json"):
        kept = json.loads(path.read_text())
        keep = kept.pop("x-pimsync")
        if "rules" in keep:  # a product type keeps its rules by their place in the official
            rules = [{} for _ in range(max(keep["rules"]) + 1)]
            for index, rule in zip(keep["rules"], kept["allOf"], strict=True):
                rules[index] = rule
            kept["allOf"] = rules
        if "official" in keep:
            (specs / keep["official"]).parent.mkdir(parents=True, exist_ok=True)
            (specs / keep["official"]).write_text(json.dumps(kept))


def test_the_script_passes_when_every_copy_agrees_and_names_each_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    official_copies(tmp_path)
    script = load_script()

    assert script.main(["--specs", str(tmp_path)]) == 0
    assert "ebay_sell_fulfillment_v1.json: ok" in capsys.readouterr().out

    fulfillment = tmp_path / "ebay" / "sell_fulfillment_v1_oas3.json"
    document = json.loads(fulfillment.read_text())
    document["components"]["schemas"]["Order"]["properties"].pop("orderId")
    fulfillment.write_text(json.dumps(document))
    shopify = tmp_path / "shopify" / "admin_2026-01.nodesc.graphql"
    shopify.write_text(shopify.read_text().replace("  legacyResourceId: UnsignedInt64!\n", ""))

    assert script.main(["--specs", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert (
        "  /components/schemas/Order/properties/orderId: kept but not in the official definition"
        in out
    )
    assert "  Order.legacyResourceId: no such field in the official schema" in out
    assert "woocommerce_v3.json: hand-written, nothing published to compare with" in out
