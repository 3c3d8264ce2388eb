"""The record of what happened, and its presentation: sync log and alerts.

synclog never imports channels_app; it points at a channel lazily by name.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class EventType(models.TextChoices):
    PRICE = "price", "Price"
    INVENTORY = "inventory", "Inventory"
    ORDER = "order", "Order"
    RECONCILE = "reconcile", "Reconcile"


class SyncStatus(models.TextChoices):
    SUCCESS = "success", "Success"
    RETRYING = "retrying", "Retrying"
    FAILED = "failed", "Failed"
    DEAD = "dead", "Dead-lettered"


class SyncLogEntry(models.Model):
    """One SKU, one channel, one attempt."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    channel = models.ForeignKey(
        "channels_app.Channel", on_delete=models.CASCADE, related_name="sync_log"
    )
    sku = models.CharField(max_length=100, db_index=True)
    listing_id = models.BigIntegerField(null=True, blank=True)
    event_type = models.CharField(max_length=10, choices=EventType.choices)
    value_sent = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=10, choices=SyncStatus.choices)
    error_code = models.CharField(max_length=64, blank=True)
    message = models.TextField(blank=True)
    retry_count = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "sync log entry"
        verbose_name_plural = "sync log"
        indexes = [
            models.Index(fields=["channel", "sku", "-created_at"], name="synclog_channel_sku_idx"),
            models.Index(fields=["status", "-created_at"], name="synclog_status_idx"),
            models.Index(
                fields=["channel", "sku", "event_type"],
                condition=Q(resolved_at__isnull=True) & ~Q(status="success"),
                name="synclog_unresolved_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_event_type_display()} {self.sku} → {self.channel_id}: {self.status}"


class Alert(models.Model):
    """One open alert per (kind, channel, sku); repeats are counted."""

    class Kind(models.TextChoices):
        DEAD_LETTER = "dead_letter", "Permanent push failure"
        AUTH_FAILED = "auth_failed", "Channel authentication failed"
        CIRCUIT_OPEN = "circuit_open", "Circuit breaker open"
        DEAD_CHANNEL = "dead_channel", "Channel dead"
        DEGRADED = "degraded", "Channel degraded"
        DRIFT = "drift", "Drift"
        REPEATED_FAILURE = "repeated_failure", "Repeated push failure"
        QUEUE_DEPTH = "queue_depth", "Queue depth"
        LOW_ATP = "low_atp", "ATP below safety stock"
        OVERSELL = "oversell", "Oversell conflict"
        BAD_SIGNATURE = "bad_signature", "Bad webhook signatures"
        UNMATCHED_SKU = "unmatched_sku", "Unmatched SKU"

    class Severity(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        CRITICAL = "critical", "Critical"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    channel = models.ForeignKey(
        "channels_app.Channel",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alerts",
    )
    sku = models.CharField(max_length=100, blank=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    message = models.TextField()
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField()
    count = models.PositiveIntegerField(default=1)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-last_seen"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "channel", "sku"],
                condition=Q(resolved_at__isnull=True),
                name="alert_one_open_per_subject",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.message[:80]}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class ChannelState(models.TextChoices):
    HEALTHY = "healthy", "Healthy"
    DEGRADED = "degraded", "Degraded"
    DEAD = "dead", "Dead"
    CIRCUIT_OPEN = "circuit_open", "Circuit open"
    AUTH_FAILED = "auth_failed", "Auth failed"
    DISABLED = "disabled", "Disabled"


class ChannelHealthSnapshot(models.Model):
    """A channel's health as evaluated once a minute by channels_app.

    The counters cover the minute since the previous snapshot, so the dashboard's
    24 h charts are sums over snapshots and need nothing outside synclog.
    """

    channel = models.ForeignKey(
        "channels_app.Channel", on_delete=models.CASCADE, related_name="health_snapshots"
    )
    taken_at = models.DateTimeField()
    state = models.CharField(max_length=12, choices=ChannelState.choices)
    queue_depth = models.PositiveIntegerField(default=0)
    oldest_pending_seconds = models.PositiveIntegerField(null=True, blank=True)
    pushes = models.PositiveIntegerField(
        default=0, help_text="Successful SKU pushes in the interval"
    )
    errors = models.PositiveIntegerField(default=0, help_text="Failed SKU attempts in the interval")
    latency_p50_ms = models.PositiveIntegerField(null=True, blank=True)
    latency_p95_ms = models.PositiveIntegerField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    detail = models.CharField(max_length=255, blank=True, help_text="Why this state")

    class Meta:
        ordering = ["-taken_at", "-id"]
        get_latest_by = "taken_at"
        indexes = [
            models.Index(fields=["channel", "-taken_at"], name="health_channel_taken_idx"),
            models.Index(fields=["-taken_at"], name="health_taken_idx"),
        ]
        permissions = [("view_ops_dashboard", "Can view the ops dashboard")]

    def __str__(self) -> str:
        return f"{self.channel_id} {self.state} @ {self.taken_at:%Y-%m-%d %H:%M}"


class OpsDashboard(ChannelHealthSnapshot):
    """The ops dashboard's entry in the admin (index, sidebar, URL names).

    A proxy with no permissions of its own: access is ChannelHealthSnapshot's
    `view_ops_dashboard`, checked by the dashboard's ModelAdmin.
    """

    class Meta:
        proxy = True
        verbose_name = "ops dashboard"
        verbose_name_plural = "ops dashboard"
        default_permissions = ()
        permissions = []
