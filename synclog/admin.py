"""Ops' view of what happened: the sync log per SKU and channel, alerts, incidents
(with the recovery-time report) and the notifications sent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from pimsync.admin_utils import AdminMedia, badge, confirmed_action

from . import decisions, incidents, notifications, services
from .dashboard import OpsDashboardAdmin
from .models import (
    Alert,
    DriftFinding,
    Incident,
    Notification,
    OpsDashboard,
    ReconciliationRun,
    SyncLogEntry,
    SyncStatus,
)

STATUS_TONES = {"success": "ok", "held": "info", "retrying": "warn", "failed": "bad", "dead": "bad"}


class RecordAdmin(admin.ModelAdmin):
    """What happened is only read: written by services, never by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SyncLogEntry)
class SyncLogEntryAdmin(RecordAdmin):
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
    # Producers add their actions (channels_app: re-drive dead SKUs) with
    # sync_log_action_register: synclog imports nothing of channels_app.
    actions: list[Callable[..., Any]] = []
    list_per_page = 100
    show_full_result_count = False
    Media = AdminMedia

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


def sync_log_action_register(action: Callable[..., Any]) -> None:
    """Offer ``action`` (a function admin action) on the sync log's list."""
    if action not in SyncLogEntryAdmin.actions:
        SyncLogEntryAdmin.actions = [*SyncLogEntryAdmin.actions, action]


KIND_TONES = {
    Alert.Kind.DEAD_CHANNEL: "bad",
    Alert.Kind.AUTH_FAILED: "bad",
    Alert.Kind.CIRCUIT_OPEN: "bad",
    Alert.Kind.OVERSELL: "bad",
    Alert.Kind.BAD_SIGNATURE: "bad",
    Alert.Kind.DEGRADED: "warn",
    Alert.Kind.DRIFT: "warn",
    Alert.Kind.REPEATED_FAILURE: "warn",
    Alert.Kind.QUEUE_DEPTH: "warn",
    Alert.Kind.LOW_ATP: "warn",
    Alert.Kind.DEAD_LETTER: "warn",
    Alert.Kind.UNMATCHED_SKU: "info",
    Alert.Kind.POLL_GAP: "bad",
    Alert.Kind.CHANNEL_EDIT: "warn",
}
SEVERITY_TONES = {"info": "info", "warning": "warn", "critical": "bad"}
NOTIFICATION_TONES = {
    "pending": "info",
    "sending": "info",
    "sent": "ok",
    "failed": "bad",
    "skipped": "muted",
}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


class ReadOnlyInline(admin.TabularInline):
    """A record shown on its parent's page: nothing to add, change or delete."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class NotificationInline(ReadOnlyInline):
    model = Notification
    fields = ("created_at", "event", "transport", "status", "attempts", "sent_at", "last_error")
    ordering = ("-created_at", "-id")


def may_choose(request: HttpRequest) -> bool:
    """Choosing between pimsync's value and the channel's changes stock or prices:
    it takes the right to change drift findings."""
    return request.user.has_perm("synclog.change_driftfinding")


class ChooseAdmin(admin.ModelAdmin):
    """A POST-only page ``<id>/choose/`` that carries out a person's choice on the
    flagged findings an object stands for, and the two buttons on its change page."""

    change_form_template = "admin/synclog/choose_change_form.html"

    def flagged_findings(self, obj: Any) -> QuerySet[DriftFinding]:
        """The flagged open findings ``obj`` stands for (subclasses say which)."""
        return DriftFinding.objects.none()

    def get_urls(self) -> list[Any]:
        opts = self.model._meta
        name = f"{opts.app_label}_{opts.model_name}_choose"
        view = self.admin_site.admin_view(self.choose_view)
        return [path("<path:object_id>/choose/", view, name=name), *super().get_urls()]

    def choose_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        opts = self.model._meta
        obj = get_object_or_404(self.model, pk=object_id)
        back = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        choice = request.POST.get("choice", "")
        if request.method != "POST" or not may_choose(request):
            self.message_user(
                request,
                "Choosing needs a POST by someone who may change drift findings.",
                messages.ERROR,
            )
            return HttpResponseRedirect(back)
        ids = list(self.flagged_findings(obj).values_list("pk", flat=True))
        try:
            message = decisions.drift_findings_choose(
                finding_ids=ids, choice=choice, user=request.user
            )
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(back)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if obj is not None and may_choose(request) and self.flagged_findings(obj).exists():
            opts = self.model._meta
            context["choose_url"] = reverse(
                f"admin:{opts.app_label}_{opts.model_name}_choose", args=[obj.pk]
            )
            context["choices"] = decisions.Choice.choices
            context["flagged"] = self.flagged_findings(obj)
        return super().change_view(request, object_id, form_url, context)


def _choose_action(choice: str) -> Callable[..., None]:
    def action(modeladmin: Any, request: HttpRequest, queryset: QuerySet) -> None:
        ids = [
            pk
            for obj in queryset
            for pk in modeladmin.flagged_findings(obj).values_list("pk", flat=True)
        ]
        message = decisions.drift_findings_choose(finding_ids=ids, choice=choice, user=request.user)
        modeladmin.message_user(request, message, messages.SUCCESS)

    action.__name__ = f"choose_{choice}_action"
    label = decisions.Choice(choice).label
    return admin.action(description=f"{label} (flagged channel edits)", permissions=("choose",))(
        action
    )


choose_pimsync_action = _choose_action(decisions.Choice.PIMSYNC)
choose_channel_action = _choose_action(decisions.Choice.CHANNEL)


@admin.register(Alert)
class AlertAdmin(ChooseAdmin):
    list_display = (
        "last_seen",
        "severity_badge",
        "kind_badge",
        "channel",
        "sku",
        "count",
        "message_short",
        "state_badge",
        "acknowledged_by",
        "incident_link",
    )
    list_select_related = ("channel", "acknowledged_by", "incident")
    list_filter = (
        ("resolved_at", admin.EmptyFieldListFilter),
        ("acknowledged_at", admin.EmptyFieldListFilter),
        "kind",
        "severity",
        "channel",
        "source",
    )
    search_fields = ("=sku", "message")
    actions = [
        "acknowledge_action",
        "resolve_action",
        choose_pimsync_action,
        choose_channel_action,
    ]
    readonly_fields = (
        "kind",
        "channel",
        "sku",
        "severity",
        "message",
        "source",
        "first_seen",
        "last_seen",
        "count",
        "reopened_count",
        "acknowledged_by",
        "acknowledged_at",
        "resolved_at",
        "resolved_by",
        "incident",
    )
    exclude = ("state_version",)
    inlines = [NotificationInline]
    list_per_page = 100
    Media = AdminMedia

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_choose_permission(self, request: HttpRequest) -> bool:
        return may_choose(request)

    def flagged_findings(self, obj: Alert) -> QuerySet[DriftFinding]:
        if obj.kind != Alert.Kind.CHANNEL_EDIT:
            return DriftFinding.objects.none()
        return decisions.findings_awaiting_choice(obj)

    @admin.display(description="Severity", ordering="severity")
    def severity_badge(self, obj: Alert) -> str:
        return badge(obj.get_severity_display(), SEVERITY_TONES[obj.severity])

    @admin.display(description="Kind", ordering="kind")
    def kind_badge(self, obj: Alert) -> str:
        return badge(obj.get_kind_display(), KIND_TONES.get(obj.kind, "info"))

    @admin.display(description="State")
    def state_badge(self, obj: Alert) -> str:
        if obj.resolved_at:
            return badge("resolved", "ok")
        return badge("acknowledged", "info") if obj.acknowledged_at else badge("open", "bad")

    @admin.display(description="Message")
    def message_short(self, obj: Alert) -> str:
        return obj.message[:140]

    @admin.display(description="Incident", ordering="incident")
    def incident_link(self, obj: Alert) -> str:
        if obj.incident_id is None:
            return "—"
        url = reverse("admin:synclog_incident_change", args=[obj.incident_id])
        return format_html('<a href="{}">#{}</a>', url, obj.incident_id)

    @confirmed_action(
        description="Acknowledge selected alerts",
        explanation="Records that you have seen them; they stay open until their condition clears.",
    )
    def acknowledge_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        n = services.alert_acknowledge(
            alert_ids=queryset.values_list("pk", flat=True), user=request.user
        )
        return f"Acknowledged {n} alert(s)."

    @confirmed_action(
        description="Resolve selected alerts",
        explanation="Ops are notified of each. An alert whose condition persists opens "
        "again at the next evaluation.",
    )
    def resolve_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        n = services.alerts_resolve(queryset, user=request.user)
        return f"Resolved {n} alert(s)."


RUN_TONES = {"running": "info", "finished": "ok", "failed": "bad"}


FINDING_FIELDS = (
    "sku",
    "field",
    "expected",
    "found",
    "difference",
    "beyond_threshold",
    "resync_requested",
    "read_back_value",
    "read_back_at",
    "resolved_at",
)


class DriftFindingInline(admin.TabularInline):
    model = DriftFinding
    fields = FINDING_FIELDS
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    ordering = ("sku", "field")


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(RecordAdmin):
    list_display = (
        "id",
        "channel",
        "trigger",
        "status_badge",
        "progress",
        "skipped",
        "drifted",
        "resynced",
        "fixed",
        "errors",
        "started_at",
        "duration",
        "requested_by",
    )
    list_display_links = ("id", "channel")
    list_select_related = ("channel", "requested_by")
    list_filter = ("status", "trigger", "channel", "started_at")
    date_hierarchy = "started_at"
    readonly_fields = (
        "channel",
        "trigger",
        "status_badge",
        "progress",
        "started_at",
        "finished_at",
        "duration",
        "total",
        "checked",
        "skipped",
        "drifted",
        "resynced",
        "fixed",
        "errors",
        "error_message",
        "requested_by",
    )
    fields = readonly_fields
    inlines = [DriftFindingInline]
    show_full_result_count = False
    Media = AdminMedia

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: ReconciliationRun) -> str:
        return badge(obj.get_status_display(), RUN_TONES.get(obj.status, "info"))

    @admin.display(description="Checked / total")
    def progress(self, obj: ReconciliationRun) -> str:
        return format_html(
            '<progress value="{}" max="{}" title="{} of {} listings checked"></progress> {}/{}',
            obj.checked,
            max(1, obj.total),
            obj.checked,
            obj.total,
            obj.checked,
            obj.total,
        )

    @admin.display(description="Duration")
    def duration(self, obj: ReconciliationRun) -> str:
        end = obj.finished_at or timezone.now()
        seconds = (end - obj.started_at).total_seconds()
        text = f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
        return text if obj.finished_at else f"{text} so far"


@admin.register(DriftFinding)
class DriftFindingAdmin(ChooseAdmin, RecordAdmin):
    list_display = (
        "sku",
        "channel",
        "field",
        "expected",
        "found",
        "difference",
        "threshold_badge",
        "resync_requested",
        "read_back_value",
        "state_badge",
        "decision_badge",
        "found_at",
        "run_link",
    )
    list_select_related = ("channel",)
    list_filter = (
        "channel",
        ("resolved_at", admin.EmptyFieldListFilter),
        "source",
        "decision",
        "field",
        "beyond_threshold",
        "found_at",
    )
    search_fields = ("=sku",)
    date_hierarchy = "found_at"
    readonly_fields = (
        "source",
        "run",
        "delivery_id",
        "channel",
        "listing_id",
        "found_at",
        *FINDING_FIELDS,
        "decision",
        "decided_at",
        "decided_by",
    )
    fields = readonly_fields
    actions = [choose_pimsync_action, choose_channel_action]
    list_per_page = 100
    show_full_result_count = False
    Media = AdminMedia

    @admin.display(description="Threshold", ordering="beyond_threshold")
    def threshold_badge(self, obj: DriftFinding) -> str:
        return badge("beyond", "warn") if obj.beyond_threshold else badge("within", "muted")

    @admin.display(description="State", ordering="resolved_at")
    def state_badge(self, obj: DriftFinding) -> str:
        return badge("resolved", "ok") if obj.resolved_at else badge("open", "bad")

    @admin.display(description="Decision", ordering="decision")
    def decision_badge(self, obj: DriftFinding) -> str:
        if not obj.decision:
            return "—"
        tone = "warn" if obj.decision == DriftFinding.Decision.FLAGGED else "info"
        return badge(obj.get_decision_display(), tone)

    @admin.display(description="Found by", ordering="run")
    def run_link(self, obj: DriftFinding) -> str:
        if obj.run_id is None:
            return obj.get_source_display()
        url = reverse("admin:synclog_reconciliationrun_change", args=[obj.run_id])
        return format_html('<a href="{}">run #{}</a>', url, obj.run_id)

    def has_choose_permission(self, request: HttpRequest) -> bool:
        return may_choose(request)

    def flagged_findings(self, obj: DriftFinding) -> QuerySet[DriftFinding]:
        return DriftFinding.objects.filter(
            pk=obj.pk, decision=DriftFinding.Decision.FLAGGED, resolved_at__isnull=True
        )


class IncidentAlertInline(ReadOnlyInline):
    model = Alert
    fields = ("kind", "channel", "sku", "severity", "first_seen", "resolved_at", "count")
    ordering = ("first_seen", "id")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("channel")


class IncidentForm(forms.ModelForm):
    class Meta:
        model = Incident
        fields = ("root_cause",)
        widgets = {"root_cause": forms.Textarea(attrs={"rows": 5, "cols": 90})}


# What the evaluation recorded; only the root cause is ops' to write.
INCIDENT_FACTS = (
    "title",
    "channel_list",
    "detected_at",
    "recovered_at",
    "ttr",
    "sku_count",
    "sku_list",
)


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    form = IncidentForm
    change_list_template = "admin/synclog/incident/change_list.html"
    list_display = (
        "incident_label",
        "state_badge",
        "channel_list",
        "detected_at",
        "recovered_at",
        "ttr",
        "sku_count",
        "alert_count",
        "root_cause_short",
    )
    list_filter = (("recovered_at", admin.EmptyFieldListFilter), "channels", "detected_at")
    search_fields = ("title", "root_cause", "skus")
    date_hierarchy = "detected_at"
    fieldsets = (
        (None, {"fields": INCIDENT_FACTS}),
        ("Root cause", {"fields": ("root_cause", "root_cause_by", "root_cause_at")}),
    )
    readonly_fields = (*INCIDENT_FACTS, "root_cause_by", "root_cause_at")
    inlines = [IncidentAlertInline]
    Media = AdminMedia

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(n_alerts=Count("alerts", distinct=True))
            .prefetch_related("channels")
            .select_related("root_cause_by")
        )

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        days = settings.PIMSYNC_INCIDENT_REPORT_DAYS
        overall, per_channel = incidents.incident_recovery_report(days=days)
        rows = [
            {
                "label": s.label,
                "incidents": s.incidents,
                "recovered": s.recovered,
                "still_open": s.still_open,
                "mean": _duration(s.mean_seconds),
                "p50": _duration(s.p50_seconds),
                "max": _duration(s.max_seconds),
            }
            for s in [*per_channel, overall]
        ]
        context = {**(extra_context or {}), "recovery_rows": rows, "recovery_days": days}
        return super().changelist_view(request, extra_context=context)

    def save_model(self, request: HttpRequest, obj: Incident, form: Any, change: bool) -> None:
        if "root_cause" in form.changed_data:
            incidents.incident_root_cause_set(
                incident=obj, text=form.cleaned_data["root_cause"], user=request.user
            )

    @admin.display(description="Incident", ordering="pk")
    def incident_label(self, obj: Incident) -> str:
        return f"#{obj.pk} {obj.title}"

    @admin.display(description="State", ordering="recovered_at")
    def state_badge(self, obj: Incident) -> str:
        return badge("recovered", "ok") if obj.recovered_at else badge("ongoing", "bad")

    @admin.display(description="Channels")
    def channel_list(self, obj: Incident) -> str:
        return ", ".join(c.name for c in obj.channels.all()) or "—"

    @admin.display(description="Time to recovery", ordering="ttr_seconds")
    def ttr(self, obj: Incident) -> str:
        if obj.recovered_at is None:
            return format_html(
                "{} (ongoing)", _duration((timezone.now() - obj.detected_at).total_seconds())
            )
        return _duration(obj.ttr_seconds)

    @admin.display(description="Alerts", ordering="n_alerts")
    def alert_count(self, obj: Incident) -> str:
        url = reverse("admin:synclog_alert_changelist") + f"?incident__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, getattr(obj, "n_alerts", "…"))

    @admin.display(description="SKUs affected")
    def sku_list(self, obj: Incident) -> str:
        shown = ", ".join(obj.skus) or "—"
        more = obj.sku_count - len(obj.skus)
        return f"{shown} … and {more} more" if more > 0 else shown

    @admin.display(description="Root cause")
    def root_cause_short(self, obj: Incident) -> str:
        return obj.root_cause[:100] or "—"


@admin.register(Notification)
class NotificationAdmin(RecordAdmin):
    list_display = (
        "created_at",
        "transport",
        "event_badge",
        "status_badge",
        "alert_link",
        "subject",
        "attempts",
        "sent_at",
        "error_short",
    )
    list_select_related = ("alert",)
    list_filter = ("status", "transport", "event", "created_at")
    search_fields = ("subject", "=alert__sku")
    actions = ["retry_action"]
    list_per_page = 100
    Media = AdminMedia

    @admin.display(description="Event", ordering="event")
    def event_badge(self, obj: Notification) -> str:
        return badge(obj.get_event_display(), "ok" if obj.event == "resolved" else "bad")

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: Notification) -> str:
        return badge(obj.get_status_display(), NOTIFICATION_TONES[obj.status])

    @admin.display(description="Alert", ordering="alert")
    def alert_link(self, obj: Notification) -> str:
        url = reverse("admin:synclog_alert_change", args=[obj.alert_id])
        return format_html('<a href="{}">#{}</a>', url, obj.alert_id)

    @admin.display(description="Last error")
    def error_short(self, obj: Notification) -> str:
        return obj.last_error[:120]

    @confirmed_action(
        description="Send selected failed notifications again",
        permissions=("view",),
        explanation="Failed and skipped notifications are queued again with fresh attempts.",
    )
    def retry_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        n = notifications.notifications_retry(
            notification_ids=queryset.values_list("pk", flat=True)
        )
        return f"Queued {n} notification(s) again."


admin.site.register(OpsDashboard, OpsDashboardAdmin)
