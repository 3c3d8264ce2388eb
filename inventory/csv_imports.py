"""CSV import of variant prices and stock counts: validate, preview, apply once.

``csv_import_preview`` reads an upload and checks every row against the
database with a fixed number of queries whatever the row count (lookups are
bulk, by SKU). A file with any row error is shown and not stored; a clean file
becomes a CsvImport. ``csv_import_apply`` locks that record, checks its rows
again against the database as it is *now*, and applies them all through
inventory.services in one transaction, or nothing: prices with one bulk price
change (one price event, so every channel listing is marked for a push), counts
with one bulk cycle count (each delta computed under the row lock, each ledger
row's idempotency key derived from the import, one stock event).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from . import services
from .csvfile import CsvFileError, CsvRecord, CsvTable, count_parse, csv_table_read, money_parse
from .errors import BulkMovementRejected, InventoryError
from .models import CsvImport, Location, StockLevel, Variant
from .selectors import stock_available_compute

# Keeps every IN (...) list below SQLite's and PostgreSQL's parameter limits
# while a 10,000-row file still needs one query per lookup.
LOOKUP_CHUNK = 10_000
BIG_PRICE_CHANGE = Decimal("0.5")  # warn when a price moves by half or more
PRICE_FIELD_LABELS = {
    "price": "price",
    "compare_at_price": "compare-at price",
    "map_price": "MAP price",
}

# "Called with (variant ids, location ids or None)" -> a sentence about the channels
# that will be pushed; supplied by channels_app's admin (inventory never imports it).
PushDescriber = Callable[[set[int], set[int] | None], str]


@dataclass(frozen=True)
class RowError:
    row: int
    sku: str
    message: str


@dataclass
class PriceRow:
    row: int
    sku: str
    variant: VariantInfo
    old: dict[str, Decimal | None]
    new: dict[str, Decimal | None]
    warnings: list[str] = field(default_factory=list)

    @property
    def changed_fields(self) -> list[str]:
        return [f for f, value in self.new.items() if value != self.old[f]]

    @property
    def is_changed(self) -> bool:
        return bool(self.changed_fields)

    def stored(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "sku": self.sku,
            "values": {f: None if v is None else str(v) for f, v in self.new.items()},
        }


@dataclass
class CountRow:
    row: int
    sku: str
    variant: VariantInfo
    location: Location
    counted: int
    on_hand: int  # now (at preview or at the re-check before applying)
    held: int  # committed + reserved + damaged: what a count never changes
    on_hand_seen: int  # on hand when the file was previewed
    on_hand_in_file: int | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def delta(self) -> int:
        return self.counted - self.on_hand

    @property
    def is_changed(self) -> bool:
        return self.delta != 0

    @property
    def available_after(self) -> int:
        return self.counted - self.held

    def stored(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "sku": self.sku,
            "location": self.location.code,
            "counted": self.counted,
            "on_hand_seen": self.on_hand_seen,
            "on_hand_in_file": self.on_hand_in_file,
        }


@dataclass
class ImportPreview:
    kind: str
    rows: list[Any]  # PriceRow or CountRow, in file order
    errors: list[RowError]
    columns: list[str]  # the columns that will be applied
    notes: list[str] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return bool(self.errors)

    @property
    def n_total(self) -> int:
        return len(self.rows) + len(self.errors)

    @property
    def changed_rows(self) -> list[Any]:
        return [r for r in self.rows if r.is_changed]

    @property
    def n_changed(self) -> int:
        return len(self.changed_rows)

    @property
    def n_unchanged(self) -> int:
        return len(self.rows) - self.n_changed

    @property
    def n_warnings(self) -> int:
        return sum(1 for r in self.rows if r.warnings)

    @property
    def total_delta(self) -> int:
        return sum(r.delta for r in self.rows) if self.kind == CsvImport.Kind.COUNTS else 0

    @property
    def field_changes(self) -> dict[str, int]:
        """How many rows change each price field (prices only)."""
        if self.kind != CsvImport.Kind.PRICES:
            return {}
        return {
            PRICE_FIELD_LABELS[f]: sum(1 for r in self.rows if f in r.changed_fields)
            for f in self.columns
        }


@dataclass(frozen=True)
class ApplyOutcome:
    """What confirming did: ``applied``, ``already_applied`` or ``refused``."""

    status: str
    message: str
    record: CsvImport
    preview: ImportPreview | None = None


class ImportRefused(Exception):
    def __init__(self, message: str, preview: ImportPreview | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.preview = preview


# --- columns ---------------------------------------------------------------------------


def _resolve_columns(
    present: list[str], wanted: dict[str, tuple[str, ...]], required: Iterable[str]
) -> dict[str, str]:
    """Map each wanted column to the file's column (its own name or an alias)."""
    found = {}
    for name, aliases in wanted.items():
        match = next((c for c in (name, *aliases) if c in present), None)
        if match is not None:
            found[name] = match
    missing = [name for name in required if name not in found]
    if missing:
        shown = ", ".join(c for c in present if c) or "none"
        raise CsvFileError(
            f"The file needs the column(s) {', '.join(missing)}; its header has: {shown}."
        )
    return found


def _file_notes(table: CsvTable, used: Iterable[str]) -> list[str]:
    ignored = [c for c in table.columns if c and c not in set(used)]
    notes = [f"Read as {table.encoding}, {table.delimiter_name}-separated."]
    if ignored:
        notes.append(f"Columns not imported: {', '.join(ignored)}.")
    return notes


def _extra_cells_error(record: CsvRecord, sku: str) -> RowError | None:
    if not record.extra_cells:
        return None
    return RowError(
        record.row,
        sku,
        f"has {record.extra_cells} more value(s) than the header has columns "
        "(a separator inside a value must be quoted)",
    )


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), LOOKUP_CHUNK):
        yield values[start : start + LOOKUP_CHUNK]


@dataclass(frozen=True)
class VariantInfo:
    """What a preview needs of a variant (read as values: a 10,000-row file
    builds no model instances)."""

    pk: int
    sku: str
    product: str
    price: Decimal
    compare_at_price: Decimal | None
    map_price: Decimal | None


def _variants_by_sku(skus: Iterable[str]) -> dict[str, VariantInfo]:
    wanted = sorted(set(skus))
    found: dict[str, VariantInfo] = {}
    for chunk in _chunks(wanted):
        rows = Variant.objects.filter(sku__in=chunk).values_list(
            "pk", "sku", "product__title", *services.PRICE_FIELDS
        )
        for row in rows:
            found[row[1]] = VariantInfo(*row)
    return found


# --- prices ------------------------------------------------------------------------------


class PriceImport:
    kind = CsvImport.Kind.PRICES
    max_rows_setting = "PIMSYNC_CSV_IMPORT_MAX_ROWS"
    nothing_to_import = "The file has no rows to import."
    wanted = {
        "sku": ("variant_sku",),
        "price": ("new_price",),
        "compare_at_price": ("compare_at", "compare_price"),
        "map_price": ("map", "minimum_advertised_price"),
    }
    required = ("sku", "price")

    def entries_from_table(
        self, table: CsvTable
    ) -> tuple[list[dict[str, Any]], list[RowError], list[str], list[str]]:
        columns = _resolve_columns(table.columns, self.wanted, self.required)
        fields = [f for f in services.PRICE_FIELDS if f in columns]
        entries, errors, seen = [], [], {}
        for record in table.records:
            sku = record.cells.get(columns["sku"], "")
            extra = _extra_cells_error(record, sku)
            if extra:
                errors.append(extra)
                continue
            if not sku:
                errors.append(RowError(record.row, "", "SKU is empty"))
                continue
            if sku in seen:
                errors.append(
                    RowError(record.row, sku, f"SKU appears twice (first in row {seen[sku]})")
                )
                continue
            seen[sku] = record.row
            values, problems = {}, []
            for f in fields:
                text = record.cells.get(columns[f], "")
                if not text:
                    if f == "price":
                        problems.append("price is empty")
                    else:
                        values[f] = None  # an empty compare-at / MAP cell clears it
                    continue
                try:
                    values[f] = str(money_parse(text, column=PRICE_FIELD_LABELS[f]))
                except ValueError as exc:
                    problems.append(str(exc))
            if problems:
                errors.append(RowError(record.row, sku, "; ".join(problems)))
                continue
            entries.append({"row": record.row, "sku": sku, "values": values})
        return entries, errors, fields, _file_notes(table, columns.values())

    def check(
        self, entries: list[dict[str, Any]], errors: list[RowError], columns: list[str]
    ) -> ImportPreview:
        variants = _variants_by_sku(e["sku"] for e in entries)
        rows, errors = [], list(errors)
        for entry in entries:
            variant = variants.get(entry["sku"])
            if variant is None:
                errors.append(RowError(entry["row"], entry["sku"], "unknown SKU"))
                continue
            new = {f: None if v is None else Decimal(v) for f, v in entry["values"].items()}
            old = {f: getattr(variant, f) for f in new}
            rows.append(
                PriceRow(
                    entry["row"],
                    entry["sku"],
                    variant,
                    old,
                    new,
                    _price_warnings(variant, old, new),
                )
            )
        return ImportPreview(self.kind, rows, _sorted(errors), columns)

    def apply(
        self,
        record: CsvImport,
        preview: ImportPreview,
        user: User | None,
        describe_push: PushDescriber | None,
    ) -> tuple[dict[str, Any], str]:
        changed = services.variant_set_price_fields(
            changes={r.variant.pk: r.new for r in preview.rows}
        )
        unchanged = len(preview.rows) - len(changed)
        result = {"rows": len(preview.rows), "changed": len(changed), "unchanged": unchanged}
        if not changed:
            return result, (
                f"Nothing to change: all {len(preview.rows)} row(s) of {record.file_name} "
                "already had these prices (checked again when applying)."
            )
        message = (
            f"Prices changed for {len(changed)} variant(s) from {record.file_name}; "
            f"{unchanged} row(s) already had these prices (checked again when applying)."
        )
        return result, _with_push(message, describe_push, set(changed), None)


def _price_warnings(
    variant: VariantInfo, old: dict[str, Decimal | None], new: dict[str, Decimal | None]
) -> list[str]:
    warnings = []
    price = new.get("price", variant.price)
    map_price = new.get("map_price", variant.map_price)
    if map_price is not None and price < map_price:
        warnings.append(f"below the MAP price {map_price}: channels are sent {map_price}")
    compare_at = new.get("compare_at_price")
    if compare_at is not None and compare_at <= price:
        warnings.append("compare-at price is not above the price")
    before = old.get("price")
    if before and price != before and abs(price - before) / before >= BIG_PRICE_CHANGE:
        warnings.append(f"price changes by {(price - before) / before:+.0%}")
    return warnings


# --- stock counts --------------------------------------------------------------------------


class CountImport:
    kind = CsvImport.Kind.COUNTS
    # Applied in one transaction (bulk cycle counts) inside the confirming request:
    # the cap keeps a file well within the web timeout.
    max_rows_setting = "PIMSYNC_CSV_IMPORT_MAX_COUNT_ROWS"
    nothing_to_import = "No row has a counted quantity: fill in the counted column."
    wanted = {
        "sku": ("variant_sku",),
        "location": ("location_code",),
        "counted": ("counted_on_hand", "count", "quantity", "qty"),
        "on_hand": ("on_hand_now",),
    }
    required = ("sku", "location")

    def entries_from_table(
        self, table: CsvTable
    ) -> tuple[list[dict[str, Any]], list[RowError], list[str], list[str]]:
        columns = _resolve_columns(table.columns, self.wanted, self.required)
        notes = _file_notes(table, columns.values())
        counted_col = columns.get("counted")
        on_hand_col = columns.get("on_hand")
        if counted_col is None and on_hand_col is None:
            raise CsvFileError(
                "The file needs a column `counted` with the counted on-hand quantities."
            )
        if counted_col is None:
            counted_col, on_hand_col = on_hand_col, None
            notes.append(f"Counted quantities are read from the column {counted_col}.")
        entries, errors, seen, skipped = [], [], {}, 0
        for record in table.records:
            sku = record.cells.get(columns["sku"], "")
            location = record.cells.get(columns["location"], "")
            text = record.cells.get(counted_col, "")
            extra = _extra_cells_error(record, sku)
            if extra:
                errors.append(extra)
                continue
            if not text and (sku or location):
                skipped += 1  # a count sheet row nobody counted
                continue
            problems = ["SKU is empty"] if not sku else []
            if not location:
                problems.append("location is empty")
            key = (sku, location.lower())
            if not problems and key in seen:
                problems.append(f"{sku} at {location} appears twice (first in row {seen[key]})")
            seen.setdefault(key, record.row)
            try:
                counted = count_parse(text, column="counted")
            except ValueError as exc:
                problems.append(str(exc))
            in_file = _optional_count(record, on_hand_col)
            if problems:
                errors.append(RowError(record.row, sku, "; ".join(problems)))
                continue
            entries.append(
                {
                    "row": record.row,
                    "sku": sku,
                    "location": location,
                    "counted": counted,
                    "on_hand_in_file": in_file,
                }
            )
        if skipped:
            notes.append(f"{skipped} row(s) without a counted quantity were skipped.")
        return entries, errors, ["counted"], notes

    def check(
        self, entries: list[dict[str, Any]], errors: list[RowError], columns: list[str]
    ) -> ImportPreview:
        variants = _variants_by_sku(e["sku"] for e in entries)
        locations = {loc.code.lower(): loc for loc in Location.objects.all()}
        levels = _levels_of([v.pk for v in variants.values()])
        rows, errors = [], list(errors)
        for entry in entries:
            variant = variants.get(entry["sku"])
            location = locations.get(entry["location"].lower())
            problem = _count_target_problem(entry, variant, location, locations)
            if problem:
                errors.append(RowError(entry["row"], entry["sku"], problem))
                continue
            on_hand, held = levels.get((variant.pk, location.pk), (0, 0))
            row = CountRow(
                row=entry["row"],
                sku=entry["sku"],
                variant=variant,
                location=location,
                counted=entry["counted"],
                on_hand=on_hand,
                held=held,
                on_hand_seen=entry.get("on_hand_seen", on_hand),
                on_hand_in_file=entry.get("on_hand_in_file"),
            )
            row.warnings = _count_warnings(row)
            rows.append(row)
        return ImportPreview(self.kind, rows, _sorted(errors), columns)

    def apply(
        self,
        record: CsvImport,
        preview: ImportPreview,
        user: User | None,
        describe_push: PushDescriber | None,
    ) -> tuple[dict[str, Any], str]:
        rows = sorted(preview.rows, key=lambda r: (r.variant.pk, r.location.pk))
        results = _counts_apply(record, rows, user)
        applied = repeated = moved = total = 0
        for r, result in zip(rows, results, strict=True):
            if not result.created:
                repeated += 1
                continue
            m = result.movement
            applied += 1
            total += m.delta_on_hand
            if m.on_hand_after - m.delta_on_hand != r.on_hand_seen:
                moved += 1
        result = {"rows": len(rows), "applied": applied, "repeated": repeated}
        result |= {"total_delta": total, "moved_since_preview": moved}
        message = (
            f"{applied} count(s) applied from {record.file_name}: on hand changed by "
            f"{total:+d} unit(s) in total. Each delta was recomputed at apply time "
            "from the stock at that moment"
        )
        message += f" (stock had moved since the preview at {moved} row(s))." if moved else "."
        if repeated:
            message += f" {repeated} row(s) had already been applied and were not applied again."
        variant_ids, location_ids = {r.variant.pk for r in rows}, {r.location.pk for r in rows}
        return result, _with_push(message, describe_push, variant_ids, location_ids)


def _optional_count(record: CsvRecord, column: str | None) -> int | None:
    if column is None:
        return None
    try:
        return count_parse(record.cells.get(column, ""), column=column)
    except ValueError:
        return None  # informational only


def _count_target_problem(
    entry: dict[str, Any],
    variant: VariantInfo | None,
    location: Location | None,
    locations: dict[str, Location],
) -> str | None:
    problems = []
    if variant is None:
        problems.append("unknown SKU")
    if location is None:
        known = ", ".join(sorted(loc.code for loc in locations.values()))
        problems.append(f"unknown location {entry['location']!r} (known: {known})")
    elif not location.is_active:
        problems.append(f"location {location.code} is inactive")
    return "; ".join(problems) or None


def _levels_of(variant_ids: list[int]) -> dict[tuple[int, int], tuple[int, int]]:
    """(variant, location) -> (on_hand, held): held is on hand but not available."""
    levels = {}
    for start in range(0, len(variant_ids), LOOKUP_CHUNK):
        for v, loc, on_hand, committed, reserved, damaged in StockLevel.objects.filter(
            variant_id__in=variant_ids[start : start + LOOKUP_CHUNK]
        ).values_list("variant_id", "location_id", "on_hand", "committed", "reserved", "damaged"):
            available = stock_available_compute(
                on_hand=on_hand, committed=committed, reserved=reserved, damaged=damaged
            )
            levels[(v, loc)] = (on_hand, on_hand - available)
    return levels


def _count_warnings(row: CountRow) -> list[str]:
    warnings = []
    if row.on_hand_in_file is not None and row.on_hand_in_file != row.on_hand:
        warnings.append(
            f"on hand was {row.on_hand_in_file} in the file and is {row.on_hand} now: "
            "stock moved since the export; the count still sets it to the counted value"
        )
    if row.available_after < 0:
        warnings.append(
            f"{row.held} unit(s) are committed, reserved or damaged: "
            f"available becomes {row.available_after}"
        )
    return warnings


def count_idempotency_key(record: CsvImport, variant_id: int, location_id: int) -> str:
    """Deterministic per import and stock level: confirming twice applies once."""
    return f"csv-import:{record.pk}:{variant_id}:{location_id}"


def _counts_apply(
    record: CsvImport, rows: list[CountRow], user: User | None
) -> list[services.MovementResult]:
    """Every row in one transaction (bulk queries, one stock event): all or nothing."""
    counts = [
        services.CountSpec(
            variant_id=r.variant.pk,
            location_id=r.location.pk,
            counted_on_hand=r.counted,
            idempotency_key=count_idempotency_key(record, r.variant.pk, r.location.pk),
            note=f"Cycle count from {record.file_name}, row {r.row}",
            source_ref=f"csv-import:{record.pk}",
        )
        for r in rows
    ]
    try:
        return services.stock_counts_apply_bulk(counts=counts, source="admin", user=user)
    except BulkMovementRejected as exc:
        first = min(exc.row_errors)
        r = rows[first]
        more = len(exc.row_errors) - 1
        raise ImportRefused(
            f"Row {r.row} ({r.sku} at {r.location.code}): {exc.row_errors[first][0]}"
            + (f" (and {more} more row(s))" if more else "")
            + "; nothing was applied."
        ) from exc


IMPORTS: dict[str, PriceImport | CountImport] = {
    CsvImport.Kind.PRICES: PriceImport(),
    CsvImport.Kind.COUNTS: CountImport(),
}


def _with_push(
    message: str,
    describe_push: PushDescriber | None,
    variant_ids: set[int],
    location_ids: set[int] | None,
) -> str:
    text = describe_push(variant_ids, location_ids) if describe_push is not None else ""
    return f"{message} {text}" if text else message


def _sorted(errors: list[RowError]) -> list[RowError]:
    return sorted(errors, key=lambda e: e.row)


# --- services ---------------------------------------------------------------------------------


def csv_import_max_rows(kind: str) -> int:
    return getattr(settings, IMPORTS[kind].max_rows_setting)


def csv_import_preview_expiry() -> timedelta:
    return timedelta(hours=settings.PIMSYNC_CSV_IMPORT_PREVIEW_HOURS)


def csv_import_preview(
    *, kind: str, file_name: str, data: bytes, user: User | None
) -> tuple[ImportPreview, CsvImport | None]:
    """Read and check an uploaded file; store it as a CsvImport only when no row
    has an error (returns None for the record otherwise, and nothing is stored).

    Raises CsvFileError when the file as a whole cannot be read.
    """
    spec = IMPORTS[kind]
    table = csv_table_read(data, max_rows=settings.PIMSYNC_CSV_IMPORT_MAX_ROWS)
    entries, errors, columns, notes = spec.entries_from_table(table)
    limit = csv_import_max_rows(kind)
    if len(entries) + len(errors) > limit:
        raise CsvFileError(
            f"The file has {len(entries) + len(errors):,} rows to import; at most {limit:,} "
            f"{spec.kind.label.lower()} are imported at once. Split it into smaller files."
        )
    preview = spec.check(entries, errors, columns)
    preview.notes = notes
    if not preview.rows and not preview.errors:
        raise CsvFileError(spec.nothing_to_import)
    if preview.has_errors:
        return preview, None
    digest = hashlib.sha256(data).hexdigest()
    preview.notes += _earlier_application_notes(kind, digest)
    with transaction.atomic():
        CsvImport.objects.filter(
            status=CsvImport.Status.PREVIEWED,
            created_at__lt=timezone.now() - csv_import_preview_expiry(),
        ).delete()
        record = CsvImport.objects.create(
            kind=kind,
            file_name=file_name[:255],
            file_sha256=digest,
            encoding=table.encoding,
            delimiter=table.delimiter_name,
            row_count=len(preview.rows),
            rows=[r.stored() for r in preview.rows],
            result={"columns": columns, "notes": preview.notes},
            created_by=user if user is not None and user.is_authenticated else None,
        )
    return preview, record


def _earlier_application_notes(kind: str, digest: str) -> list[str]:
    earlier = (
        CsvImport.objects.filter(kind=kind, file_sha256=digest, status=CsvImport.Status.APPLIED)
        .select_related("applied_by")
        .order_by("-applied_at")
        .first()
    )
    if earlier is None:
        return []
    who = earlier.applied_by.get_username() if earlier.applied_by else "someone"
    return [
        f"This exact file was already applied on {earlier.applied_at:%Y-%m-%d %H:%M} UTC "
        f"by {who}. Confirming applies it again as a new import."
    ]


def csv_import_review(*, record: CsvImport) -> ImportPreview:
    """The stored rows checked against the database as it is now."""
    spec = IMPORTS[record.kind]
    preview = spec.check(list(record.rows), [], list(record.result.get("columns", [])))
    preview.notes = list(record.result.get("notes", []))
    return preview


def csv_import_is_expired(record: CsvImport) -> bool:
    return (
        record.status == CsvImport.Status.PREVIEWED
        and record.created_at < timezone.now() - csv_import_preview_expiry()
    )


def csv_import_apply(
    *,
    import_id: Any,
    user: User | None,
    describe_push: PushDescriber | None = None,
) -> ApplyOutcome:
    """Apply a previewed import exactly once, all rows or none.

    The record is locked, its rows are checked again against the current
    database, and they are applied through inventory.services in the same
    transaction that marks the record applied. A second call returns
    ``already_applied`` and changes nothing; a row that no longer passes the
    check (or a service refusal) returns ``refused`` with nothing changed.
    Raises CsvImport.DoesNotExist for an unknown id.
    """
    try:
        with transaction.atomic():
            record = CsvImport.objects.select_for_update().get(pk=import_id)
            if record.status == CsvImport.Status.APPLIED:
                return ApplyOutcome("already_applied", _already_applied(record), record)
            if csv_import_is_expired(record):
                raise ImportRefused("This preview has expired; upload the file again.")
            preview = csv_import_review(record=record)
            if preview.has_errors:
                raise ImportRefused(
                    f"{len(preview.errors)} row(s) no longer pass the checks (the catalog "
                    "changed since the preview); nothing was applied.",
                    preview,
                )
            try:
                result, message = IMPORTS[record.kind].apply(record, preview, user, describe_push)
            except InventoryError as exc:  # e.g. a variant deleted since the check
                raise ImportRefused(f"{exc.message}; nothing was applied.") from exc
            record.status = CsvImport.Status.APPLIED
            record.applied_at = timezone.now()
            record.applied_by = user if user is not None and user.is_authenticated else None
            record.result = {**record.result, **result}
            record.message = message
            record.save(update_fields=["status", "applied_at", "applied_by", "result", "message"])
            return ApplyOutcome("applied", message, record)
    except ImportRefused as refused:
        record = CsvImport.objects.get(pk=import_id)
        return ApplyOutcome("refused", refused.message, record, refused.preview)


def _already_applied(record: CsvImport) -> str:
    who = record.applied_by.get_username() if record.applied_by else "someone"
    return (
        f"This import was already applied on {record.applied_at:%Y-%m-%d %H:%M} UTC by {who}; "
        f"nothing was applied twice. {record.message}"
    )
