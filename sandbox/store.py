"""A platform's own data: the catalog (sku -> price, quantity, ids) and its orders."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from .http import JsonDict, iso, money, parse_iso, utcnow


@dataclass
class CatalogItem:
    sku: str
    ids: dict[str, str]
    price: Decimal
    quantity: int
    compare_at_price: Decimal | None = None
    updated_at: datetime = field(default_factory=utcnow)
    # What the platform shows of this variant beyond price and quantity: "options"
    # ({name: value}), "barcode", "title" (set by the product-creating operations).
    content: dict[str, Any] = field(default_factory=dict)
    # What a merchant sees of the item (catalog import reads it; pushes never change it).
    title: str = ""  # the variant's own title, e.g. "M / Blue"
    product_title: str = ""  # the product's title, e.g. "Trail Sock"
    barcode: str = ""  # GTIN / EAN / UPC / ISBN digits
    options: dict[str, str] = field(default_factory=dict)  # {"Size": "M"}
    image: str = ""  # an image URL
    group: str = ""  # the seed's group: the product (variation family) it belongs to
    created_at: datetime = field(default_factory=utcnow)

    def content_json(self) -> JsonDict:
        """The descriptive fields (kept in the state file, given by seeds)."""
        return {
            "title": self.title,
            "product_title": self.product_title,
            "barcode": self.barcode,
            "options": dict(self.options),
            "image": self.image,
            "group": self.group,
            "created_at": self.created_at.isoformat(),
        }

    @property
    def display_title(self) -> str:
        """The title a store front shows: product title and options, else the SKU."""
        return self.product_title or self.title or self.sku

    def to_json(self) -> JsonDict:
        return {
            "sku": self.sku,
            **self.ids,
            "price": money(self.price),
            "compare_at_price": money(self.compare_at_price),
            "quantity": self.quantity,
            "updated_at": iso(self.updated_at),
        }


ID_KEYS = ("product_id", "variant_id", "inventory_item_id", "offer_id", "listing_sku")
CONTENT_KEYS = ("title", "product_title", "barcode", "image", "group")


def content_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The descriptive fields of a seed or state row (absent ones left out)."""
    found: dict[str, Any] = {k: str(row[k]) for k in CONTENT_KEYS if row.get(k) not in (None, "")}
    options = row.get("options")
    if isinstance(options, Mapping):
        found["options"] = {str(k): str(v) for k, v in options.items()}
    return found


class Catalog:
    """sku -> CatalogItem with id indexes; guarded by the platform's lock."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._items: dict[str, CatalogItem] = {}
        self._by_id: dict[tuple[str, str], str] = {}

    def put(self, item: CatalogItem) -> None:
        with self._lock:
            old = self._items.get(item.sku)
            if old is not None:
                for key, value in old.ids.items():
                    self._by_id.pop((key, value), None)
            self._items[item.sku] = item
            for key, value in item.ids.items():
                if value:
                    self._by_id[(key, value)] = item.sku

    def get(self, sku: str) -> CatalogItem | None:
        with self._lock:
            return self._items.get(sku)

    def find_by_id(self, key: str, value: str) -> CatalogItem | None:
        with self._lock:
            sku = self._by_id.get((key, str(value)))
            return self._items.get(sku) if sku is not None else None

    def items(self) -> list[CatalogItem]:
        with self._lock:
            return list(self._items.values())

    def set_values(
        self,
        sku: str,
        *,
        price: Decimal | None = None,
        quantity: int | None = None,
        compare_at_price: Decimal | None = None,
        clear_compare_at: bool = False,
    ) -> CatalogItem:
        """Change price and/or quantity of one SKU (KeyError if unknown)."""
        with self._lock:
            item = self._items[sku]
            if price is not None:
                item.price = price
            if quantity is not None:
                item.quantity = quantity
            if compare_at_price is not None or clear_compare_at:
                item.compare_at_price = compare_at_price
            item.updated_at = utcnow()
            return item

    def remove(self, sku: str) -> None:
        with self._lock:
            item = self._items.pop(sku, None)
            if item is not None:
                for key, value in item.ids.items():
                    self._by_id.pop((key, value), None)

    def adjust_quantity(self, sku: str, delta: int) -> None:
        with self._lock:
            item = self._items.get(sku)
            if item is not None:
                item.quantity += delta
                item.updated_at = utcnow()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._by_id.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


ORDER_STATUSES = ("pending", "paid", "cancelled", "fulfilled", "refunded")
# Which normalised status each transition leads to, and from which states it is allowed.
ORDER_TRANSITIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pay": ("paid", ("pending",)),
    "cancel": ("cancelled", ("pending", "paid")),
    "fulfil": ("fulfilled", ("paid", "pending")),
    "refund": ("refunded", ("paid", "fulfilled")),
}


@dataclass
class OrderLine:
    line_id: str
    sku: str
    quantity: int
    price: Decimal
    ids: dict[str, str] = field(default_factory=dict)


@dataclass
class SandboxOrder:
    id: str
    number: int
    status: str  # normalised: pending | paid | cancelled | fulfilled | refunded
    lines: list[OrderLine]
    created_at: datetime
    updated_at: datetime
    currency: str = "USD"
    email: str = ""
    phone: str = ""
    cancel_reason: str = ""
    tracking_number: str = ""
    carrier: str = ""
    stock_adjusted: bool = True  # whether creating it took units from the catalog

    @property
    def total(self) -> Decimal:
        return sum((line.price * line.quantity for line in self.lines), Decimal("0"))

    def to_state(self) -> JsonDict:
        return {
            "id": self.id,
            "number": self.number,
            "status": self.status,
            "lines": [
                {
                    "line_id": ln.line_id,
                    "sku": ln.sku,
                    "quantity": ln.quantity,
                    "price": str(ln.price),
                    "ids": ln.ids,
                }
                for ln in self.lines
            ],
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "currency": self.currency,
            "email": self.email,
            "phone": self.phone,
            "cancel_reason": self.cancel_reason,
            "tracking_number": self.tracking_number,
            "carrier": self.carrier,
            "stock_adjusted": self.stock_adjusted,
        }

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> SandboxOrder:
        lines = [
            OrderLine(
                line_id=str(ln["line_id"]),
                sku=str(ln["sku"]),
                quantity=int(ln["quantity"]),
                price=Decimal(str(ln["price"])),
                ids=dict(ln.get("ids", {})),
            )
            for ln in data["lines"]
        ]
        return cls(
            id=str(data["id"]),
            number=int(data["number"]),
            status=str(data["status"]),
            lines=lines,
            created_at=parse_iso(data["created_at"]),
            updated_at=parse_iso(data["updated_at"]),
            currency=data.get("currency", "USD"),
            email=data.get("email", ""),
            phone=data.get("phone", ""),
            cancel_reason=data.get("cancel_reason", ""),
            tracking_number=data.get("tracking_number", ""),
            carrier=data.get("carrier", ""),
            stock_adjusted=bool(data.get("stock_adjusted", True)),
        )


class OrderStore:
    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._orders: dict[str, SandboxOrder] = {}

    def add(self, order: SandboxOrder) -> None:
        with self._lock:
            self._orders[order.id] = order

    def get(self, order_id: str) -> SandboxOrder | None:
        with self._lock:
            return self._orders.get(str(order_id))

    def all(self) -> list[SandboxOrder]:
        with self._lock:
            return sorted(self._orders.values(), key=lambda o: (o.updated_at, int_or_zero(o.id)))

    def updated_since(self, since: datetime | None) -> list[SandboxOrder]:
        """Orders with updated_at strictly after ``since``, oldest first (stable by id)."""
        return [o for o in self.all() if since is None or o.updated_at > since]

    def clear(self) -> None:
        with self._lock:
            self._orders.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._orders)


def int_or_zero(value: str) -> int:
    return int(value) if value.isdigit() else 0
