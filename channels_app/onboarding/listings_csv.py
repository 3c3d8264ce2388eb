"""Listings (pimsync SKU <-> a channel's ids) as a spreadsheet: export, and import
with a preview and an all-or-nothing apply, like prices and stock counts.

``listings_csv_preview`` reads the upload (inventory.csvfile: Excel's encodings and
separators) and checks every row with a fixed number of queries; a file with any
row error is shown and not stored. A clean file becomes a ListingCsvImport;
``listings_csv_apply`` locks it, checks its rows again against the database as it
is then, and saves them through the bulk listing service in one transaction (each
channel pushed once), at most once.

A column left out of the file keeps what the listings have; an empty cell in a
column that is there clears the value (``price_override``: removes the override).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from inventory.csv_imports import RowError
from inventory.csvfile import CsvFileError, CsvTable, csv_table_read, money_parse, spreadsheet_text
from inventory.models import Variant

from ..listings_bulk import ID_FIELDS, ListingRow, listing_rows_problems, listings_save_bulk
from ..models import Channel, ChannelListing, ListingCsvImport

EXPORT_HEADER = ("channel", "sku", *ID_FIELDS, "price_override", "is_enabled")
ALIASES: dict[str, tuple[str, ...]] = {
    "channel": ("channel_slug",),
    "sku": ("variant_sku", "pimsync_sku"),
    "listing_sku": ("channel_sku",),
    "external_product_id": ("product_id",),
    "external_variant_id": ("variant_id",),
    "inventory_item_id": (),
    "offer_id": (),
    "price_override": ("override",),
    "is_enabled": ("enabled",),
}
TRUE_WORDS = {"1", "true", "yes", "y", "on", "enabled"}
FALSE_WORDS = {"0", "false", "no", "n", "off", "disabled"}
LOOKUP_CHUNK = 10_000
ROWS_SHOWN = 500


# --- export --------------------------------------------------------------------------------------


def listings_csv_export_rows(listings: QuerySet[ChannelListing]) -> Iterator[list[Any]]:
    """One row per listing (the queryset's filters and search apply)."""
    rows = listings.order_by("channel__slug", "variant__sku").values_list(
        "channel__slug", "variant__sku", *ID_FIELDS, "price_override", "is_enabled"
    )
    for channel, sku, *ids, override, enabled in rows.iterator(2000):
        yield [
            channel,
            spreadsheet_text(sku),
            *(spreadsheet_text(v) for v in ids),
            "" if override is None else str(override),
            "yes" if enabled else "no",
        ]


# --- reading and checking ------------------------------------------------------------------------


@dataclass
class PreviewRow:
    row: int
    channel: str
    sku: str
    new: dict[str, Any]  # the fields the file sets (ids, price_override, is_enabled)
    old: dict[str, Any] | None = None  # the listing's values now (None: a new listing)

    @property
    def changed_fields(self) -> list[str]:
        if self.old is None:
            return list(self.new)
        return [f for f, value in self.new.items() if self.old.get(f) != value]

    @property
    def is_new(self) -> bool:
        return self.old is None

    @property
    def is_changed(self) -> bool:
        return self.is_new or bool(self.changed_fields)

    def stored(self) -> dict[str, Any]:
        values = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.new.items()}
        return {"row": self.row, "channel": self.channel, "sku": self.sku, "values": values}


@dataclass
class ListingsPreview:
    rows: list[PreviewRow]
    errors: list[RowError]
    columns: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return bool(self.errors)

    @property
    def n_total(self) -> int:
        return len(self.rows) + len(self.errors)

    @property
    def n_new(self) -> int:
        return sum(1 for r in self.rows if r.is_new)

    @property
    def n_changed(self) -> int:
        return sum(1 for r in self.rows if not r.is_new and r.is_changed)

    @property
    def n_unchanged(self) -> int:
        return len(self.rows) - self.n_new - self.n_changed

    @property
    def channels(self) -> list[str]:
        return sorted({r.channel for r in self.rows if r.is_changed})


def _columns(table: CsvTable) -> dict[str, str]:
    found = {}
    for name, aliases in ALIASES.items():
        match = next((c for c in (name, *aliases) if c in table.columns), None)
        if match is not None:
            found[name] = match
    missing = [c for c in ("channel", "sku") if c not in found]
    if missing:
        shown = ", ".join(c for c in table.columns if c) or "none"
        raise CsvFileError(
            f"The file needs the column(s) {', '.join(missing)}; its header has: {shown}."
        )
    return found


def _cell_values(cells: dict[str, str], columns: dict[str, str]) -> tuple[dict[str, Any], str]:
    """The fields a row sets, or a problem."""
    values: dict[str, Any] = {}
    for name in ID_FIELDS:
        if name in columns:
            values[name] = cells.get(columns[name], "").strip()
    if "price_override" in columns:
        text = cells.get(columns["price_override"], "").strip()
        try:
            values["price_override"] = money_parse(text, column="price override") if text else None
        except ValueError as exc:
            return {}, str(exc)
    if "is_enabled" in columns:
        text = cells.get(columns["is_enabled"], "").strip().lower()
        if text in TRUE_WORDS:
            values["is_enabled"] = True
        elif text in FALSE_WORDS:
            values["is_enabled"] = False
        elif text:
            return {}, f"is_enabled must be yes or no, not {text!r}"
    return values, ""


def _entries(table: CsvTable) -> tuple[list[dict[str, Any]], list[RowError], list[str]]:
    columns = _columns(table)
    entries: list[dict[str, Any]] = []
    errors: list[RowError] = []
    seen: dict[tuple[str, str], int] = {}
    for record in table.records:
        channel = record.cells.get(columns["channel"], "").strip().lower()
        sku = record.cells.get(columns["sku"], "").strip()
        if record.extra_cells:
            errors.append(
                RowError(
                    record.row,
                    sku,
                    f"has {record.extra_cells} more value(s) than the header has columns "
                    "(a separator inside a value must be quoted)",
                )
            )
            continue
        if not channel or not sku:
            errors.append(RowError(record.row, sku, "channel and SKU are both needed"))
            continue
        if (channel, sku) in seen:
            errors.append(
                RowError(
                    record.row, sku, f"{sku} on {channel} is also in row {seen[(channel, sku)]}"
                )
            )
            continue
        seen[(channel, sku)] = record.row
        values, problem = _cell_values(record.cells, columns)
        if problem:
            errors.append(RowError(record.row, sku, problem))
            continue
        entries.append({"row": record.row, "channel": channel, "sku": sku, "values": values})
    used = set(columns.values())
    ignored = [c for c in table.columns if c and c not in used]
    notes = [f"Read as {table.encoding}, {table.delimiter_name}-separated."]
    if ignored:
        notes.append(f"Columns not imported: {', '.join(ignored)}.")
    kept = [c for c in ALIASES if c not in columns]
    if kept:
        notes.append(f"Not in the file, so kept as they are: {', '.join(kept)}.")
    return entries, errors, notes


def _lookups(
    entries: list[dict[str, Any]],
) -> tuple[dict[str, int], dict[str, int], dict[tuple[int, int], dict[str, Any]]]:
    """Channels by slug, variants by SKU and the existing listings of those pairs."""
    channels = dict(
        Channel.objects.filter(slug__in={e["channel"] for e in entries}).values_list("slug", "pk")
    )
    skus = sorted({e["sku"] for e in entries})
    variants: dict[str, int] = {}
    for start in range(0, len(skus), LOOKUP_CHUNK):
        chunk = skus[start : start + LOOKUP_CHUNK]
        variants.update(Variant.objects.filter(sku__in=chunk).values_list("sku", "pk"))
    fields = (*ID_FIELDS, "price_override", "is_enabled")
    existing: dict[tuple[int, int], dict[str, Any]] = {}
    ids = sorted(variants.values())
    for start in range(0, len(ids), LOOKUP_CHUNK):
        rows = ChannelListing.objects.filter(
            channel_id__in=list(channels.values()), variant_id__in=ids[start : start + LOOKUP_CHUNK]
        ).values("channel_id", "variant_id", *fields)
        for row in rows:
            existing[(row["channel_id"], row["variant_id"])] = {f: row[f] for f in fields}
    return channels, variants, existing


def _check(entries: list[dict[str, Any]], errors: list[RowError]) -> ListingsPreview:
    channels, variants, existing = _lookups(entries)
    rows, errors = [], list(errors)
    for entry in entries:
        problems = []
        if entry["channel"] not in channels:
            problems.append(f"unknown channel {entry['channel']!r}")
        if entry["sku"] not in variants:
            problems.append("unknown SKU")
        if problems:
            errors.append(RowError(entry["row"], entry["sku"], "; ".join(problems)))
            continue
        values = dict(entry["values"])
        if values.get("price_override") is not None:
            values["price_override"] = Decimal(str(values["price_override"]))
        pair = (channels[entry["channel"]], variants[entry["sku"]])
        rows.append(
            PreviewRow(entry["row"], entry["channel"], entry["sku"], values, existing.get(pair))
        )
    bad = listing_rows_problems(_listing_rows(rows, channels, variants))
    errors += [
        RowError(rows[i].row, rows[i].sku, "; ".join(messages)) for i, messages in bad.items()
    ]
    return ListingsPreview(rows, sorted(errors, key=lambda e: e.row), [])


def _listing_rows(
    rows: list[PreviewRow], channels: dict[str, int], variants: dict[str, int]
) -> list[ListingRow]:
    """What to save: the file's values over the listing's current ones."""
    result = []
    for row in rows:
        current = row.old or {}
        ids = {name: row.new.get(name, current.get(name, "")) for name in ID_FIELDS}
        result.append(
            ListingRow(
                channel_id=channels[row.channel],
                variant_id=variants[row.sku],
                set_price_override="price_override" in row.new,
                price_override=row.new.get("price_override"),
                is_enabled=row.new.get("is_enabled"),
                **ids,
            )
        )
    return result


# --- preview and apply ---------------------------------------------------------------------------


def listings_csv_preview(
    *, file_name: str, data: bytes, user: Any
) -> tuple[ListingsPreview, ListingCsvImport | None]:
    """Read and check an upload; store it only when no row has an error. Raises
    CsvFileError when the file as a whole cannot be read."""
    table = csv_table_read(data, max_rows=settings.PIMSYNC_CSV_IMPORT_MAX_ROWS)
    entries, errors, notes = _entries(table)
    if not entries and not errors:
        raise CsvFileError("The file has no listings to import.")
    preview = _check(entries, errors)
    preview.notes = notes
    if preview.has_errors:
        return preview, None
    with transaction.atomic():
        expiry = timedelta(hours=settings.PIMSYNC_CSV_IMPORT_PREVIEW_HOURS)
        ListingCsvImport.objects.filter(
            status=ListingCsvImport.Status.PREVIEWED, created_at__lt=timezone.now() - expiry
        ).delete()
        record = ListingCsvImport.objects.create(
            file_name=file_name[:255],
            file_sha256=hashlib.sha256(data).hexdigest(),
            row_count=len(preview.rows),
            rows=[r.stored() for r in preview.rows],
            result={"notes": notes},
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
    return preview, record


def listings_csv_review(*, record: ListingCsvImport) -> ListingsPreview:
    """The stored rows checked again against the database as it is now."""
    preview = _check(list(record.rows), [])
    preview.notes = list(record.result.get("notes", []))
    return preview


def listings_csv_is_expired(record: ListingCsvImport) -> bool:
    expiry = timedelta(hours=settings.PIMSYNC_CSV_IMPORT_PREVIEW_HOURS)
    return (
        record.status == ListingCsvImport.Status.PREVIEWED
        and record.created_at < timezone.now() - expiry
    )


@dataclass(frozen=True)
class ApplyOutcome:
    status: str  # applied | already_applied | refused
    message: str
    record: ListingCsvImport
    preview: ListingsPreview | None = None


def listings_csv_apply(*, import_id: Any, user: Any) -> ApplyOutcome:
    """Apply a previewed file once, every row or none (checked again first)."""
    with transaction.atomic():
        record = ListingCsvImport.objects.select_for_update().get(pk=import_id)
        if record.status == ListingCsvImport.Status.APPLIED:
            message = f"Already applied on {record.applied_at:%Y-%m-%d %H:%M}: {record.message}"
            return ApplyOutcome("already_applied", message, record)
        if listings_csv_is_expired(record):
            return ApplyOutcome(
                "refused", "This preview has expired; upload the file again.", record
            )
        preview = listings_csv_review(record=record)
        if preview.has_errors:
            return ApplyOutcome(
                "refused",
                f"{len(preview.errors)} row(s) no longer pass the checks (the catalog or the "
                "channels changed since the preview); nothing was applied.",
                record,
                preview,
            )
        channels, variants, _ = _lookups(list(record.rows))
        saved = listings_save_bulk(rows=_listing_rows(preview.rows, channels, variants))
        record.status = ListingCsvImport.Status.APPLIED
        record.applied_at = timezone.now()
        record.applied_by = user if getattr(user, "is_authenticated", False) else None
        record.message = (
            f"{saved.created} listing(s) created, {saved.updated} updated, {saved.unchanged} "
            f"unchanged; {saved.channels_pushed} channel(s) will be pushed."
        )
        record.result = {
            **record.result,
            "created": saved.created,
            "updated": saved.updated,
            "unchanged": saved.unchanged,
        }
        record.save(update_fields=["status", "applied_at", "applied_by", "message", "result"])
        return ApplyOutcome("applied", record.message, record)


def listings_csv_rows_shown(preview: ListingsPreview) -> list[dict[str, Any]]:
    """The preview's new and changed rows (capped) with old -> new per changed field."""
    shown = []
    for row in [r for r in preview.rows if r.is_changed][:ROWS_SHOWN]:
        old = row.old or {}
        shown.append(
            {
                "row": row.row,
                "channel": row.channel,
                "sku": row.sku,
                "new": row.is_new,
                "changes": [
                    {"field": f, "old": old.get(f, ""), "new": row.new[f]}
                    for f in row.changed_fields
                ],
            }
        )
    return shown
