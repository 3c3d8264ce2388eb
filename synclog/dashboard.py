"""The ops dashboard: an admin page per the admin's look, for staff holding
`synclog.view_ops_dashboard`. It reads synclog only (design §5) and refreshes
itself by fetching its body fragment; the alert buttons are plain POST forms so
everything works without JavaScript too."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from pimsync.admin_utils import ReadOnlyAdmin

from . import charts, selectors, services
from .models import Alert, ChannelState, SyncStatus

DASHBOARD_PERMISSION = "synclog.view_ops_dashboard"
ALERT_PERMISSION = "synclog.change_alert"
SEVERITY_TONES = {"info": "info", "warning": "warn", "critical": "bad"}


def sync_log_url(**params: Any) -> str:
    url = reverse("admin:synclog_synclogentry_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def _chart_panels(cards: list[selectors.ChannelCard], now: Any) -> list[dict[str, Any]]:
    series = selectors.ops_channel_series(channels=[(c.channel_id, c.name) for c in cards], now=now)
    return [
        {
            "name": s.name,
            "has_data": s.has_data,
            "pushes_total": sum(s.pushes),
            "errors_total": sum(s.errors),
            "bars": charts.bars_chart(
                label=f"{s.name}: pushes and failed attempts per hour, last 24 hours",
                starts=s.bucket_starts,
                pushes=s.pushes,
                errors=s.errors,
            ),
            "lines": charts.lines_chart(
                label=f"{s.name}: push latency p50 and p95 per hour, last 24 hours",
                starts=s.bucket_starts,
                series=[
                    ("p50", "ps-line-p50", s.latency_p50_ms),
                    ("p95", "ps-line-p95", s.latency_p95_ms),
                ],
            ),
        }
        for s in series
    ]


def _failure_rows(limit: int) -> list[dict[str, Any]]:
    return [
        {
            "entry": entry,
            "tone": "bad",
            "history_url": sync_log_url(sku=entry.sku, channel__id__exact=entry.channel_id),
        }
        for entry in selectors.ops_recent_failures(limit=limit)
    ]


def _state_summary(cards: list[selectors.ChannelCard]) -> dict[str, int]:
    good = {ChannelState.HEALTHY, ChannelState.DISABLED}
    return {
        "channels": len(cards),
        "healthy": sum(1 for c in cards if c.state == ChannelState.HEALTHY and not c.is_stale),
        "attention": sum(1 for c in cards if c.state not in good or c.is_stale),
    }


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    """Everything the dashboard body shows; a fixed number of queries."""
    now = timezone.now()
    cards = selectors.ops_channel_cards(now=now)
    alerts, alert_total = selectors.ops_open_alerts(limit=settings.PIMSYNC_DASHBOARD_ALERT_LIMIT)
    return {
        "now": now,
        "cards": cards,
        "summary": _state_summary(cards),
        "chart_panels": _chart_panels(cards, now),
        "alerts": [{"alert": a, "tone": SEVERITY_TONES.get(a.severity, "info")} for a in alerts],
        "alert_total": alert_total,
        "can_change_alerts": request.user.has_perm(ALERT_PERMISSION),
        "failures": _failure_rows(settings.PIMSYNC_DASHBOARD_FAILURE_LIMIT),
        "failures_url": sync_log_url(status__exact=SyncStatus.DEAD),
        "sync_log_url": sync_log_url(),
        "alerts_url": reverse("admin:synclog_alert_changelist") + "?resolved_at__isempty=1",
        "refresh_seconds": settings.PIMSYNC_DASHBOARD_REFRESH_SECONDS,
        "stale_seconds": settings.PIMSYNC_DASHBOARD_STALE_SECONDS,
    }


class OpsDashboardAdmin(ReadOnlyAdmin):
    """Replaces the model's list/change pages with the dashboard and its actions
    (admin_view adds login, never_cache and CSRF protection to each)."""

    body_template = "admin/synclog/ops_dashboard/body.html"
    fields = (
        "channel",
        "taken_at",
        "state",
        "detail",
        "queue_depth",
        "oldest_pending_seconds",
        "pushes",
        "errors",
        "latency_p50_ms",
        "latency_p95_ms",
        "last_success_at",
    )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff and user.has_perm(DASHBOARD_PERMISSION))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("", view(self.dashboard_view), name="synclog_opsdashboard_changelist"),
            path("body/", view(self.body_view), name="synclog_opsdashboard_body"),
            path(
                "alerts/<int:alert_id>/<str:action>/",
                view(self.alert_action_view),
                name="synclog_opsdashboard_alert",
            ),
            # One snapshot, read-only: what a card's state was computed from.
            path(
                "<path:object_id>/change/",
                view(self.change_view),
                name="synclog_opsdashboard_change",
            ),
        ]

    def _require_access(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        self._require_access(request)
        context = {
            **self.admin_site.each_context(request),
            **dashboard_context(request),
            "title": "Ops dashboard",
            "opts": self.model._meta,
            "body_template": self.body_template,
            "body_url": reverse("admin:synclog_opsdashboard_body"),
        }
        return TemplateResponse(request, "admin/synclog/ops_dashboard/page.html", context)

    def body_view(self, request: HttpRequest) -> HttpResponse:
        """The page's body alone, fetched by the page every few seconds."""
        self._require_access(request)
        return TemplateResponse(request, self.body_template, dashboard_context(request))

    def alert_action_view(self, request: HttpRequest, alert_id: int, action: str) -> HttpResponse:
        return alert_action(request, alert_id=alert_id, action=action, admin=self)


@require_POST
def alert_action(
    request: HttpRequest, *, alert_id: int, action: str, admin: OpsDashboardAdmin
) -> HttpResponse:
    """Acknowledge or resolve one alert, then back to the dashboard with a message."""
    admin._require_access(request)
    if not request.user.has_perm(ALERT_PERMISSION):
        raise PermissionDenied
    back = HttpResponseRedirect(reverse("admin:synclog_opsdashboard_changelist"))
    alert = Alert.objects.select_related("channel").filter(pk=alert_id).first()
    if alert is None:
        messages.error(request, f"Alert {alert_id} does not exist (any more).")
        return back
    if action == "acknowledge":
        _acknowledge(request, alert)
    elif action == "resolve":
        _resolve(request, alert)
    else:
        messages.error(request, f"Unknown alert action “{action}”.")
    return back


def _describe(alert: Alert) -> str:
    subject = ", ".join(part for part in (str(alert.channel or ""), alert.sku) if part)
    return f"“{alert.get_kind_display()}”" + (f" ({subject})" if subject else "")


def _acknowledge(request: HttpRequest, alert: Alert) -> None:
    if alert.resolved_at is not None:
        messages.warning(request, f"Alert {_describe(alert)} was already resolved.")
        return
    if services.alert_acknowledge(alert_ids=[alert.pk], user=request.user):
        messages.success(request, f"Acknowledged alert {_describe(alert)}.")
    else:
        who = alert.acknowledged_by or "someone"
        messages.info(request, f"Alert {_describe(alert)} was already acknowledged by {who}.")


def _resolve(request: HttpRequest, alert: Alert) -> None:
    if alert.resolved_at is not None:
        messages.warning(request, f"Alert {_describe(alert)} was already resolved.")
        return
    # Who resolved it is kept (and notified); the evaluator reopens it if the condition persists.
    resolved = services.alerts_resolve(Alert.objects.filter(pk=alert.pk), user=request.user)
    if resolved:
        messages.success(
            request,
            f"Resolved alert {_describe(alert)}. It opens again if its condition persists.",
        )
    else:
        messages.warning(request, f"Alert {_describe(alert)} was already resolved.")
