"""Check the sandbox's trimmed API definitions against the platforms' published ones.

    python scripts/check_contracts.py [--specs DIR] [--write]

Every file in sandbox/contracts/ that names its official source is compared
with that source (under ``--specs``, default $PIMSYNC_SPECS_DIR or
/work/shared/reference/specs - the folder described by its SOURCES.md):

* ``*.graphql``: every kept type, field, argument, input field, default and
  enum value exists in the official schema with the same type, and nothing the
  official schema requires was left out (sandbox.contracts.trim.sdl_differences).
* ``*.json`` with ``x-pimsync.official``: the copy is exactly the official
  document trimmed to the operations its ``x-pimsync`` block lists (an Amazon
  product type: to its ``attributes`` and ``rules``); ``--write`` regenerates such
  copies (after adding an operation or attribute to the list).
* A product type whose full official definition is not in the specs folder (it
  holds only a subset of Amazon's PRODUCT definition) is checked attribute by
  attribute against that subset (``x-pimsync.subset``); the others are named as
  not checked there, with the upstream file in ``x-pimsync.source``.

WooCommerce publishes no machine-readable definition, so woocommerce_v3.json
(hand-written, with its sources noted inside) is not compared.
Exit status 1 and one line per difference when a copy disagrees.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.contracts import CONTRACTS_DIR  # noqa: E402
from sandbox.contracts.trim import (  # noqa: E402
    json_differences,
    openapi_differences,
    product_type_differences,
    sdl_differences,
    strip_docs,
    trim_json_schema,
    trim_openapi,
    trim_product_type,
)

DEFAULT_SPECS = os.environ.get("PIMSYNC_SPECS_DIR", "/work/shared/reference/specs")
# The trimmed SDL files and the official schema each was cut from.
SDL_SOURCES = {"shopify_2026-01.graphql": "shopify/admin_2026-01.nodesc.graphql"}


def check_file(path: Path, specs: Path, *, write: bool = False) -> list[str]:
    """Differences between one kept copy and its official source ([] when it agrees)."""
    if path.suffix == ".graphql":
        official = SDL_SOURCES.get(path.name)
        if official is None:
            return [f"{path.name}: no official source registered in SDL_SOURCES"]
        return sdl_differences(path.read_text(), (specs / official).read_text())
    kept = json.loads(path.read_text())
    keep = kept.get("x-pimsync") or {}
    if "official" not in keep:
        return []  # hand-written (WooCommerce): nothing published to compare with
    if "attributes" in keep and not (specs / keep["official"]).exists():
        return subset_differences(kept, specs)
    official = json.loads((specs / keep["official"]).read_text())
    if "attributes" in keep:
        expected = trim_product_type(official, keep)
        found = product_type_differences(kept, official)
    elif "operations" in keep:
        expected = trim_openapi(official, keep)
        found = openapi_differences(kept, official)
    else:
        expected = trim_json_schema(official, keep)
        found = json_differences(kept, expected)
    if found and write:
        path.write_text(json.dumps(expected, indent=1, sort_keys=False) + "\n")
        print(f"{path.name}: rewritten from {keep['official']}")
        return []
    return found


def subset_differences(kept: dict, specs: Path) -> list[str]:
    """The kept attributes that the folder's subset of the definition holds, compared
    one by one (the rest cannot be checked here: printed, not failed)."""
    keep = kept["x-pimsync"]
    subset = json.loads((specs / keep["subset"]).read_text())
    found = []
    for name, schema in kept["properties"].items():
        if name in subset.get("properties", {}):
            official = strip_docs({"properties": {name: subset["properties"][name]}})
            found += json_differences({"properties": {name: schema}}, official)
    unchecked = [n for n in kept["properties"] if n not in subset.get("properties", {})]
    print(
        f"  {len(kept['properties']) - len(unchecked)} attribute(s) checked against "
        f"{keep['subset']}; {len(unchecked)} not in this folder's copy (upstream: "
        f"{keep['source']})"
    )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", type=Path, default=Path(DEFAULT_SPECS))
    parser.add_argument("--write", action="store_true", help="regenerate the JSON copies")
    args = parser.parse_args(argv)
    if not args.specs.is_dir():
        print(f"no folder of official definitions at {args.specs} (use --specs)")
        return 2
    failed = False
    for path in sorted(CONTRACTS_DIR.glob("*")):
        if path.suffix not in (".graphql", ".json"):
            continue
        if path.suffix == ".json" and "official" not in json.loads(path.read_text())["x-pimsync"]:
            print(f"{path.name}: hand-written, nothing published to compare with")
            continue
        differences = check_file(path, args.specs, write=args.write)
        status = "ok" if not differences else f"{len(differences)} difference(s)"
        print(f"{path.name}: {status}")
        for line in differences:
            print(f"  {line}")
        failed = failed or bool(differences)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
