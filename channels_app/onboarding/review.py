"""What a person decides about imported catalog items: link them to their variants,
create the missing products in pimsync from the channel's data, ignore them, or
choose a variant where the matcher could not.

Linking creates (or updates) the listings with the channel's ids through the bulk
listing service, so each channel is pushed once. The first push sends pimsync's
values: its price (through the channel's price rule), or, when the person keeps the
channel's prices, the channel's price becomes the listing's price override;
quantities are always pimsync's (the channel is told pimsync's ATP).
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from inventory import services as inventory
from inventory.errors import InventoryError
from inventory.models import Location, Variant

from ..listings_bulk import ListingRow, listings_save_bulk
from ..models import CatalogImportItem, Channel
from ..selectors import channel_atp_bulk, channel_price_bulk

Status = CatalogImportItem.Status
# Items a person may still decide about (linked and ignored ones are settled).
OPEN = (Status.MATCHED, Status.PROPOSED, Status.CONFLICT, Status.UNMATCHED)


class PriceSource(enum.StrEnum):
    PIMSYNC = "pimsync"  # push pimsync's price (through the channel's price rule)
    CHANNEL = "channel"  # keep the channel's price: it becomes the listing's override


class ReviewError(ValueError):
    """A decision that cannot be carried out; nothing changed."""


@dataclass
class Decided:
    """What a bulk decision did, and why the rest was left alone."""

    linked: int = 0
    created: int = 0
    ignored: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> item SKUs/keys
    channels_pushed: int = 0

    def skip(self, reason: str, item: CatalogImportItem) -> None:
        self.skipped.setdefault(reason, []).append(item.sku or item.key)

    def __str__(self) -> str:
        parts = []
        if self.created:
            parts.append(f"Created {self.created} variant(s) in pimsync.")
        if self.linked:
            parts.append(
                f"Linked {self.linked} item(s); {self.channels_pushed} channel(s) will be "
                "pushed (quantities are always pimsync's)."
            )
        if self.ignored:
            parts.append(f"Ignored {self.ignored} item(s).")
        for reason, keys in self.skipped.items():
            shown = ", ".join(keys[:5]) + (" …" if len(keys) > 5 else "")
            parts.append(f"Not done for {len(keys)} item(s), {reason}: {shown}.")
        return " ".join(parts) or "Nothing to do."


# --- first values -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FirstValues:
    """An item's values on the channel beside what pimsync would push."""

    item: CatalogImportItem
    channel_price: Decimal | None
    channel_quantity: int | None
    pimsync_price: Decimal | None
    pimsync_quantity: int | None

    @property
    def price_differs(self) -> bool:
        return (
            self.channel_price is not None
            and self.pimsync_price is not None
            and self.channel_price.quantize(Decimal("0.01"))
            != self.pimsync_price.quantize(Decimal("0.01"))
        )

    @property
    def quantity_differs(self) -> bool:
        return self.channel_quantity != self.pimsync_quantity


def catalog_items_first_values(
    *, channel: Channel, items: Sequence[CatalogImportItem]
) -> list[FirstValues]:
    """For each item with a variant: the channel's current price and quantity and the
    price and ATP pimsync would push (computed fresh, a constant number of queries)."""
    variant_ids = {item.variant_id for item in items if item.variant_id}
    prices = channel_price_bulk(channel=channel, variant_ids=variant_ids)
    atp = channel_atp_bulk(channel=channel, variant_ids=variant_ids)
    return [
        FirstValues(
            item=item,
            channel_price=item.price,
            channel_quantity=item.quantity,
            pimsync_price=prices.get(item.variant_id) if item.variant_id else None,
            pimsync_quantity=atp.get(item.variant_id) if item.variant_id else None,
        )
        for item in items
    ]


# --- linking ------------------------------------------------------------------------------------


def _link_rows(
    items: Sequence[CatalogImportItem], price_source: PriceSource, decided: Decided
) -> tuple[list[ListingRow], list[CatalogImportItem]]:
    rows, linkable, claimed = [], [], set()
    for item in items:
        if item.status not in OPEN:
            decided.skip(f"already {item.get_status_display().lower()}", item)
        elif item.variant_id is None:
            decided.skip("no variant chosen (choose one or create it in pimsync)", item)
        elif item.variant_id in claimed:
            decided.skip("its variant is linked to another selected item", item)
        else:
            claimed.add(item.variant_id)
            keep_channel_price = price_source is PriceSource.CHANNEL and item.price is not None
            rows.append(
                ListingRow(
                    channel_id=item.run.channel_id,
                    variant_id=item.variant_id,
                    listing_sku=_listing_sku(item),
                    external_product_id=item.external_product_id,
                    external_variant_id=item.external_variant_id,
                    inventory_item_id=item.inventory_item_id,
                    offer_id=item.offer_id,
                    set_price_override=True,
                    price_override=item.price if keep_channel_price else None,
                    is_enabled=True,
                )
            )
            linkable.append(item)
    return rows, linkable


def _listing_sku(item: CatalogImportItem) -> str:
    """The channel's SKU when it differs from the variant's (eBay and Amazon key on it)."""
    variant_sku = item.variant.sku if item.variant_id and item.variant else ""
    return "" if item.sku == variant_sku else item.sku


def catalog_items_link(
    *,
    items: QuerySet[CatalogImportItem],
    price_source: PriceSource = PriceSource.PIMSYNC,
    user: Any = None,
) -> Decided:
    """Link each item to its variant: a listing with the channel's ids is created
    (or the variant's listing on the channel gets them), in one transaction with one
    push per channel. Items already linked or ignored, without a variant, or whose
    variant another selected item takes are skipped and reported."""
    decided = Decided()
    with transaction.atomic():
        locked = list(
            items.select_for_update(of=("self",))
            .select_related("run", "variant")
            .order_by("run_id", "position")
        )
        rows, linkable = _link_rows(locked, price_source, decided)
        if not rows:
            return decided
        saved = listings_save_bulk(rows=rows)
        now = timezone.now()
        for item in linkable:
            key = (item.run.channel_id, item.variant_id or 0)
            item.listing_id = saved.listing_ids[key]
            item.status, item.decided_at = Status.LINKED, now
            item.decided_by_id = getattr(user, "pk", None)
        CatalogImportItem.objects.bulk_update(
            linkable, ["listing", "status", "decided_at", "decided_by"], batch_size=500
        )
        decided.linked = len(linkable)
        decided.channels_pushed = saved.channels_pushed
    return decided


def catalog_items_ignore(*, items: QuerySet[CatalogImportItem], user: Any = None) -> Decided:
    """Leave these items off pimsync (not linked, not created); linked ones stay linked."""
    open_items = items.filter(status__in=OPEN)
    decided = Decided()
    decided.ignored = open_items.update(
        status=Status.IGNORED, decided_at=timezone.now(), decided_by=getattr(user, "pk", None)
    )
    return decided


def catalog_item_choose(*, item: CatalogImportItem, variant: Variant, user: Any = None) -> None:
    """A person names the item's variant (a conflict, an unmatched or a wrong proposal):
    it becomes a proposal to link. Raises ReviewError for a settled item."""
    if item.status not in OPEN:
        raise ReviewError(f"{item} is already {item.get_status_display().lower()}")
    item.variant = variant
    item.status = Status.PROPOSED
    item.note = "chosen by a person"
    item.decided_at, item.decided_by = timezone.now(), user if getattr(user, "pk", None) else None
    item.save(update_fields=["variant", "status", "note", "decided_at", "decided_by"])


# --- creating in pimsync ------------------------------------------------------------------------


def _new_sku(item: CatalogImportItem, channel: Channel, taken: set[str]) -> str:
    """The channel's SKU, or one made from the channel and the item's id when the
    channel has none or pimsync uses it already."""
    sku = item.sku.strip()
    if not sku or sku in taken:
        sku = f"{channel.slug}-{item.key.rsplit('/', 1)[-1]}"[:100]
    taken.add(sku)
    return sku


def _product_specs(
    items: Sequence[CatalogImportItem], channel: Channel
) -> tuple[list[inventory.ProductSpec], dict[int, str]]:
    """One product per channel product (group), its items as variants; item pk -> SKU."""
    taken = set(
        Variant.objects.filter(sku__in=[i.sku for i in items if i.sku]).values_list(
            "sku", flat=True
        )
    )
    groups: dict[str, list[CatalogImportItem]] = defaultdict(list)
    for item in items:
        groups[item.group_ref or f"item:{item.key}"].append(item)
    specs, skus = [], {}
    for members in groups.values():
        first = members[0]
        variants = []
        for item in members:
            skus[item.pk] = _new_sku(item, channel, taken)
            variants.append(
                inventory.VariantSpec(
                    sku=skus[item.pk],
                    price=item.price if item.price is not None else Decimal("0"),
                    title=item.title if item.product_title else "",
                    barcode=item.barcode,
                    options={str(k): str(v) for k, v in (item.options or {}).items()},
                )
            )
        title = first.product_title or first.title or first.sku or first.key
        specs.append(inventory.ProductSpec(title=title, variants=variants))
    return specs, skus


def catalog_items_create(
    *,
    items: QuerySet[CatalogImportItem],
    stock_location: Location | None = None,
    user: Any = None,
) -> Decided:
    """Create a pimsync product per channel product and a variant per item (title,
    options, barcode, the channel's price; the channel's SKU unless pimsync has it),
    through inventory's services, then link the items to them. With ``stock_location``
    the channel's quantity is booked there as received (one ledger row per item, keyed
    to the import): otherwise the variants have no stock and the channel is told 0.
    Only unmatched items (or conflicts nobody chose for) are created; all or nothing."""
    decided = Decided()
    with transaction.atomic():
        locked = list(
            items.select_for_update(of=("self",))
            .select_related("run__channel")
            .order_by("run_id", "position")
        )
        to_create = []
        for item in locked:
            if item.status not in OPEN:
                decided.skip(f"already {item.get_status_display().lower()}", item)
            elif item.variant_id is not None and item.status != Status.CONFLICT:
                decided.skip("it matches a pimsync variant (link it instead)", item)
            else:
                to_create.append(item)
        if not to_create:
            return decided
        channel = to_create[0].run.channel
        specs, skus = _product_specs(to_create, channel)
        try:
            ids = inventory.products_create_bulk(products=specs)
        except InventoryError as exc:
            raise ReviewError(exc.message) from exc
        for item in to_create:
            item.variant_id = ids[skus[item.pk]]
            item.created_in_pimsync = True
        CatalogImportItem.objects.bulk_update(to_create, ["variant", "created_in_pimsync"])
        if stock_location is not None:
            _receive_channel_stock(to_create, stock_location, user)
        decided.created = len(to_create)
        linked = catalog_items_link(
            items=CatalogImportItem.objects.filter(pk__in=[i.pk for i in to_create]), user=user
        )
        decided.linked, decided.channels_pushed = linked.linked, linked.channels_pushed
    return decided


def _receive_channel_stock(
    items: Sequence[CatalogImportItem], location: Location, user: Any
) -> None:
    specs = [
        inventory.MovementSpec(
            variant_id=item.variant_id,
            location_id=location.pk,
            deltas=inventory.Deltas(on_hand=item.quantity),
            reason="receive",
            idempotency_key=f"catalog-import:{item.run_id}:{item.key}"[:255],
            note="opening stock from the channel's catalog",
            source_ref=f"catalog-import:{item.run_id}",
        )
        for item in items
        if item.variant_id and item.quantity and item.quantity > 0
    ]
    if specs:
        inventory.stock_movements_apply_bulk(
            specs=specs, source="admin", user=user if getattr(user, "pk", None) else None
        )
