"""Ops' view of what happened: the sync log per SKU and channel, and alerts."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from pimsync.admin_utils import AdminMedia, badge, confirmed_action

from . import services
from .dashboard import OpsDashboardAdmin
from .models import Alert, OpsDashboard, SyncLogEntry, SyncStatus

STATUS_TONES = {"success": "ok", "retrying": "warn", "failed": "bad", "dead": "bad"}


@admin.register(SyncLogEntry)
class SyncLogEntryAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "channel",
        "sku_history",
        "event_type",
        "value_sent",
        "status_badge",
        "error_code",
        "retry_count",
        "latency",
        "resolved_at",
        "message_short",
    )
    list_select_related = ("channel",)
    list_filter = (
        "channel",
        "status",
        "event_type",
        "created_at",
        ("resolved_at", admin.EmptyFieldListFilter),
    )
    search_fields = ("=sku", "error_code")
    date_hierarchy = "created_at"
    actions = ["redrive_action"]
    list_per_page = 100
    show_full_result_count = False
    Media = AdminMedia

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="SKU", ordering="sku")
    def sku_history(self, obj: SyncLogEntry) -> str:
        url = (
            reverse("admin:synclog_synclogentry_changelist")
            + f"?sku={obj.sku}&channel__id__exact={obj.channel_id}"
        )
        return format_html(
            '<a href="{}" title="History of this SKU on this channel">{}</a>', url, obj.sku
        )

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: SyncLogEntry) -> str:
        label = obj.get_status_display()
        if obj.status != SyncStatus.SUCCESS and obj.resolved_at:
            return format_html(
                "{} {}", badge(label, STATUS_TONES[obj.status]), badge("resolved", "ok")
            )
        return badge(label, STATUS_TONES[obj.status])

    @admin.display(description="Latency", ordering="latency_ms")
    def latency(self, obj: SyncLogEntry) -> str:
        return "—" if obj.latency_ms is None else f"{obj.latency_ms} ms"

    @admin.display(description="Message")
    def message_short(self, obj: SyncLogEntry) -> str:
        return obj.message[:120]

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        return lookup == "sku" or super().lookup_allowed(lookup, value, request)

    @confirmed_action(
        description="Re-drive selected dead-lettered SKUs",
        explanation="Each dead SKU's current value is pushed again (forced).",
    )
    def redrive_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        from channels_app.services import sync_log_redrive

        return str(sync_log_redrive(entries=queryset))


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = (
        "last_seen",
        "severity_badge",
        "kind",
        "channel",
        "sku",
        "count",
        "message_short",
        "state_badge",
        "acknowledged_by",
    )
    list_select_related = ("channel", "acknowledged_by")
    list_filter = (("resolved_at", admin.EmptyFieldListFilter), "kind", "severity", "channel")
    search_fields = ("=sku", "message")
    actions = ["acknowledge_action", "resolve_action"]
    readonly_fields = (
        "first_seen",
        "last_seen",
        "count",
        "acknowledged_by",
        "acknowledged_at",
        "resolved_at",
    )
    Media = AdminMedia

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Severity", ordering="severity")
    def severity_badge(self, obj: Alert) -> str:
        return badge(
            obj.get_severity_display(),
            {"info": "info", "warning": "warn", "critical": "bad"}[obj.severity],
        )

    @admin.display(description="State")
    def state_badge(self, obj: Alert) -> str:
        if obj.resolved_at:
            return badge("resolved", "ok")
        return badge("acknowledged", "info") if obj.acknowledged_at else badge("open", "bad")

    @admin.display(description="Message")
    def message_short(self, obj: Alert) -> str:
        return obj.message[:140]

    @confirmed_action(description="Acknowledge selected alerts")
    def acknowledge_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        n = services.alert_acknowledge(
            alert_ids=queryset.values_list("pk", flat=True), user=request.user
        )
        return f"Acknowledged {n} alert(s)."

    @confirmed_action(
        description="Resolve selected alerts",
        explanation="An alert whose condition persists will open again.",
    )
    def resolve_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        n = queryset.filter(resolved_at__isnull=True).update(resolved_at=timezone.now())
        return f"Resolved {n} alert(s)."


admin.site.register(OpsDashboard, OpsDashboardAdmin)
