"""Many listings written at once, all or nothing: the bulk form of
``services.listing_save`` for the catalog import's links, the listings CSV and
``POST /api/v1/bulk/listings/``.

Rows are validated together (every problem named by its row); a valid set is
written in one transaction: new listings inserted, changed ones updated, and the
listings whose channel must hear about it marked in one go, so each channel is
pushed once (new listings and new channel ids push price and quantity, a price
override change the price, a disabled listing its 0).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from inventory.models import MONEY_LIMIT

from .models import ChannelListing, SyncKind
from .sync.markers import listings_mark_dirty

ID_FIELDS = (
    "listing_sku",
    "external_product_id",
    "external_variant_id",
    "inventory_item_id",
    "offer_id",
)
FIELD_LENGTHS: dict[str, int] = {
    name: getattr(ChannelListing._meta.get_field(name), "max_length", None) or 0
    for name in ID_FIELDS
}
# Rows per write: keeps every statement's parameters below SQLite's limit.
WRITE_BATCH = 500


@dataclass(frozen=True)
class ListingRow:
    """One listing as it should be. ``price_override`` is set only when
    ``set_price_override`` (None then clears it); ``is_enabled`` only when given."""

    channel_id: int
    variant_id: int
    listing_sku: str = ""
    external_product_id: str = ""
    external_variant_id: str = ""
    inventory_item_id: str = ""
    offer_id: str = ""
    set_price_override: bool = False
    price_override: Decimal | None = None
    is_enabled: bool | None = None


@dataclass
class ListingsSaved:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    # (channel id, variant id) -> listing id, for every row
    listing_ids: dict[tuple[int, int], int] = field(default_factory=dict)
    channels_pushed: int = 0


class ListingRowsInvalid(ValueError):
    """Rows that cannot be saved: {row index: [problems]}. Nothing was written."""

    def __init__(self, errors: dict[int, list[str]]) -> None:
        self.errors = errors
        first = next(iter(sorted(errors.items())), (0, [""]))
        super().__init__(
            f"{len(errors)} row(s) invalid, nothing saved; row {first[0]}: {'; '.join(first[1])}"
        )


def listing_rows_problems(rows: Sequence[ListingRow]) -> dict[int, list[str]]:
    """What is wrong with each row, checked without the database: lengths, the
    price override, and a (channel, variant) given twice."""
    errors: dict[int, list[str]] = defaultdict(list)
    first: dict[tuple[int, int], int] = {}
    for index, row in enumerate(rows):
        for name in ID_FIELDS:
            if len(getattr(row, name)) > FIELD_LENGTHS[name]:
                errors[index].append(f"{name} is longer than {FIELD_LENGTHS[name]} characters")
        price = row.price_override
        if row.set_price_override and price is not None:
            exponent = price.as_tuple().exponent
            if not price.is_finite() or price < 0 or price >= MONEY_LIMIT:
                errors[index].append("price_override must be 0 or more (and not absurdly large)")
            elif isinstance(exponent, int) and exponent < -2:
                errors[index].append("price_override may have at most 2 decimal places")
        pair = (row.channel_id, row.variant_id)
        if pair in first:
            errors[index].append(f"the same SKU on the same channel is also in row {first[pair]}")
        else:
            first[pair] = index
    return dict(errors)


def _changes(listing: ChannelListing, row: ListingRow) -> set[str]:
    changed = {name for name in ID_FIELDS if getattr(listing, name) != getattr(row, name)}
    if row.set_price_override and listing.price_override != row.price_override:
        changed.add("price_override")
    if row.is_enabled is not None and listing.is_enabled != row.is_enabled:
        changed.add("is_enabled")
    return changed


def _apply(listing: ChannelListing, row: ListingRow, changed: set[str]) -> None:
    for name in changed:
        setattr(listing, name, getattr(row, name))


def listings_save_bulk(*, rows: Sequence[ListingRow]) -> ListingsSaved:
    """Create or update one listing per row, all or nothing, in one transaction.

    Raises ListingRowsInvalid (nothing written) when a row is invalid; the caller
    has resolved SKUs and channels to ids. Existing listings are locked in pk
    order; their push state is never touched. Returns the counts and every row's
    listing id."""
    problems = listing_rows_problems(rows)
    if problems:
        raise ListingRowsInvalid(problems)
    saved = ListingsSaved()
    if not rows:
        return saved
    by_channel: dict[int, list[ListingRow]] = defaultdict(list)
    for row in rows:
        by_channel[row.channel_id].append(row)
    marks: dict[str, list[int]] = defaultdict(list)  # "both" | "price" | "off" -> listing ids
    with transaction.atomic():
        for channel_id, channel_rows in by_channel.items():
            _save_channel_rows(channel_id, channel_rows, saved, marks)
        for how, ids in marks.items():
            listings = ChannelListing.objects.filter(pk__in=ids)
            if how == "off":
                listings_mark_dirty(listings, kinds=[SyncKind.QUANTITY], include_disabled=True)
            else:
                kinds = [SyncKind.PRICE] if how == "price" else [SyncKind.PRICE, SyncKind.QUANTITY]
                listings_mark_dirty(listings, kinds=kinds)
    pushed = set(
        ChannelListing.objects.filter(pk__in=[i for ids in marks.values() for i in ids])
        .values_list("channel_id", flat=True)
        .distinct()
    )
    saved.channels_pushed = len(pushed)
    return saved


def _save_channel_rows(
    channel_id: int,
    rows: list[ListingRow],
    saved: ListingsSaved,
    marks: dict[str, list[int]],
) -> None:
    variant_ids = [row.variant_id for row in rows]
    existing: dict[int, ChannelListing] = {}
    for start in range(0, len(variant_ids), WRITE_BATCH):
        chunk = variant_ids[start : start + WRITE_BATCH]
        for listing in (
            ChannelListing.objects.select_for_update()
            .filter(channel_id=channel_id, variant_id__in=chunk)
            .order_by("pk")
        ):
            existing[listing.variant_id] = listing
    new: list[ChannelListing] = []
    changed_rows: list[tuple[ChannelListing, set[str]]] = []
    for row in rows:
        found = existing.get(row.variant_id)
        if found is None:
            fresh = ChannelListing(channel_id=channel_id, variant_id=row.variant_id)
            _apply(fresh, row, set(ID_FIELDS) | _optional_fields(row))
            new.append(fresh)
            continue
        listing = found
        changed = _changes(listing, row)
        if not changed:
            saved.unchanged += 1
            saved.listing_ids[(channel_id, row.variant_id)] = listing.pk
            continue
        _apply(listing, row, changed)
        changed_rows.append((listing, changed))
    created = ChannelListing.objects.bulk_create(new, batch_size=WRITE_BATCH)
    if created and created[0].pk is None:  # backends that do not return ids
        created = list(
            ChannelListing.objects.filter(
                channel_id=channel_id, variant_id__in=[n.variant_id for n in new]
            )
        )
    for listing in created:
        saved.listing_ids[(channel_id, listing.variant_id)] = listing.pk
        marks["both" if listing.is_enabled else "off"].append(listing.pk)
    saved.created += len(created)
    _update(changed_rows)
    for listing, changed in changed_rows:
        saved.listing_ids[(channel_id, listing.variant_id)] = listing.pk
        marks[_mark_for(listing, changed)].append(listing.pk)
    saved.updated += len(changed_rows)


def _optional_fields(row: ListingRow) -> set[str]:
    fields = set()
    if row.set_price_override:
        fields.add("price_override")
    if row.is_enabled is not None:
        fields.add("is_enabled")
    return fields


def _mark_for(listing: ChannelListing, changed: set[str]) -> str:
    if not listing.is_enabled:
        return "off"
    return "price" if changed == {"price_override"} else "both"


def _update(changed_rows: list[tuple[ChannelListing, set[str]]]) -> None:
    """One bulk update per set of changed fields (usually a single set)."""
    now = timezone.now()
    by_fields: dict[tuple[str, ...], list[ChannelListing]] = defaultdict(list)
    for listing, changed in changed_rows:
        listing.updated_at = now
        by_fields[tuple(sorted(changed))].append(listing)
    for names, listings in by_fields.items():
        ChannelListing.objects.bulk_update(listings, [*names, "updated_at"], batch_size=WRITE_BATCH)
