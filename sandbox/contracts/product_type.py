"""Amazon listing attributes checked against a product type definition.

A product type definition (amazon_product-type-PRODUCT.json: Amazon's PRODUCT
definition trimmed to the attributes pimsync sends) is a JSON Schema (2020-12
vocabulary, ``$defs``) of the ``attributes`` object of putListingsItem, of feed
messages and of each attribute a patch replaces. Amazon answers a listing that
breaks it with status INVALID and an ERROR issue per problem; so does the sandbox.
Amazon's own keywords (``selectors``, ``editable``, ``enumNames``, ``maxUniqueItems``
…) are not JSON Schema and are ignored here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator

# What putListingsItem's requirements leave out of the check: an offer-only listing
# need not carry the product's attributes.
OFFER_ONLY = "LISTING_OFFER_ONLY"


@dataclass(frozen=True)
class AttributeProblem:
    attribute: str  # "" when about the listing as a whole
    message: str


class ProductType:
    def __init__(self, definition: Mapping[str, Any]) -> None:
        self.definition = {k: v for k, v in definition.items() if k != "x-pimsync"}
        self.properties: Mapping[str, Any] = self.definition.get("properties", {})
        self._whole = Draft202012Validator(self.definition)

    def listing_problems(
        self, attributes: Mapping[str, Any], requirements: str
    ) -> list[AttributeProblem]:
        """Everything wrong with a whole listing's attributes."""
        if requirements == OFFER_ONLY:
            return [
                problem
                for name, value in attributes.items()
                for problem in self.attribute_problems(name, value)
            ]
        return [
            AttributeProblem(_attribute_of(error.absolute_path, error.message), error.message)
            for error in sorted(self._whole.iter_errors(dict(attributes)), key=lambda e: e.path)
        ]

    def attribute_problems(self, name: str, value: Any) -> list[AttributeProblem]:
        """What is wrong with one attribute's value (a patch)."""
        schema = self.properties.get(name)
        if schema is None:
            return [AttributeProblem(name, f"{name} is not an attribute of this product type")]
        validator = Draft202012Validator({"$defs": self.definition.get("$defs", {}), **schema})
        return [AttributeProblem(name, error.message) for error in validator.iter_errors(value)]


def _attribute_of(path: Any, message: str) -> str:
    parts = list(path)
    if parts:
        return str(parts[0])
    # "'brand' is a required property" names the attribute in its message
    return message.split("'")[1] if message.count("'") >= 2 else ""


@lru_cache(maxsize=4)
def load_product_type(path: str) -> ProductType:
    with open(path, encoding="utf-8") as handle:
        return ProductType(json.load(handle))
