"""A recording stand-in connector for the push engine's tests."""

from dataclasses import dataclass, field

from channels_app.connectors.base import ItemResult
from channels_app.connectors.errors import FailureKind


@dataclass
class FakeConnector:
    """Records every call; `fail` decides per (kind, sku) what the channel answers."""

    platform: str = "woocommerce"
    max_price_batch: int = 100
    max_quantity_batch: int = 100
    feed_threshold: int = 200
    calls: list = field(default_factory=list)
    fail: dict = field(default_factory=dict)  # (kind, sku) or kind -> ItemResult factory
    raise_exc: Exception | None = None
    on_call: object = None
    live_quantity: dict = field(default_factory=dict)  # sku -> what read_listings reports
    sent_expected: list = field(default_factory=list)
    # sku -> the quantity the channel took last (what it shows unless live_quantity says)
    shown: dict = field(default_factory=dict)
    reads: int = 0

    def _answer(self, kind, items, key):
        if self.on_call:
            self.on_call(kind, items)
        self.calls.append((kind, [(i.listing.sku, getattr(i, key)) for i in items]))
        if self.raise_exc:
            raise self.raise_exc
        out = []
        for i in items:
            rule = self.fail.get((kind, i.listing.sku)) or self.fail.get(kind)
            out.append(rule(i.listing.sku) if rule else ItemResult(i.listing.sku, FailureKind.OK))
        return out

    def push_prices(self, items):
        return self._answer("price", items, "price")

    def push_quantities(self, items):
        self.sent_expected += [(i.listing.sku, i.expected_quantity) for i in items]
        results = self._answer("quantity", items, "quantity")
        for item, result in zip(items, results, strict=True):
            if result.ok:
                self.shown[item.listing.sku] = item.quantity
                self.live_quantity.pop(item.listing.sku, None)
        return results

    def read_listings(self, listings):
        from channels_app.connectors.base import ListingState

        self.reads += 1
        return [
            ListingState(ref.sku, None, self.live_quantity.get(ref.sku, self.shown.get(ref.sku)))
            for ref in listings
        ]


def failing(kind: FailureKind, code: str = "503", retry_after: float | None = None):
    return lambda sku: ItemResult(sku, kind, code, f"{code} from channel", retry_after=retry_after)
