"""Every write to catalog prices and stock goes through this package.

- stock: one stock movement (adjust, count, transfer, a form's operation) and
  the SKU / location lookups the API and imports address stock by;
- reservations: units held until paid, cancelled or expired;
- catalog: products, variants and their prices, locations;
- bulk: many movements or cycle counts in one transaction, all or none;
- catalog_bulk: many products and variants created at once, all or none;
- _ledger: the value types and rules the stock and bulk writes share.

Callers import from the package (``from inventory import services``); the
modules are how the code is arranged, not part of the interface.
"""

from ._ledger import Deltas, MovementResult
from .bulk import CountSpec, MovementSpec, stock_counts_apply_bulk, stock_movements_apply_bulk
from .catalog import (
    PRICE_FIELDS,
    location_save,
    product_delete,
    product_save,
    variant_delete,
    variant_save,
    variant_set_price_fields,
    variant_set_prices,
)
from .catalog_bulk import ProductSpec, VariantSpec, products_create_bulk
from .reservations import (
    reservation_commit,
    reservation_create,
    reservation_expire_due,
    reservation_release,
)
from .stock import (
    TransferResult,
    location_get_by_code,
    stock_adjust,
    stock_count,
    stock_movement_apply,
    stock_movement_apply_for_sku,
    stock_operation_apply,
    stock_transfer,
    variant_get_by_sku,
)

__all__ = [
    "PRICE_FIELDS",
    "CountSpec",
    "Deltas",
    "MovementResult",
    "MovementSpec",
    "ProductSpec",
    "TransferResult",
    "VariantSpec",
    "location_get_by_code",
    "location_save",
    "product_delete",
    "product_save",
    "products_create_bulk",
    "reservation_commit",
    "reservation_create",
    "reservation_expire_due",
    "reservation_release",
    "stock_adjust",
    "stock_count",
    "stock_counts_apply_bulk",
    "stock_movement_apply",
    "stock_movement_apply_for_sku",
    "stock_movements_apply_bulk",
    "stock_operation_apply",
    "stock_transfer",
    "variant_delete",
    "variant_get_by_sku",
    "variant_save",
    "variant_set_price_fields",
    "variant_set_prices",
]
