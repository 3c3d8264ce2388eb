"""Admin for what channels tell pimsync: orders from every channel in one list,
customers across channels, the inbound event log, and the calls pimsync owes
orders' channels (shipments reported, oversold orders cancelled).

Orders, events and calls are records of what happened, so they are read-only
here; the writes are actions: mark shipped, settle an oversell, re-process
failed events, retry calls on the channel.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from inventory.models import Location
from pimsync.admin_utils import AdminMedia, badge, confirmed_action

from ..models import (
    ChannelOrder,
    ChannelOrderLine,
    Customer,
    InboundEvent,
    OrderChannelCall,
    OrderStatus,
)
from .apply import order_mark_shipped, order_stock_effects, orders_oversell_settle
from .events import inbound_events_reprocess
from .on_channel import order_channel_calls_retry, orders_channel_calls_retry

ORDER_TONES = {
    OrderStatus.PENDING: "info",
    OrderStatus.PAID: "ok",
    OrderStatus.FULFILLED: "muted",
    OrderStatus.CANCELLED: "warn",
    OrderStatus.REFUNDED: "warn",
}
LINE_TONES = {
    ChannelOrderLine.State.OPEN: "muted",
    ChannelOrderLine.State.RESERVED: "info",
    ChannelOrderLine.State.COMMITTED: "ok",
    ChannelOrderLine.State.SHIPPED: "muted",
    ChannelOrderLine.State.RELEASED: "muted",
    ChannelOrderLine.State.RESTOCKED: "info",
    ChannelOrderLine.State.UNMATCHED: "bad",
    ChannelOrderLine.State.OVERSOLD: "bad",
}
EVENT_TONES = {
    InboundEvent.Status.PENDING: "info",
    InboundEvent.Status.PROCESSED: "ok",
    InboundEvent.Status.IGNORED: "muted",
    InboundEvent.Status.FAILED: "bad",
}
CALL_TONES = {
    OrderChannelCall.Status.PENDING: "info",
    OrderChannelCall.Status.DONE: "ok",
    OrderChannelCall.Status.DEAD: "bad",
}
RETRY_EXPLANATION = (
    "Calls to the channel that did not get through (failed for good, or still "
    "retrying) are sent again now, with a fresh set of attempts. Calls the channel "
    "already confirmed are left alone."
)
PRE_STYLE = "max-height:420px;overflow:auto;white-space:pre-wrap;word-break:break-all"


def _money(amount: Decimal | None, currency: str = "") -> str:
    return f"{amount or Decimal('0'):.2f} {currency}".strip()


def _pretty_json(value: Any) -> str:
    return format_html(
        '<pre style="{}">{}</pre>', PRE_STYLE, json.dumps(value, indent=2, sort_keys=True)
    )


class ReadOnlyAdminMixin:
    """Records, not settings: view them, never add, edit or delete them here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- orders -----------------------------------------------------------------------------------


class OrderLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ChannelOrderLine
    extra = 0
    fields = (
        "external_line_id",
        "sku",
        "variant",
        "quantity",
        "refunded_quantity",
        "unit_price",
        "state_badge",
        "allocation_display",
    )
    readonly_fields = fields
    verbose_name_plural = "Lines"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("variant")

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        # Location codes for the allocation column: one query for the page, not one per line.
        self._location_codes = dict(Location.objects.values_list("pk", "code"))
        return super().get_formset(request, obj, **kwargs)

    @admin.display(description="State")
    def state_badge(self, obj: ChannelOrderLine) -> str:
        return badge(obj.get_state_display(), LINE_TONES.get(obj.state, "info"))

    @admin.display(description="Allocation")
    def allocation_display(self, obj: ChannelOrderLine) -> str:
        codes = getattr(self, "_location_codes", {})
        parts = [
            f"{codes.get(loc, loc)} × {part.get('quantity')}"
            for part in obj.allocation or []
            if isinstance(part, dict) and (loc := part.get("location_id")) is not None
        ]
        return ", ".join(parts) or "—"


def _status_badge(obj: InboundEvent | OrderChannelCall, tones: dict[str, str]) -> str:
    """The record's status; a pending one that failed before is "retrying"."""
    if obj.status == "pending" and obj.attempts:
        return badge("retrying", "warn")
    return badge(obj.get_status_display(), tones.get(obj.status, "info"))


def _call_status(obj: OrderChannelCall) -> str:
    return _status_badge(obj, CALL_TONES)


class OrderChannelCallInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OrderChannelCall
    extra = 0
    fields = (
        "kind",
        "status_badge",
        "attempts",
        "next_attempt_at",
        "done_at",
        "payload",
        "last_error",
    )
    readonly_fields = fields
    verbose_name_plural = "Calls to the channel"

    @admin.display(description="Status")
    def status_badge(self, obj: OrderChannelCall) -> str:
        return _call_status(obj)


class ShipForm(forms.Form):
    tracking_number = forms.CharField(max_length=100, required=False)
    carrier = forms.CharField(max_length=60, required=False)

    def clean(self) -> dict:
        data = super().clean()
        if bool(data.get("tracking_number")) != bool(data.get("carrier")):
            raise forms.ValidationError("Give the tracking number and the carrier together.")
        return data


@admin.register(ChannelOrder)
class ChannelOrderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "order_label",
        "channel",
        "status_badge",
        "customer_email",
        "total_display",
        "line_count",
        "placed_at",
        "seen_via",
        "flags",
    )
    list_select_related = ("channel",)
    list_filter = (
        "channel",
        "status",
        ("placed_at", admin.DateFieldListFilter),
        "has_unmatched_lines",
        "is_oversold",
        "first_seen_via",
        "seen_via_webhook",
    )
    search_fields = ("=external_id", "name", "customer_email", "customer__name", "=lines__sku")
    list_per_page = 100
    inlines = [OrderLineInline, OrderChannelCallInline]
    actions = ["mark_shipped_action", "settle_oversell_action", "retry_on_channel_action"]

    @confirmed_action(
        description="Mark shipped (and tell the channel)",
        permissions=("ship",),
        form_class=ShipForm,
        explanation="Ships every committed line from its allocated locations and sends the "
        "fulfilment, with the tracking number, to the order's channel.",
    )
    def mark_shipped_action(self, request: HttpRequest, queryset: QuerySet, form: ShipForm) -> str:
        shipped, refused = 0, []
        for order in queryset.select_related("channel"):
            try:
                order_mark_shipped(
                    order=order,
                    tracking_number=form.cleaned_data["tracking_number"],
                    carrier=form.cleaned_data["carrier"],
                )
                shipped += 1
            except ValueError as exc:
                refused.append(str(exc))
        message = f"Marked {shipped} order(s) shipped; the channels are being told."
        if refused:
            message += " Not shipped: " + "; ".join(refused[:5])
        return message

    @confirmed_action(
        description="Settle oversell conflict (ops handled it)",
        explanation="Records that the oversold lines of these orders were dealt with "
        "(restocked, substituted or the customer told); their oversell alerts close at the "
        "next health evaluation.",
    )
    def settle_oversell_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        n = orders_oversell_settle(orders=queryset)
        return f"Settled the oversell conflict of {n} order(s)."

    @confirmed_action(
        description="Retry on channel (calls that did not get through)",
        permissions=("ship",),
        explanation=RETRY_EXPLANATION,
    )
    def retry_on_channel_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        n = orders_channel_calls_retry(orders=queryset)
        if not n:
            return "Nothing to retry: every call to these orders' channels got through."
        return f"Sending {n} call(s) to the channels again."

    def has_ship_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("channels_app.change_channelorder")

    fieldsets = (
        (
            None,
            {
                "fields": (
                    "channel",
                    "external_id",
                    "name",
                    "status",
                    "financial_status",
                    "fulfillment_status",
                    "total_display",
                    "placed_at",
                    "channel_updated_at",
                )
            },
        ),
        ("Customer", {"fields": ("customer_link", "customer_email", "customer_phone")}),
        (
            "How pimsync saw it",
            {
                "fields": (
                    "first_seen_via",
                    "seen_via_webhook",
                    "has_unmatched_lines",
                    "is_oversold",
                    "created_at",
                    "updated_at",
                    "events_link",
                )
            },
        ),
        ("Stock effects", {"fields": ("stock_effects",)}),
        ("As the channel sent it", {"classes": ["collapse"], "fields": ("raw_display",)}),
    )
    readonly_fields = (
        "total_display",
        "customer_link",
        "events_link",
        "stock_effects",
        "raw_display",
    )
    Media = AdminMedia

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # distinct: two to-many joins would multiply each other's counts.
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_lines=Count("lines", distinct=True),
                n_failed_calls=Count(
                    "channel_calls",
                    filter=Q(channel_calls__status=OrderChannelCall.Status.DEAD),
                    distinct=True,
                ),
            )
        )

    @admin.display(description="Order", ordering="name")
    def order_label(self, obj: ChannelOrder) -> str:
        return obj.name or obj.external_id

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: ChannelOrder) -> str:
        return badge(obj.get_status_display(), ORDER_TONES.get(obj.status, "info"))

    @admin.display(description="Total", ordering="total")
    def total_display(self, obj: ChannelOrder) -> str:
        return _money(obj.total, obj.currency)

    @admin.display(description="Lines", ordering="n_lines")
    def line_count(self, obj: ChannelOrder) -> int:
        return obj.n_lines

    @admin.display(description="Seen via")
    def seen_via(self, obj: ChannelOrder) -> str:
        if obj.seen_via_webhook:
            return badge("webhook", "ok")
        return badge("poll only", "warn")

    @admin.display(description="Flags")
    def flags(self, obj: ChannelOrder) -> str:
        marks = []
        if obj.is_oversold:
            marks.append(badge("oversold", "bad"))
        if obj.has_unmatched_lines:
            marks.append(badge("unmatched SKU", "bad"))
        if getattr(obj, "n_failed_calls", 0):
            marks.append(badge("channel call failed", "bad"))
        return mark_safe(" ".join(marks)) if marks else "—"  # noqa: S308 - badges are escaped

    @admin.display(description="Customer")
    def customer_link(self, obj: ChannelOrder) -> str:
        if obj.customer_id is None:
            return "—"
        url = reverse("admin:channels_app_customer_change", args=[obj.customer_id])
        return format_html('<a href="{}">{}</a>', url, obj.customer)

    @admin.display(description="Inbound events")
    def events_link(self, obj: ChannelOrder) -> str:
        url = (
            reverse("admin:channels_app_inboundevent_changelist")
            + f"?channel__id__exact={obj.channel_id}&q={obj.external_id}"
        )
        return format_html('<a href="{}">Deliveries and polls of this order</a>', url)

    @admin.display(description="Stock movements caused by this order")
    def stock_effects(self, obj: ChannelOrder) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class='num'>{}</td>"
            "<td class='num'>{}</td><td class='num'>{}</td><td class='num'>{}</td>"
            "<td><code>{}</code></td></tr>",
            (
                (
                    m.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    m.variant.sku,
                    m.location.code,
                    m.get_reason_display(),
                    m.delta_on_hand,
                    m.delta_committed,
                    m.delta_reserved,
                    m.available_after,
                    m.idempotency_key,
                )
                for m in order_stock_effects(obj)
            ),
        )
        return format_html(
            "<table class='ps-table'><tr><th>When</th><th>SKU</th><th>Location</th>"
            "<th>Reason</th><th class='num'>Δ on hand</th><th class='num'>Δ committed</th>"
            "<th class='num'>Δ reserved</th><th class='num'>Available after</th>"
            "<th>Idempotency key</th></tr>{}</table>",
            rows or mark_safe("<tr><td colspan='9'>No stock effect (yet).</td></tr>"),
        )

    @admin.display(description="Raw order")
    def raw_display(self, obj: ChannelOrder) -> str:
        return _pretty_json(obj.raw)


# --- customers --------------------------------------------------------------------------------

NOT_CANCELLED = ~Q(orders__status=OrderStatus.CANCELLED)


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("__str__", "name", "phone", "order_count", "spend_display", "created_at")
    search_fields = ("email", "phone", "name")
    list_per_page = 100
    fields = ("email", "phone", "name", "created_at", "spend_by_currency", "orders_table")
    readonly_fields = ("created_at", "spend_by_currency", "orders_table")
    Media = AdminMedia

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # customers come from orders

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_orders=Count("orders"),
                spend=Sum("orders__total", filter=NOT_CANCELLED),
                n_currencies=Count("orders__currency", filter=NOT_CANCELLED, distinct=True),
                any_currency=Max("orders__currency", filter=NOT_CANCELLED),
            )
        )

    @admin.display(description="Orders", ordering="n_orders")
    def order_count(self, obj: Customer) -> int:
        return obj.n_orders

    @admin.display(description="Total spend", ordering="spend")
    def spend_display(self, obj: Customer) -> str:
        if obj.n_currencies > 1:
            return f"{obj.n_currencies} currencies (see the customer)"
        return _money(obj.spend, obj.any_currency or "")

    def _orders(self, obj: Customer) -> list[ChannelOrder]:
        # The change page shows the orders twice (table and totals): read them once.
        cached = getattr(obj, "_admin_orders", None)
        if cached is None:
            cached = list(obj.orders.select_related("channel").order_by("-placed_at", "-pk"))
            obj._admin_orders = cached
        return cached

    @admin.display(description="Total spend (cancelled orders excluded)")
    def spend_by_currency(self, obj: Customer) -> str:
        if obj.pk is None:
            return "—"
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for order in self._orders(obj):
            if order.status != OrderStatus.CANCELLED:
                totals[order.currency] += order.total
        return ", ".join(_money(t, c) for c, t in sorted(totals.items())) or "—"

    @admin.display(description="Orders on every channel")
    def orders_table(self, obj: Customer) -> str:
        if obj.pk is None:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td><td class='num'>{}</td>"
            "<td>{}</td></tr>",
            (
                (
                    reverse("admin:channels_app_channelorder_change", args=[o.pk]),
                    o.name or o.external_id,
                    o.channel.name,
                    badge(o.get_status_display(), ORDER_TONES.get(o.status, "info")),
                    _money(o.total, o.currency),
                    o.placed_at.strftime("%Y-%m-%d %H:%M"),
                )
                for o in self._orders(obj)
            ),
        )
        return format_html(
            "<table class='ps-table'><tr><th>Order</th><th>Channel</th><th>Status</th>"
            "<th class='num'>Total</th><th>Placed</th></tr>{}</table>",
            rows or mark_safe("<tr><td colspan='5'>No orders.</td></tr>"),
        )


# --- inbound events ---------------------------------------------------------------------------


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "received_at",
        "channel",
        "source",
        "topic",
        "external_order_id",
        "status_badge",
        "attempts",
        "error_short",
    )
    list_select_related = ("channel",)
    list_filter = ("channel", "source", "status")
    search_fields = ("=delivery_id", "=external_order_id")
    list_per_page = 100
    actions = ["reprocess_action"]
    fields = (
        "channel",
        "source",
        "status_badge",
        "attempts",
        "delivery_id",
        "topic",
        "external_order_id",
        "order_link",
        "received_at",
        "processed_at",
        "error",
        "body_sha256",
        "headers_display",
        "body_display",
    )
    readonly_fields = fields
    Media = AdminMedia

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        # The page is read-only for everyone; re-running an event needs the change right.
        return request.user.has_perm("channels_app.change_inboundevent")

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: InboundEvent) -> str:
        return _status_badge(obj, EVENT_TONES)

    @admin.display(description="Error")
    def error_short(self, obj: InboundEvent) -> str:
        return obj.error[:120]

    @admin.display(description="Order")
    def order_link(self, obj: InboundEvent) -> str:
        order_id = (
            ChannelOrder.objects.filter(
                channel_id=obj.channel_id, external_id=obj.external_order_id
            )
            .values_list("pk", flat=True)
            .first()
            if obj.external_order_id
            else None
        )
        if order_id is None:
            return "—"
        url = reverse("admin:channels_app_channelorder_change", args=[order_id])
        return format_html('<a href="{}">{}</a>', url, obj.external_order_id)

    @admin.display(description="Headers (as stored: no signatures or secrets)")
    def headers_display(self, obj: InboundEvent) -> str:
        return _pretty_json(obj.headers)

    @admin.display(description="Body")
    def body_display(self, obj: InboundEvent) -> str:
        try:
            return _pretty_json(json.loads(obj.raw_body))
        except ValueError:
            return format_html('<pre style="{}">{}</pre>', PRE_STYLE, obj.raw_body)

    @confirmed_action(
        description="Re-process selected failed events",
        permissions=("reprocess",),
        explanation="Failed events are applied again now, with a fresh set of attempts. "
        "Events that are not failed are left alone. Stock effects are idempotent: "
        "nothing already applied is applied twice.",
    )
    def reprocess_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        outcomes = inbound_events_reprocess(events=queryset)
        if not outcomes:
            return "No failed events were selected."
        return "Re-processed: " + ", ".join(f"{n} {s}" for s, n in sorted(outcomes.items())) + "."


# --- calls to orders' channels ----------------------------------------------------------------


@admin.register(OrderChannelCall)
class OrderChannelCallAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "order_link",
        "channel",
        "kind",
        "status_badge",
        "attempts",
        "next_attempt_at",
        "error_short",
    )
    list_select_related = ("order__channel",)
    list_filter = ("status", "kind", "order__channel")
    search_fields = ("=order__external_id", "order__name")
    list_per_page = 100
    actions = ["retry_on_channel_action"]
    fields = (
        "order_link",
        "channel",
        "kind",
        "status_badge",
        "attempts",
        "next_attempt_at",
        "done_at",
        "payload",
        "last_error_code",
        "last_error",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    Media = AdminMedia

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("channels_app.change_channelorder")

    @admin.display(description="Order", ordering="order__placed_at")
    def order_link(self, obj: OrderChannelCall) -> str:
        url = reverse("admin:channels_app_channelorder_change", args=[obj.order_id])
        return format_html('<a href="{}">{}</a>', url, obj.order.name or obj.order.external_id)

    @admin.display(description="Channel", ordering="order__channel__name")
    def channel(self, obj: OrderChannelCall) -> str:
        return str(obj.order.channel)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: OrderChannelCall) -> str:
        return _call_status(obj)

    @admin.display(description="Error")
    def error_short(self, obj: OrderChannelCall) -> str:
        return obj.last_error[:120]

    @confirmed_action(
        description="Retry on channel",
        permissions=("retry",),
        explanation=RETRY_EXPLANATION,
    )
    def retry_on_channel_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        n = order_channel_calls_retry(calls=queryset)
        if not n:
            return "Nothing to retry: the selected calls already got through."
        return f"Sending {n} call(s) to the channels again."
