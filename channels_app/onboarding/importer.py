"""Reading a channel's whole catalog and matching it to pimsync (docs/onboarding.md).

    catalog_import_start      one running import per channel; its task is queued
    catalog_import_run        (the task) take the lease, then page after page:
                              connector.catalog_page(cursor) through the channel's
                              shared rate budget -> in one transaction: the page's
                              items (upserted by their channel key), the next
                              cursor, the counters, a renewed lease
                              -> after the last page: match every item, finish
    catalog_import_resume     a failed import goes on from its stored cursor
    catalog_imports_sweep     (beat) an import whose lease ran out - its worker was
                              killed, or its queued task was lost - is queued again
                              and resumes the same way

A page read twice (the worker died after reading, before storing) upserts the same
items again, so nothing is doubled. The connector does HTTP only.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from inventory.models import Variant

from .. import dispatch
from ..connectors.base import CatalogItem, CatalogPage, Connector
from ..connectors.errors import ConnectorError, FailureKind
from ..models import CatalogImport, CatalogImportItem, Channel, ChannelListing
from ..sync.connection import channel_connector
from .matching import Candidate, Item, Matcher, Result
from .review import PriceSource, catalog_items_link

log = logging.getLogger(__name__)
ERROR_MESSAGE_MAX = 2000
ITEM_FIELDS = CatalogImportItem.CHANNEL_FIELDS
Status = CatalogImport.Status
ItemStatus = CatalogImportItem.Status


class CatalogImportBusyError(Exception):
    """An import of this channel is already running."""


class CatalogImportError(Exception):
    """The import cannot go on (disabled channel, credentials refused, a refusal);
    it is failed with this message and can be resumed once the cause is fixed."""


# --- starting and resuming ---------------------------------------------------------------------


def catalog_import_start(
    *, channel: Channel, requested_by_id: int | None = None, now: datetime | None = None
) -> CatalogImport:
    """Open an import of the channel's catalog and queue its task after commit.

    Raises CatalogImportBusyError while another import of the channel runs (one that
    stopped is resumed by the sweeper, or failed and resumed from the admin/API)."""
    now = now or timezone.now()
    with transaction.atomic():
        Channel.objects.select_for_update().filter(pk=channel.pk).first()
        busy = CatalogImport.objects.filter(channel=channel, status=Status.RUNNING).first()
        if busy is not None:
            raise CatalogImportBusyError(
                f"Catalog import #{busy.pk} of {channel} is still running "
                f"({busy.items_read} items read)."
            )
        run = CatalogImport.objects.create(
            channel=channel,
            started_at=now,
            requested_by_id=requested_by_id,
            lease_until=_queued_until(now),
        )
        dispatch.catalog_import_request_on_commit(run.pk)
    return run


def _queued_until(now: datetime) -> datetime:
    """How long a queued import waits for its task before the sweeper queues it again
    (the task may have been lost with the broker)."""
    return now + timedelta(seconds=settings.PIMSYNC_CATALOG_IMPORT_LEASE_SECONDS)


def catalog_import_resume(*, run: CatalogImport) -> bool:
    """Go on with a failed import from its stored cursor (or a running one whose
    worker is gone); False when it finished or a worker holds it."""
    now = timezone.now()
    with transaction.atomic():
        resumed = (
            CatalogImport.objects.filter(pk=run.pk)
            .filter(Q(status=Status.FAILED) | Q(status=Status.RUNNING, lease_until__lt=now))
            .update(
                status=Status.RUNNING,
                finished_at=None,
                lease_token="",
                lease_until=_queued_until(now),
            )
        )
        if resumed:
            dispatch.catalog_import_request_on_commit(run.pk)
    return bool(resumed)


def catalog_imports_sweep(*, now: datetime | None = None) -> list[int]:
    """Queue again every running import whose worker's lease has run out (beat)."""
    now = now or timezone.now()
    stale = list(
        CatalogImport.objects.filter(status=Status.RUNNING, lease_until__lt=now).values_list(
            "pk", flat=True
        )
    )
    return [pk for pk in stale if dispatch.catalog_import_request(pk)]


# --- running -------------------------------------------------------------------------------------


@dataclass
class _Lease:
    run_id: int
    token: str

    def renew(self, now: datetime, **changes: Any) -> bool:
        """Write ``changes`` and extend the lease, if it is still ours."""
        until = now + timedelta(seconds=settings.PIMSYNC_CATALOG_IMPORT_LEASE_SECONDS)
        return bool(
            CatalogImport.objects.filter(pk=self.run_id, lease_token=self.token).update(
                lease_until=until, progress_at=now, **changes
            )
        )


def _claim(run_id: int, now: datetime) -> _Lease | None:
    """Take a queued import (no token yet) or one whose worker's lease ran out."""
    token = uuid.uuid4().hex
    until = now + timedelta(seconds=settings.PIMSYNC_CATALOG_IMPORT_LEASE_SECONDS)
    claimed = (
        CatalogImport.objects.filter(pk=run_id, status=Status.RUNNING)
        .filter(Q(lease_token="") | Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_token=token, lease_until=until, progress_at=now)
    )
    return _Lease(run_id, token) if claimed else None


def catalog_import_run(
    run_id: int,
    *,
    clock: Callable[[], datetime] = timezone.now,
    sleep: Callable[[float], None] = time.sleep,
    budget_seconds: float | None = None,
) -> str:
    """Read the rest of the catalog, then match it. Returns what happened:
    ``finished``, ``continued`` (the time budget ran out; its continuation is
    queued), ``failed``, or ``busy`` (another worker holds it, or it is not running).
    Never raises for the channel's failures: they fail the import with the reason."""
    lease = _claim(run_id, clock())
    if lease is None:
        return "busy"
    run = CatalogImport.objects.select_related("channel").get(pk=run_id)
    if run.progress_at and run.pages:
        CatalogImport.objects.filter(pk=run_id).update(resumes=run.resumes + 1)
    budget = budget_seconds or settings.PIMSYNC_CATALOG_IMPORT_TASK_SECONDS
    try:
        deadline = time.monotonic() + budget
        if run.read_done_at is None and not _read(run, lease, clock, sleep, deadline=deadline):
            CatalogImport.objects.filter(pk=run_id, lease_token=lease.token).update(
                lease_token="", lease_until=_queued_until(clock())
            )
            dispatch.catalog_import_request(run_id)
            return "continued"
        _match(run, lease, clock)
    except Exception as exc:
        if not isinstance(exc, CatalogImportError | ConnectorError):
            log.exception("catalog import #%s of channel %s failed", run_id, run.channel_id)
        _fail(run, lease, exc, clock())
        return "failed"
    return "finished"


def _fail(run: CatalogImport, lease: _Lease, exc: Exception, now: datetime) -> None:
    reason = exc.message if isinstance(exc, ConnectorError) else str(exc)
    CatalogImport.objects.filter(pk=run.pk, lease_token=lease.token).update(
        status=Status.FAILED,
        finished_at=now,
        lease_token="",
        lease_until=None,
        error_message=reason[:ERROR_MESSAGE_MAX],
    )


def _read(
    run: CatalogImport,
    lease: _Lease,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
    *,
    deadline: float,
) -> bool:
    """Read and store pages until the last one (True) or the deadline (False)."""
    channel = run.channel
    if not channel.is_enabled:
        raise CatalogImportError("The channel is disabled.")
    connector = channel_connector(channel)
    cursor: str | None = run.cursor or None
    position = run.items_read
    while True:
        started = time.monotonic()
        page = _read_page(connector, cursor, sleep)
        spent = time.monotonic() - started
        position = _store_page(run, lease, page, position, spent, clock())
        if page.next_cursor is None:
            return True
        cursor = page.next_cursor
        if time.monotonic() >= deadline:
            return False


def _read_page(
    connector: Connector, cursor: str | None, sleep: Callable[[float], None]
) -> CatalogPage:
    """One page; retryable failures (429, THROTTLED, 5xx, timeouts) are waited out
    and read again, at most PIMSYNC_CATALOG_IMPORT_READ_ATTEMPTS times in a row."""
    attempts = max(1, settings.PIMSYNC_CATALOG_IMPORT_READ_ATTEMPTS)
    for attempt in range(attempts):
        try:
            return connector.catalog_page(
                cursor, page_size=settings.PIMSYNC_CATALOG_IMPORT_PAGE_SIZE
            )
        except ConnectorError as exc:
            if exc.kind is not FailureKind.RETRYABLE or attempt + 1 == attempts:
                raise
            wait = exc.retry_after if exc.retry_after is not None else 2.0 ** min(attempt, 5)
            sleep(min(wait, settings.PIMSYNC_CATALOG_IMPORT_MAX_RETRY_WAIT_SECONDS))
    raise CatalogImportError("unreachable: the last attempt raised")


def _item_row(run: CatalogImport, item: CatalogItem, position: int) -> CatalogImportItem:
    return CatalogImportItem(
        run_id=run.pk,
        key=item.key[:200],
        position=position,
        sku=item.sku[:100],
        title=item.title[:255],
        product_title=item.product_title[:255],
        barcode=item.barcode[:64],
        options=dict(item.options),
        price=item.price,
        quantity=item.quantity,
        external_product_id=item.product_id[:120],
        external_variant_id=item.variant_id[:120],
        inventory_item_id=item.inventory_item_id[:120],
        offer_id=item.offer_id[:120],
        group_ref=item.group_ref[:120],
        image_url=item.image_url[:500]
        if item.image_url.startswith(("http://", "https://"))
        else "",
    )


def _store_page(
    run: CatalogImport,
    lease: _Lease,
    page: CatalogPage,
    position: int,
    spent: float,
    now: datetime,
) -> int:
    """The page's items, the next cursor and the counters, in one transaction (so a
    resumed read starts at the right page); raises if the lease was lost."""
    rows = [_item_row(run, item, position + i) for i, item in enumerate(page.items)]
    with transaction.atomic():
        locked = (
            CatalogImport.objects.select_for_update()
            .filter(pk=run.pk, lease_token=lease.token)
            .first()
        )
        if locked is None:
            raise CatalogImportError("another worker took this import over")
        CatalogImportItem.objects.bulk_create(
            rows,
            batch_size=500,
            update_conflicts=True,
            unique_fields=["run", "key"],
            update_fields=list(ITEM_FIELDS),
        )
        groups = dict(locked.groups)
        for group in page.groups:
            groups[group.product_id] = {
                "title": group.title,
                "variant_ids": list(group.variant_ids),
            }
        fresh = CatalogImportItem.objects.filter(run_id=run.pk).count()
        changes: dict[str, Any] = {
            "cursor": page.next_cursor or "",
            "pages": locked.pages + 1,
            "calls": locked.calls + page.calls,
            "items_read": fresh,
            "read_seconds": locked.read_seconds + spent,
            "groups": groups,
        }
        if page.total is not None:
            changes["total_hint"] = page.total
        if page.next_cursor is None:
            changes["read_done_at"] = now
        lease.renew(now, **changes)
    return fresh


# --- matching ------------------------------------------------------------------------------------


def _candidates() -> list[Candidate]:
    rows = Variant.objects.values_list("pk", "sku", "barcode", "title", "options", "product__title")
    return [
        Candidate(
            id=pk,
            sku=sku,
            barcode=barcode,
            text=f"{product_title} {title}",
            option_values=[str(v) for v in (options or {}).values()],
        )
        for pk, sku, barcode, title, options, product_title in rows.iterator(chunk_size=5000)
    ]


def _grouped(run: CatalogImport, items: list[CatalogImportItem]) -> None:
    """Give items the channel product that groups them (Magento: a configurable)."""
    by_variant = {
        str(variant_id): (product_id, spec.get("title", ""))
        for product_id, spec in (run.groups or {}).items()
        for variant_id in spec.get("variant_ids", [])
    }
    for item in items:
        found = by_variant.get(item.external_variant_id)
        if found is not None:
            item.external_product_id, item.group_ref = found[0], found[0]
            item.product_title = item.product_title or str(found[1])[:255]


def _channel_identity(listing_sku: str, variant_id: str) -> list[tuple[str, str]]:
    keys = []
    if variant_id:
        keys.append(("id", variant_id))
    if listing_sku:
        keys.append(("sku", listing_sku))
    return keys


def _existing_listings(channel: Channel) -> tuple[dict[tuple[str, str], tuple[int, int]], set[int]]:
    """The channel's listings by channel identity ((kind, value) -> (listing, variant))
    and the variants listed there."""
    by_identity: dict[tuple[str, str], tuple[int, int]] = {}
    listed: set[int] = set()
    rows = ChannelListing.objects.filter(channel=channel).values_list(
        "pk", "variant_id", "listing_sku", "variant__sku", "external_variant_id"
    )
    for pk, variant_id, listing_sku, sku, external_variant_id in rows.iterator(chunk_size=5000):
        listed.add(variant_id)
        for key in _channel_identity(listing_sku or sku, external_variant_id):
            by_identity[key] = (pk, variant_id)
    return by_identity, listed


def _apply_result(item: CatalogImportItem, result: Result) -> None:
    item.status, item.match = result.status, result.match
    item.variant_id, item.score = result.variant_id, result.score
    item.candidates, item.note = result.candidates, result.note[:255]


def _settle_listed(
    item: CatalogImportItem,
    by_identity: dict[tuple[str, str], tuple[int, int]],
    listed: set[int],
) -> None:
    """An item the channel already has a listing for is linked; a match to a
    variant listed on the channel under other ids is a conflict."""
    for key in _channel_identity(item.sku, item.external_variant_id):
        if key in by_identity:
            item.listing_id, item.variant_id = by_identity[key]
            item.status = ItemStatus.LINKED
            item.note = "already listed on this channel"
            return
    if item.variant_id in listed and item.status in (ItemStatus.MATCHED, ItemStatus.PROPOSED):
        item.status = ItemStatus.CONFLICT
        item.candidates, item.variant_id = [item.variant_id], None
        item.note = "its variant is listed on this channel under other ids"


def _match(run: CatalogImport, lease: _Lease, clock: Callable[[], datetime]) -> None:
    """Match every item, store the outcome, link exact SKU matches when the channel
    says so, and finish. Items are rewritten in one transaction (faster than
    updating 10,000 rows one by one, and all or nothing)."""
    channel = run.channel
    run.refresh_from_db(fields=["groups"])  # gathered page by page since the run was loaded
    items = list(CatalogImportItem.objects.filter(run=run).order_by("position"))
    _grouped(run, items)
    matcher = Matcher(_candidates(), threshold=settings.PIMSYNC_MATCH_TITLE_THRESHOLD)
    results = matcher.match(
        [
            Item(
                key=item.key,
                sku=item.sku,
                barcode=item.barcode,
                text=f"{item.product_title} {item.title}",
                option_values=[str(v) for v in (item.options or {}).values()],
            )
            for item in items
        ]
    )
    by_identity, listed = _existing_listings(channel)
    for item, result in zip(items, results, strict=True):
        _apply_result(item, result)
        _settle_listed(item, by_identity, listed)
    with transaction.atomic():
        if (
            not CatalogImport.objects.select_for_update()
            .filter(pk=run.pk, lease_token=lease.token)
            .exists()
        ):
            raise CatalogImportError("another worker took this import over")
        CatalogImportItem.objects.filter(run=run).delete()
        for item in items:
            item.pk = None
        CatalogImportItem.objects.bulk_create(items, batch_size=500)
        auto_linked = _auto_link(run) if channel.auto_link_exact_sku else 0
        lease.renew(
            clock(),
            status=Status.FINISHED,
            finished_at=clock(),
            counts=catalog_import_counts(run=run),
            auto_linked=auto_linked,
            error_message="",
        )
    CatalogImport.objects.filter(pk=run.pk).update(lease_token="", lease_until=None)


def _auto_link(run: CatalogImport) -> int:
    """Link the exact SKU matches without review (the channel's setting)."""
    exact = CatalogImportItem.objects.filter(
        run=run, status=ItemStatus.MATCHED, match=CatalogImportItem.Match.SKU
    )
    return catalog_items_link(items=exact, price_source=PriceSource.PIMSYNC, user=None).linked


def catalog_import_counts(*, run: CatalogImport) -> dict[str, int]:
    """Items per review status, as they stand now."""
    rows = (
        CatalogImportItem.objects.filter(run=run)
        .values("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    return dict(rows)
