"""Magento's ``searchCriteria`` query string and ``fields`` response filter.

``searchCriteria[filter_groups][0][filters][0][field]=sku&...[value]=A,B&...[condition_type]=in``:
filters inside a group are ORed, groups are ANDed; ``sortOrders`` (field,
direction), ``pageSize`` and ``currentPage``. Magento reads snake_case and
camelCase alike (``filterGroups``, ``conditionType``). A page number past the
last page answers the last page again, as Magento's collections do.

``fields=items[sku,price],total_count`` keeps only the named keys, nested with
brackets.

Every problem raises :class:`SearchError` carrying Magento's message and its
parameters; the platform renders it in its error shape.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from .http import JsonDict

KEY_RE = re.compile(r"searchCriteria((?:\[[^\]]*\])+)$")
PART_RE = re.compile(r"\[([^\]]*)\]")
CONDITIONS = frozenset(
    {"eq", "neq", "in", "nin", "gt", "gteq", "lt", "lteq", "like", "null", "notnull"}
)
CRITERIA_KEYS = {
    "filter_groups": "filter_groups",
    "filterGroups": "filter_groups",
    "sort_orders": "sort_orders",
    "sortOrders": "sort_orders",
    "page_size": "page_size",
    "pageSize": "page_size",
    "current_page": "current_page",
    "currentPage": "current_page",
}
FILTER_KEYS = {
    "field": "field",
    "value": "value",
    "condition_type": "condition_type",
    "conditionType": "condition_type",
}
SORT_KEYS = {"field": "field", "direction": "direction"}


class SearchError(Exception):
    """A search Magento refuses: its message template and parameters."""

    def __init__(self, message: str, parameters: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.parameters = dict(parameters or {})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head[:1].upper() + head[1:] + "".join(p.title() for p in rest)


def unsupported(name: str) -> SearchError:
    return SearchError(
        '"%fieldName" is not supported. Correct the field name and try again.',
        {"fieldName": _camel(name)},
    )


@dataclass(frozen=True)
class Filter:
    field: str
    value: str
    condition: str


@dataclass
class Criteria:
    groups: list[list[Filter]] = field(default_factory=list)
    sort: list[tuple[str, str]] = field(default_factory=list)
    page_size: int | None = None
    current_page: int = 1

    def echo(self) -> JsonDict:
        """The ``search_criteria`` Magento answers with."""
        data: JsonDict = {
            "filter_groups": [
                {
                    "filters": [
                        {"field": f.field, "value": f.value, "condition_type": f.condition}
                        for f in group
                    ]
                }
                for group in self.groups
            ]
        }
        if self.sort:
            data["sort_orders"] = [{"field": f, "direction": d} for f, d in self.sort]
        if self.page_size is not None:
            data["page_size"] = self.page_size
        data["current_page"] = self.current_page
        return data


def _integer(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SearchError(
            'The "%value" value\'s type is invalid. The "int" type was expected. Verify and '
            "try again.",
            {"value": raw},
        ) from None


def parse_criteria(query: Mapping[str, list[str]]) -> Criteria:
    """The searchCriteria of a query string (other parameters are ignored)."""
    groups: dict[int, dict[int, dict[str, str]]] = {}
    sorts: dict[int, dict[str, str]] = {}
    criteria = Criteria()
    for key, values in query.items():
        found = KEY_RE.fullmatch(key)
        if found is None:
            if key.startswith("searchCriteria"):
                raise unsupported(key)
            continue
        parts = PART_RE.findall(found.group(1))
        top = CRITERIA_KEYS.get(parts[0])
        if top is None:
            raise unsupported(parts[0])
        value = values[-1]
        if top in ("page_size", "current_page") and len(parts) == 1:
            number = _integer(parts[0], value)
            if top == "page_size":
                criteria.page_size = number
            else:
                criteria.current_page = max(1, number)
        elif top == "filter_groups" and len(parts) == 5 and parts[2] == "filters":
            name = FILTER_KEYS.get(parts[4])
            if name is None:
                raise unsupported(parts[4])
            group = groups.setdefault(_integer(parts[0], parts[1]), {})
            group.setdefault(_integer(parts[0], parts[3]), {})[name] = value
        elif top == "sort_orders" and len(parts) == 3:
            name = SORT_KEYS.get(parts[2])
            if name is None:
                raise unsupported(parts[2])
            sorts.setdefault(_integer(parts[0], parts[1]), {})[name] = value
        else:
            raise unsupported(parts[-1])
    for index in sorted(groups):
        filters = []
        for position in sorted(groups[index]):
            spec = groups[index][position]
            if "field" not in spec:
                raise SearchError(
                    '"%fieldName" is required. Enter and try again.', {"fieldName": "field"}
                )
            condition = spec.get("condition_type", "eq")
            if condition not in CONDITIONS:
                raise SearchError('Invalid condition type "%1"', {"1": condition})
            filters.append(Filter(spec["field"], spec.get("value", ""), condition))
        criteria.groups.append(filters)
    for index in sorted(sorts):
        spec = sorts[index]
        direction = spec.get("direction", "ASC").upper()
        if "field" not in spec or direction not in ("ASC", "DESC"):
            raise SearchError("Invalid sort order %1", {"1": str(spec)})
        criteria.sort.append((spec["field"], direction))
    return criteria


def _comparable(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    return str(value)


def _coerce(sample: Any, raw: str) -> Any:
    """A filter value typed like the field's values (numbers compare as numbers)."""
    if isinstance(sample, int | float | Decimal) and not isinstance(sample, bool):
        try:
            return Decimal(raw)
        except InvalidOperation:
            return raw
    return raw


def _predicate(flt: Filter) -> Callable[[Mapping[str, Any]], bool]:
    """The filter as a test of one row (an ``in`` list is parsed once, not per row)."""
    if flt.condition in ("null", "notnull"):
        wants_null = flt.condition == "null"
        return lambda row: (row.get(flt.field) is None) == wants_null
    if flt.condition in ("in", "nin"):
        parts = [part.strip() for part in flt.value.split(",")]
        as_text = set(parts)
        as_number = set()
        for part in parts:
            try:
                as_number.add(Decimal(part))
            except InvalidOperation:
                continue
        inside = flt.condition == "in"

        def member(row: Mapping[str, Any]) -> bool:
            value = row.get(flt.field)
            if value is None:
                return False
            left = _comparable(value)
            found = left in (as_number if isinstance(left, Decimal) else as_text)
            return found == inside

        return member
    if flt.condition == "like":
        pattern = re.compile(
            re.escape(flt.value).replace("%", ".*").replace("_", "."), re.IGNORECASE
        )
        return lambda row: (
            row.get(flt.field) is not None and bool(pattern.fullmatch(str(row.get(flt.field))))
        )

    def compare(row: Mapping[str, Any]) -> bool:
        value = row.get(flt.field)
        if value is None:
            return False
        left, right = _comparable(value), _coerce(value, flt.value)
        try:
            return {
                "eq": left == right,
                "neq": left != right,
                "gt": left > right,
                "gteq": left >= right,
                "lt": left < right,
                "lteq": left <= right,
            }[flt.condition]
        except TypeError:
            return False

    return compare


def _sort_key(value: Any) -> tuple[bool, Any]:
    return (value is None, 0 if value is None else _comparable(value))


def search(
    rows: Sequence[Mapping[str, Any]],
    criteria: Criteria,
    *,
    searchable: frozenset[str],
    max_page_size: int | None = None,
    render: Callable[[Mapping[str, Any]], JsonDict] = dict,
) -> JsonDict:
    """``{items, search_criteria, total_count}`` of the rows that match."""
    for group in criteria.groups:
        for flt in group:
            if flt.field not in searchable:
                raise SearchError("Invalid attribute identifier for filter (%1)", {"1": flt.field})
    for name, _ in criteria.sort:
        if name not in searchable:
            raise SearchError("Invalid attribute identifier for filter (%1)", {"1": name})
    if max_page_size is not None and (criteria.page_size or 0) > max_page_size:
        raise SearchError("Maximum SearchCriteria pageSize is %max", {"max": max_page_size})
    tests = [[_predicate(flt) for flt in group] for group in criteria.groups]
    found = [row for row in rows if all(any(test(row) for test in group) for group in tests)]
    for name, direction in reversed(criteria.sort):
        found.sort(key=lambda row: _sort_key(row.get(name)), reverse=direction == "DESC")
    total = len(found)
    page = found
    if criteria.page_size:
        last = max(1, math.ceil(total / criteria.page_size))
        current = min(criteria.current_page, last)  # past the end: the last page again
        page = found[(current - 1) * criteria.page_size : current * criteria.page_size]
    return {
        "items": [render(row) for row in page],
        "search_criteria": criteria.echo(),
        "total_count": total,
    }


# --------------------------------------------------------------------------- fields


def parse_fields(spec: str) -> dict[str, Any]:
    """``items[sku,price],total_count`` as
    ``{"items": {"sku": {}, "price": {}}, "total_count": {}}``."""
    tree: dict[str, Any] = {}
    stack = [tree]
    name = ""
    for char in spec:
        if char == "[":
            node: dict[str, Any] = {}
            stack[-1][name.strip()] = node
            stack.append(node)
            name = ""
        elif char in ",]":
            if name.strip():
                stack[-1][name.strip()] = {}
            name = ""
            if char == "]":
                if len(stack) == 1:
                    raise SearchError("Incorrect format of request fields: %1", {"1": spec})
                stack.pop()
        else:
            name += char
    if name.strip():
        stack[-1][name.strip()] = {}
    if len(stack) != 1:
        raise SearchError("Incorrect format of request fields: %1", {"1": spec})
    return tree


def apply_fields(data: Any, tree: Mapping[str, Any]) -> Any:
    """Keep the keys the tree names (an empty subtree keeps the whole value)."""
    if not tree:
        return data
    if isinstance(data, list):
        return [apply_fields(item, tree) for item in data]
    if isinstance(data, Mapping):
        return {k: apply_fields(data[k], sub) for k, sub in tree.items() if k in data}
    return data
