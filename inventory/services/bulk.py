"""Many stock movements or cycle counts at once: all of them or none.

Each row keeps the single-movement rules of stock.py, with bulk queries: levels
locked in pk order in one pass, ledger rows inserted together, levels moved in
a few statements, one domain event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from .. import events
from ..errors import BulkMovementRejected, InsufficientStock, InvalidMovement
from ..locks import stock_levels_lock
from ..models import Location, MovementReason, StockLevel, StockMovement, Variant
from ._ledger import BUCKETS, Deltas, MovementResult, check_result, same_payload, validate_common


@dataclass(frozen=True)
class MovementSpec:
    """One movement of a bulk request, already resolved to ids."""

    variant_id: int
    location_id: int
    deltas: Deltas
    reason: str
    idempotency_key: str
    note: str = ""
    source_ref: str = ""


def _bulk_precheck(specs: Sequence[MovementSpec], source: str) -> dict[int, list[str]]:
    errors: dict[int, list[str]] = {}
    first_row_of: dict[str, int] = {}
    for row, spec in enumerate(specs):
        try:
            validate_common(spec.reason, spec.idempotency_key, source)
        except InvalidMovement as exc:
            errors.setdefault(row, []).append(exc.message)
        # A count that matches is still recorded (audit evidence), as in stock_count.
        if spec.deltas.is_zero and spec.reason != MovementReason.COUNT:
            errors.setdefault(row, []).append("A movement of 0 changes nothing")
        twin = first_row_of.setdefault(spec.idempotency_key, row)
        if twin != row:
            errors.setdefault(row, []).append(
                f"Idempotency key {spec.idempotency_key!r} is also used by row {twin}"
            )
    return errors


def _movements_by_key(keys: list[str]) -> dict[str, StockMovement]:
    found: dict[str, StockMovement] = {}
    for start in range(0, len(keys), 2000):
        chunk = keys[start : start + 2000]
        found.update(
            (m.idempotency_key, m) for m in StockMovement.objects.filter(idempotency_key__in=chunk)
        )
    return found


def _bulk_levels_update(
    levels: dict[tuple[int, int], StockLevel], moved: dict[tuple[int, int], dict[str, int]]
) -> None:
    """Every bucket moved by its delta (``bucket = bucket + delta``), 1,000 levels a
    statement: ``WITH moved(id, …) AS (VALUES …) UPDATE … FROM moved``.

    Django's bulk_update writes one CASE WHEN per row and column, which the database
    evaluates row by row: 20,000 levels took half a minute on PostgreSQL. A join on
    the VALUES list is linear. PostgreSQL and SQLite (3.33+) both speak it.
    """
    ops = connection.ops
    table = ops.quote_name(StockLevel._meta.db_table)
    stamp = ops.adapt_datetimefield_value(timezone.now())
    deltas = [f"d_{b}" for b in BUCKETS]
    assignments = ", ".join(
        [
            f"{ops.quote_name(b)} = {table}.{ops.quote_name(b)} + moved.{d}"
            for b, d in zip(BUCKETS, deltas, strict=True)
        ]
        + [f"{ops.quote_name('updated_at')} = %s"]
    )
    # Typed parameters: PostgreSQL would otherwise read the VALUES columns as text.
    row_sql = "(CAST(%s AS BIGINT)" + ", CAST(%s AS INTEGER)" * len(BUCKETS) + ")"
    rows = [(levels[pair].pk, *(d[b] for b in BUCKETS)) for pair, d in moved.items()]
    head = f"WITH moved (id, {', '.join(deltas)}) AS (VALUES "
    # Only quoted model names and parameter markers are formatted in.
    tail = f") UPDATE {table} SET {assignments} FROM moved WHERE {table}.id = moved.id"  # noqa: S608
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 1000):
            chunk = rows[start : start + 1000]
            cursor.execute(
                head + ", ".join([row_sql] * len(chunk)) + tail,
                [p for row in chunk for p in row] + [stamp],
            )


def stock_movements_apply_bulk(
    *,
    specs: Sequence[MovementSpec],
    source: str,
    user: User | None = None,
) -> list[MovementResult]:
    """Apply many movements in one transaction: all of them or none.

    Each movement follows stock_movement_apply's rules (ledger row with its own
    idempotency key and balances-after, buckets never negative, promising
    reasons limited to what is available — in the order given, so two rows on
    one SKU see each other), but with bulk queries: rows locked in pk order,
    ledger rows inserted together, levels moved with F() in a few UPDATEs, one
    domain event. A key applied before with the same payload is returned with
    ``created=False``. Raises BulkMovementRejected naming every failing row;
    then nothing is written.
    """
    errors = _bulk_precheck(specs, source)
    if errors:
        raise BulkMovementRejected(errors)
    if not specs:
        return []
    with transaction.atomic():
        levels = stock_levels_lock({(s.variant_id, s.location_id) for s in specs})
        prior = _movements_by_key([s.idempotency_key for s in specs])
        return _bulk_apply_locked(specs, levels, prior, source=source, user=user)


def _bulk_apply_locked(
    specs: Sequence[MovementSpec],
    levels: dict[tuple[int, int], StockLevel],
    prior: dict[str, StockMovement],
    *,
    source: str,
    user: User | None,
) -> list[MovementResult]:
    """stock_movements_apply_bulk once its levels are locked and the movements already
    stored under its keys (``prior``) are known; raises BulkMovementRejected."""
    locations = Location.objects.in_bulk({s.location_id for s in specs})
    skus = dict(
        Variant.objects.filter(pk__in={s.variant_id for s in specs}).values_list("pk", "sku")
    )
    for spec in specs:
        levels[(spec.variant_id, spec.location_id)].location = locations[spec.location_id]
    errors: dict[int, list[str]] = {}
    results: list[MovementResult | None] = [None] * len(specs)
    new: list[tuple[int, StockMovement]] = []
    moved: dict[tuple[int, int], dict[str, int]] = {}
    for row, spec in enumerate(specs):
        pair = (spec.variant_id, spec.location_id)
        existing = prior.get(spec.idempotency_key)
        if existing is not None:
            if same_payload(existing, *pair, spec.deltas, spec.reason):
                results[row] = MovementResult(existing, created=False)
            else:
                errors[row] = [
                    f"Idempotency key {spec.idempotency_key!r} was already used for a "
                    "different stock change"
                ]
            continue
        level = levels[pair]
        if not level.location.is_active:
            errors[row] = [f"Location {level.location} is inactive"]
            continue
        try:
            check_result(level, spec.deltas, spec.reason, skus[spec.variant_id])
        except (InsufficientStock, InvalidMovement) as exc:
            errors[row] = [exc.message]
            continue
        total = moved.setdefault(pair, dict.fromkeys(BUCKETS, 0))
        for b in BUCKETS:
            step = getattr(spec.deltas, b)
            setattr(level, b, getattr(level, b) + step)
            total[b] += step
        new.append((row, _ledger_row(level, spec, source=source, user=user)))
    if errors:
        raise BulkMovementRejected(errors)
    StockMovement.objects.bulk_create([m for _, m in new], batch_size=1000)
    for row, movement in new:
        results[row] = MovementResult(movement, created=True)
    if moved:
        _bulk_levels_update(levels, moved)
        events.publish_stock_changed(
            variant_ids={v for v, _ in moved}, location_ids={loc for _, loc in moved}
        )
    return [r for r in results if r is not None]


@dataclass(frozen=True)
class CountSpec:
    """One cycle count of a bulk request, already resolved to ids."""

    variant_id: int
    location_id: int
    counted_on_hand: int
    idempotency_key: str
    note: str = ""
    source_ref: str = ""


def stock_counts_apply_bulk(
    *,
    counts: Sequence[CountSpec],
    source: str,
    user: User | None = None,
) -> list[MovementResult]:
    """Record many cycle counts in one transaction: all of them or none.

    stock_count's rules in bulk: each delta to the counted quantity is computed
    under the row lock (so stock that moved since the sheet was printed is
    counted, not double-counted), a matching count is still a zero movement, and
    a key applied before returns its first movement with ``created=False``.
    Raises BulkMovementRejected naming every failing row (indices into
    ``counts``); then nothing is written.
    """
    errors = {
        row: ["A counted quantity must be a whole number of 0 or more"]
        for row, c in enumerate(counts)
        if not isinstance(c.counted_on_hand, int) or c.counted_on_hand < 0
    }
    if errors:
        raise BulkMovementRejected(errors)
    with transaction.atomic():
        levels = stock_levels_lock({(c.variant_id, c.location_id) for c in counts})
        prior = _movements_by_key([c.idempotency_key for c in counts])
        results: dict[int, MovementResult] = {}
        specs: list[MovementSpec] = []
        spec_rows: list[int] = []
        for row, c in enumerate(counts):
            existing = prior.get(c.idempotency_key)
            if existing is None:
                specs.append(_count_movement_spec(c, levels[(c.variant_id, c.location_id)]))
                spec_rows.append(row)
            elif (existing.variant_id, existing.location_id) == (c.variant_id, c.location_id):
                results[row] = MovementResult(existing, created=False)
            else:
                errors[row] = [
                    f"Idempotency key {c.idempotency_key!r} was already used for another count"
                ]
        errors |= {spec_rows[row]: m for row, m in _bulk_precheck(specs, source).items()}
        if errors:
            raise BulkMovementRejected(errors)
        try:
            # Every stored key is in `results` already: none of these has a prior movement.
            applied = _bulk_apply_locked(specs, levels, {}, source=source, user=user)
        except BulkMovementRejected as exc:
            raise BulkMovementRejected(
                {spec_rows[row]: messages for row, messages in exc.row_errors.items()}
            ) from None
    results.update(zip(spec_rows, applied, strict=True))
    return [results[row] for row in range(len(counts))]


def _count_movement_spec(count: CountSpec, level: StockLevel) -> MovementSpec:
    return MovementSpec(
        variant_id=count.variant_id,
        location_id=count.location_id,
        deltas=Deltas(on_hand=count.counted_on_hand - level.on_hand),
        reason=MovementReason.COUNT,
        idempotency_key=count.idempotency_key,
        note=count.note,
        source_ref=count.source_ref,
    )


def _ledger_row(
    level: StockLevel, spec: MovementSpec, *, source: str, user: User | None
) -> StockMovement:
    """The ledger row of a movement already applied to ``level`` in memory."""
    d = spec.deltas
    return StockMovement(
        variant_id=spec.variant_id,
        location_id=spec.location_id,
        delta_on_hand=d.on_hand,
        delta_committed=d.committed,
        delta_reserved=d.reserved,
        delta_damaged=d.damaged,
        reason=spec.reason,
        source=source,
        source_ref=spec.source_ref,
        idempotency_key=spec.idempotency_key,
        note=spec.note,
        on_hand_after=level.on_hand,
        available_after=level.available,
        created_by=user if user is not None and user.is_authenticated else None,
    )
