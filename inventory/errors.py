"""Errors raised by inventory services; each carries a message fit for a person."""

from __future__ import annotations


class InventoryError(Exception):
    code = "inventory_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownSku(InventoryError):
    code = "unknown_sku"


class UnknownLocation(InventoryError):
    code = "unknown_location"


class InvalidMovement(InventoryError):
    code = "invalid_movement"


class InsufficientStock(InventoryError):
    """Names every failing line, so a caller can show them all at once."""

    code = "insufficient_stock"

    def __init__(self, shortfalls: list[str]) -> None:
        super().__init__("Not enough stock: " + "; ".join(shortfalls))
        self.shortfalls = shortfalls


class IdempotencyConflict(InventoryError):
    """The key was already used for a different change."""

    code = "idempotency_conflict"


class InvalidTransition(InventoryError):
    code = "invalid_transition"


class BulkMovementRejected(InventoryError):
    """A bulk request with failing rows: nothing was applied; every failing row is named."""

    code = "invalid_rows"

    def __init__(self, row_errors: dict[int, list[str]]) -> None:
        first = min(row_errors)
        super().__init__(
            f"{len(row_errors)} row(s) rejected, nothing applied; row {first}: "
            f"{row_errors[first][0]}"
        )
        self.row_errors = row_errors
