"""Channel-side edits seen at once (docs/reconciliation.md, docs/guarantees.md).

A channel's inventory or product webhook (Shopify ``inventory_levels/update`` and
``products/update``, WooCommerce ``product.updated``) reports a listing's value.
That value may be a person's edit in the channel's own console, a sale, or the
echo of pimsync's own write. Each one is compared with what pimsync publishes
now, in the transaction that processes the stored event:

    agrees      the channel shows pimsync's value (an echo, a sale already
                imported): nothing to do; open findings of the field resolve
    echo        it is the value pimsync last pushed there (a newer one is on its way)
    in flight   a push of the field is pending or running: compared again once
                it is done (a ChannelEdit row waits; a task and the sweeper look again)
    superseded  pimsync pushed the field after the report was received
    sale?       a quantity below pimsync's: a sale whose order is not imported yet
                looks exactly like that. As for a held push (guard.py), it is
                compared again once an orders poll that started after the report
                has been applied and no order event of the SKU is pending — then
                the sale is in pimsync's numbers and the value agrees
    stale       before a difference becomes a finding, the channel's current value
                is read (one read): pimsync's value by now means the body was built
                before pimsync's write reached it (WooCommerce sends every field of
                a saved product) and it is dropped; yet another value is judged instead
    drift       anything else: a DriftFinding (source "webhook"), handled by the
                channel's conflict policy when beyond its drift threshold:
                trust pimsync (push pimsync's value back), trust the channel (the
                quantity as a stock count of the channel's first-priority
                location, the price as the listing's override), or flag it for a
                person (an alert with both values; the choice is carried out by
                ``edit_findings_choose``, which synclog's admin calls).

A quantity found to drift becomes the listing's confirmed baseline (what the
channel shows, its sales imported), so the push that follows is not held by
the push guard as if it were an unseen sale.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import partial

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from inventory.locks import stock_levels_lock
from inventory.models import Location
from inventory.services import stock_count
from synclog import services as synclog
from synclog.decisions import Choice
from synclog.models import Alert, DriftFinding

from ..connectors.base import ListingEdit
from ..dispatch import channel_edits_recheck_later, channel_poll_request_for_holds
from ..models import (
    Channel,
    ChannelEdit,
    ChannelListing,
    ChannelLocation,
    ChannelSyncState,
    ConflictPolicy,
    SyncKind,
    SyncMarker,
)
from ..selectors import channel_atp_bulk, channel_price_bulk, listing_is_for_sale
from .connection import channel_connector, listing_ref
from .guard import baseline_record, skus_being_imported
from .markers import listings_mark_dirty
from .reconcile import CENT, Thresholds, price_drift, quantity_drift

log = logging.getLogger(__name__)
RECHECK_BATCH = 2000


class Verdict(StrEnum):
    AGREES = "agrees"
    ECHO = "echo"
    WAIT_PUSH = "waiting_push"
    SUPERSEDED = "superseded"
    WAIT_ORDERS = "waiting_orders"
    DRIFT = "drift"
    # Read back before a difference becomes a finding: the channel shows pimsync's value
    # by now (a body built before pimsync's write: WooCommerce sends every field of the
    # product, the one pimsync did not write as it was then).
    STALE = "stale"


def edit_verdict(
    *,
    kind: str,
    value: Decimal,
    expected: Decimal,
    last_pushed: Decimal | None,
    pushed_at: datetime | None,
    received_at: datetime,
    push_pending: bool,
    orders_in: bool,
) -> Verdict:
    """The rule (pure): what a reported value is, given pimsync's state now.

    ``orders_in``: an orders poll that started after the report was received has
    been applied, and no order event of the SKU is pending."""
    if value == expected:
        return Verdict.AGREES
    if last_pushed is not None and value == last_pushed:
        return Verdict.ECHO
    if push_pending:
        return Verdict.WAIT_PUSH
    if pushed_at is not None and pushed_at >= received_at:
        return Verdict.SUPERSEDED
    if kind == SyncKind.QUANTITY and value < expected and not orders_in:
        return Verdict.WAIT_ORDERS
    return Verdict.DRIFT


@dataclass(frozen=True)
class Report:
    """One value a channel reported for one of its listings."""

    listing: ChannelListing
    kind: str
    value: Decimal
    delivery_id: str
    received_at: datetime

    @property
    def sku(self) -> str:
        return self.listing.variant.sku


# --- finding the listings -------------------------------------------------------------------


def _listings_for(channel: Channel, edits: Sequence[ListingEdit]) -> list[ChannelListing | None]:
    """The listing each edit reports on (None: the channel's item is not listed here)."""
    variant_ids = {e.variant_id for e in edits if e.variant_id}
    item_ids = {e.inventory_item_id for e in edits if e.inventory_item_id}
    skus = {e.sku for e in edits if e.sku}
    found = list(
        ChannelListing.objects.filter(channel=channel)
        .filter(
            Q(external_variant_id__in=variant_ids)
            | Q(inventory_item_id__in=item_ids)
            | Q(listing_sku__in=skus)
            | Q(listing_sku="", variant__sku__in=skus)
        )
        .select_related("variant__product")
    )
    by_variant = {lst.external_variant_id: lst for lst in found if lst.external_variant_id}
    by_item = {lst.inventory_item_id: lst for lst in found if lst.inventory_item_id}
    by_sku = {lst.channel_sku: lst for lst in found}

    def match(edit: ListingEdit) -> ChannelListing | None:
        # The channel's own ids first; the SKU only when the platform sent no id.
        if edit.variant_id:
            return by_variant.get(edit.variant_id)
        if edit.inventory_item_id:
            return by_item.get(edit.inventory_item_id)
        return by_sku.get(edit.sku)

    return [match(edit) for edit in edits]


# --- comparing ------------------------------------------------------------------------------


def _expected(channel: Channel, reports: Sequence[Report]) -> dict[tuple[int, str], Decimal]:
    """What pimsync publishes now, per (variant, kind): the push engine's maths."""
    variant_ids = {r.listing.variant_id for r in reports}
    kinds = {r.kind for r in reports}
    expected: dict[tuple[int, str], Decimal] = {}
    if SyncKind.PRICE in kinds:
        for vid, price in channel_price_bulk(channel=channel, variant_ids=variant_ids).items():
            expected[(vid, SyncKind.PRICE)] = price.quantize(CENT)
    if SyncKind.QUANTITY in kinds:
        for vid, atp in channel_atp_bulk(channel=channel, variant_ids=variant_ids).items():
            expected[(vid, SyncKind.QUANTITY)] = Decimal(atp)
    return expected


def _orders_in(channel: Channel, sku: str, received_at: datetime) -> bool:
    applied = (
        ChannelSyncState.objects.filter(channel=channel)
        .values_list("poll_applied_started_at", flat=True)
        .first()
    )
    return (
        applied is not None
        and applied >= received_at
        and sku not in skus_being_imported(channel.pk)
    )


def _verdict(report: Report, expected: Decimal) -> Verdict:
    listing = report.listing
    if report.kind == SyncKind.PRICE:
        last = listing.last_pushed_price
        last_pushed = None if last is None else Decimal(last).quantize(CENT)
        pushed_at = listing.last_price_pushed_at
    else:
        last_pushed = (
            None if listing.last_pushed_quantity is None else Decimal(listing.last_pushed_quantity)
        )
        pushed_at = listing.last_quantity_pushed_at
    pending = SyncMarker.objects.filter(
        listing=listing, kind=report.kind, status=SyncMarker.Status.PENDING
    ).exists()
    below = report.kind == SyncKind.QUANTITY and report.value < expected
    return edit_verdict(
        kind=report.kind,
        value=report.value,
        expected=expected,
        last_pushed=last_pushed,
        pushed_at=pushed_at,
        received_at=report.received_at,
        push_pending=pending,
        orders_in=below and _orders_in(listing.channel, report.sku, report.received_at),
    )


def webhook_edits_check(
    *,
    channel: Channel,
    edits: Sequence[ListingEdit],
    delivery_id: str,
    received_at: datetime,
    now: datetime | None = None,
) -> Counter[str]:
    """Compare the values one delivery reported with pimsync's, and act on each
    (see the module docstring). Runs in the caller's transaction; returns the
    verdicts counted ("unlisted": no listing of this channel; "not_for_sale":
    a listing pimsync does not offer, left to it)."""
    now = now or timezone.now()
    outcomes: Counter[str] = Counter()
    reports = []
    for edit, listing in zip(edits, _listings_for(channel, edits), strict=True):
        if listing is None:
            outcomes["unlisted"] += 1
        elif not listing_is_for_sale(listing):
            outcomes["not_for_sale"] += 1
        else:
            listing.channel = channel
            value = edit.value.quantize(CENT) if edit.kind == SyncKind.PRICE else edit.value
            reports.append(Report(listing, edit.kind, value, delivery_id, received_at))
    if reports:
        expected = _expected(channel, reports)
        for report in reports:
            # A newer report of the field replaces an older one still waiting.
            ChannelEdit.objects.filter(
                listing=report.listing, kind=report.kind, received_at__lte=received_at
            ).delete()
            outcomes[_act(report, expected[(report.listing.variant_id, report.kind)], now)] += 1
    return outcomes


def _act(
    report: Report, expected: Decimal, now: datetime, *, read: bool = False, fresh: bool = True
) -> str:
    """Decide one report and do what its verdict asks; returns the outcome. A
    difference is read back from the channel first (``read``: it was); ``fresh``:
    a report just received (not a waiting one compared again)."""
    verdict = _verdict(report, expected)
    if verdict is Verdict.DRIFT and read:
        return _drift(report, expected, now)
    channel = report.listing.channel
    if verdict is Verdict.AGREES:
        resolved = synclog.drift_findings_agree(
            channel_id=channel.pk, listing_id=report.listing.pk, field=report.kind, now=now
        )
        if resolved:
            synclog.channel_edit_alert_settle(channel_id=channel.pk, sku=report.sku, now=now)
        return verdict
    if verdict in (Verdict.WAIT_PUSH, Verdict.WAIT_ORDERS):
        _wait(report, verdict, now, fresh=fresh)
        return verdict
    if verdict is Verdict.DRIFT:
        confirmed = _read_back(report, expected)
        if confirmed is None:
            return Verdict.STALE
        if confirmed.value != report.value:
            # The channel moved on since the report: its value now is the one to judge.
            return _act(confirmed, expected, now, read=True, fresh=fresh)
        return _drift(report, expected, now)
    return verdict


def _read_back(report: Report, expected: Decimal) -> Report | None:
    """The channel's current value of the reported field, read through its rate
    budget: None when it shows pimsync's value by now, else a report of what it
    shows (the report itself when it cannot be read: the channel said so a moment ago)."""
    listing = report.listing
    try:
        states = channel_connector(listing.channel).read_listings([listing_ref(listing)])
    except Exception:
        log.exception("reading %s back before recording an edit", report.sku)
        return report
    state = states[0] if states else None
    live = None
    if state is not None and state.found and state.error is None:
        live = state.price if report.kind == SyncKind.PRICE else state.quantity
    if live is None:
        return report
    value = Decimal(live).quantize(CENT) if report.kind == SyncKind.PRICE else Decimal(live)
    if value == expected:
        return None
    if value == report.value:
        return report
    return Report(listing, report.kind, value, report.delivery_id, timezone.now())


def _wait(report: Report, verdict: Verdict, now: datetime, *, fresh: bool) -> None:
    """Keep the report until it can be compared. A fresh one is looked at again in
    a moment (the push or the order webhook may be done by then); one waiting for
    orders asks for an orders poll (again on every re-check: at most one per
    PIMSYNC_HELD_POLL_SECONDS per channel)."""
    waiting = (
        ChannelEdit.Waiting.PUSH if verdict is Verdict.WAIT_PUSH else ChannelEdit.Waiting.ORDERS
    )
    values = {
        "channel": report.listing.channel,
        "reported": report.value,
        "delivery_id": report.delivery_id[:200],
        "received_at": report.received_at,
        "waiting_for": waiting,
        "checked_at": now,
    }
    try:
        with transaction.atomic():
            ChannelEdit.objects.update_or_create(
                listing=report.listing, kind=report.kind, defaults=values
            )
    except IntegrityError:
        # A concurrent report of the same field created the row first: this one waits too.
        ChannelEdit.objects.filter(listing=report.listing, kind=report.kind).update(**values)
    channel_id = report.listing.channel_id
    if waiting == ChannelEdit.Waiting.ORDERS:
        transaction.on_commit(partial(channel_poll_request_for_holds, channel_id))
    if fresh:
        channel_edits_recheck_later(channel_id)


# --- drift and the conflict policy ------------------------------------------------------------


def _edit_key(report: Report) -> str:
    """The stock count's idempotency key: one per delivery and listing, so a
    re-processed event never counts twice."""
    digest = hashlib.sha256(report.delivery_id.encode()).hexdigest()[:32]
    return f"channel-edit:{report.listing.channel_id}:{report.listing.pk}:{digest}"


def _drift(report: Report, expected: Decimal, now: datetime) -> str:
    listing, channel = report.listing, report.listing.channel
    thresholds = Thresholds.of(channel)
    if report.kind == SyncKind.PRICE:
        drift = price_drift(expected=expected, found=report.value, thresholds=thresholds)
    else:
        drift = quantity_drift(
            expected=int(expected), found=int(report.value), thresholds=thresholds
        )
        # What the channel shows, its sales imported: the guard's baseline from now on.
        baseline_record(listing, int(report.value), now)
    if drift is None:  # equal once rounded as reconciliation rounds: nothing to record
        return Verdict.AGREES
    finding = synclog.drift_finding_record(
        channel_id=channel.pk,
        listing_id=listing.pk,
        sku=report.sku,
        field=report.kind,
        expected=expected,
        found=report.value,
        beyond_threshold=drift.beyond_threshold,
        delivery_id=report.delivery_id,
        now=now,
    )
    if not drift.beyond_threshold:
        return "within_threshold"
    policy = channel.conflict_policy
    problem = ""
    if policy == ConflictPolicy.TRUST_CHANNEL:
        problem = _take_channel(
            finding, listing, DriftFinding.Decision.CHANNEL_TAKEN, key=_edit_key(report), now=now
        )
        if not problem:
            return "channel_taken"
    elif policy == ConflictPolicy.TRUST_PIMSYNC:
        _keep_pimsync(finding, listing, DriftFinding.Decision.PUSHED_BACK, now=now)
        return "pushed_back"
    _flag(finding, channel, problem, now)
    return "flagged"


def _keep_pimsync(
    finding: DriftFinding,
    listing: ChannelListing,
    decision: str,
    *,
    now: datetime,
    user: User | None = None,
) -> None:
    """Push pimsync's value back (forced); the finding resolves when the channel
    shows it (its webhook, or the next reconciliation)."""
    listings_mark_dirty(
        ChannelListing.objects.filter(pk=listing.pk), kinds=[finding.field], forced=True
    )
    synclog.drift_finding_decide(
        finding=finding,
        decision=decision,
        resolved=False,
        resync_requested=True,
        user=user,
        now=now,
    )


def _take_channel(
    finding: DriftFinding,
    listing: ChannelListing,
    decision: str,
    *,
    key: str,
    now: datetime,
    user: User | None = None,
) -> str:
    """Make the channel's value pimsync's; returns why not ("" when done)."""
    ref = finding.delivery_id or f"drift finding {finding.pk}"
    problem = _take_channel_value(listing, finding.field, finding.found, key=key, ref=ref)
    if not problem:
        synclog.drift_finding_decide(
            finding=finding, decision=decision, resolved=True, user=user, now=now
        )
    return problem


def _flag(finding: DriftFinding, channel: Channel, problem: str, now: datetime) -> None:
    synclog.drift_finding_decide(
        finding=finding, decision=DriftFinding.Decision.FLAGGED, resolved=False, now=now
    )
    what = finding.get_field_display().lower()
    because = f" It could not be taken into pimsync: {problem}." if problem else ""
    synclog.alert_raise(
        kind=Alert.Kind.CHANNEL_EDIT,
        channel_id=channel.pk,
        sku=finding.sku,
        source="edits",
        now=now,
        message=f"The {what} of {finding.sku} was changed on {channel}: the channel shows "
        f"{_shown(finding.found, finding.field)}, pimsync publishes "
        f"{_shown(finding.expected, finding.field)}.{because} Choose on the alert or the "
        "finding: keep pimsync's value (pushed back) or take the channel's value.",
    )


def _shown(value: Decimal, field: str) -> str:
    return str(int(value)) if field == SyncKind.QUANTITY else f"{value:.2f}"


def _first_location(channel: Channel) -> Location | None:
    link = (
        ChannelLocation.objects.filter(channel=channel)
        .select_related("location")
        .order_by("priority", "location_id")
        .first()
    )
    return link.location if link else None


def _take_channel_value(
    listing: ChannelListing, kind: str, value: Decimal, *, key: str, ref: str
) -> str:
    """Make the channel's value pimsync's; returns why it could not ("" when done).

    A price becomes the listing's price override. A quantity is booked as a stock
    count of the channel's first-priority location: its on-hand moves by what the
    channel shows minus what pimsync publishes, so the channel's ATP becomes the
    channel's value (computed under the stock row lock; a count never goes below 0)."""
    channel = listing.channel
    if kind == SyncKind.PRICE:
        listing.price_override = value
        try:
            listing.full_clean()
        except ValidationError as exc:
            return "; ".join(exc.messages)
        listing.save(update_fields=["price_override", "updated_at"])
        listings_mark_dirty(ChannelListing.objects.filter(pk=listing.pk), kinds=[SyncKind.PRICE])
        return ""
    location = _first_location(channel)
    if location is None:
        return "the channel has no location to count the quantity at"
    variant = listing.variant
    with transaction.atomic():
        level = stock_levels_lock([(variant.pk, location.pk)])[(variant.pk, location.pk)]
        atp = channel_atp_bulk(channel=channel, variant_ids=[variant.pk])[variant.pk]
        counted = max(0, level.on_hand + int(value) - atp)
        stock_count(
            variant=variant,
            location=location,
            counted_on_hand=counted,
            source=f"channel:{channel.pk}",
            idempotency_key=key,
            source_ref=ref[:255],
            note=f"{channel} shows {int(value)} where pimsync published {atp}: taken as a "
            "count of this location (conflict policy: trust the channel)",
        )
    return ""


# --- waiting reports ------------------------------------------------------------------------


def channel_edits_recheck(
    *, channel_id: int | None = None, now: datetime | None = None
) -> Counter[str]:
    """Compare the waiting reports again (after a push, after an orders poll, from
    the sweeper); a report decided now is acted on and its row deleted. Reports
    still waiting for orders ask for a poll (at most one per
    PIMSYNC_HELD_POLL_SECONDS per channel). Returns the outcomes counted."""
    now = now or timezone.now()
    waiting = ChannelEdit.objects.all()
    if channel_id is not None:
        waiting = waiting.filter(channel_id=channel_id)
    outcomes: Counter[str] = Counter()
    for pk in waiting.order_by("received_at", "pk").values_list("pk", flat=True)[:RECHECK_BATCH]:
        outcomes[_recheck_one(pk, now)] += 1
    return outcomes


def _recheck_one(pk: int, now: datetime) -> str:
    with transaction.atomic():
        row = (
            ChannelEdit.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("channel", "listing__variant__product")
            .filter(pk=pk)
            .first()
        )
        if row is None:
            return "taken"
        listing = row.listing
        listing.channel = row.channel
        if not (row.channel.is_enabled and listing_is_for_sale(listing)):
            row.delete()
            return "not_for_sale"
        report = Report(listing, row.kind, row.reported, row.delivery_id, row.received_at)
        expected = _expected(row.channel, [report])[(listing.variant_id, row.kind)]
        row.delete()
        return _act(report, expected, now, fresh=False)


def channel_edits_sweep(*, now: datetime | None = None) -> int:
    """The sweeper's share (beat): re-check every waiting report; returns how many
    were decided."""
    outcomes = channel_edits_recheck(now=now)
    return sum(
        n
        for outcome, n in outcomes.items()
        if outcome not in (Verdict.WAIT_PUSH, Verdict.WAIT_ORDERS)
    )


# --- a person's choice ------------------------------------------------------------------------


def edit_findings_choose(
    *,
    finding_ids: Sequence[int],
    choice: str,
    user: AbstractBaseUser | AnonymousUser | None,
) -> str:
    """Carry out a person's choice on flagged findings: keep pimsync's value (a
    forced push) or take the channel's (the same services as the trust-the-channel
    policy). Findings already decided are left alone. Returns a sentence."""
    actor = user if isinstance(user, User) else None
    now = timezone.now()
    findings = list(
        DriftFinding.objects.filter(
            pk__in=list(finding_ids),
            decision=DriftFinding.Decision.FLAGGED,
            resolved_at__isnull=True,
        ).order_by("pk")
    )
    done, problems = 0, []
    for finding in findings:
        listing = (
            ChannelListing.objects.select_related("channel", "variant__product")
            .filter(pk=finding.listing_id)
            .first()
        )
        if listing is None:
            problems.append(f"{finding.sku}: the listing no longer exists")
            continue
        with transaction.atomic():
            problem = _carry_out(finding, listing, choice, actor, now)
            synclog.channel_edit_alert_settle(
                channel_id=listing.channel_id, sku=finding.sku, now=now
            )
        if problem:
            problems.append(f"{finding.sku}: {problem}")
        else:
            done += 1
    label = Choice(choice).label
    message = f"{label}: done for {done} finding(s)."
    skipped = len(finding_ids) - len(findings)
    if skipped:
        message += f" {skipped} were not waiting for a choice."
    if problems:
        message += " Not done: " + "; ".join(problems)
    return message


def _carry_out(
    finding: DriftFinding, listing: ChannelListing, choice: str, user: User | None, now: datetime
) -> str:
    if choice == Choice.PIMSYNC:
        _keep_pimsync(finding, listing, DriftFinding.Decision.KEPT_PIMSYNC, now=now, user=user)
        return ""
    return _take_channel(
        finding,
        listing,
        DriftFinding.Decision.TOOK_CHANNEL,
        key=f"channel-edit-choice:{finding.pk}",
        now=now,
        user=user,
    )
