"""The record of what happened, and its presentation: sync log, alerts, their
notifications, incidents and channel health.

synclog never imports channels_app; it points at a channel lazily by name.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class EventType(models.TextChoices):
    PRICE = "price", "Price"
    INVENTORY = "inventory", "Inventory"
    ORDER = "order", "Order"
    RECONCILE = "reconcile", "Reconcile"


class SyncStatus(models.TextChoices):
    SUCCESS = "success", "Success"
    RETRYING = "retrying", "Retrying"
    # Not a failure: the write waits until the channel's orders are imported (a sale
    # pimsync has not seen yet would otherwise be offered again).
    HELD = "held", "Held for orders"
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
        PUSH_HELD = "push_held", "Push held for an orders import"
        POLL_GAP = "poll_gap", "Orders beyond the channel's poll window"
        CHANNEL_EDIT = "channel_edit", "Value edited on the channel: choose"

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
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty when the condition cleared by itself",
    )
    source = models.CharField(
        max_length=20,
        blank=True,
        help_text="Who raised it (health, engine, inbound, orders, webhook, recon, …); the "
        "health evaluator only clears conditions it can see or alerts it raised itself",
    )
    # Bumped on every open / reopen / resolve: a notification is recorded once per
    # (alert, state_version, transport), which a unique constraint enforces.
    state_version = models.PositiveIntegerField(default=1)
    reopened_count = models.PositiveIntegerField(default=0)
    incident = models.ForeignKey(
        "Incident", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )

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


class ReconciliationRun(models.Model):
    """One comparison of a channel's live prices and quantities with pimsync's.

    Counters are per listing: ``drifted`` listings showed a value that differs
    from what pimsync should publish, ``fixed`` of those were read back matching
    after the forced resync, ``skipped`` had a push pending or in flight (their
    value is on its way, so a difference is not drift), ``errors`` could not be
    read.
    """

    class Trigger(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        MANUAL = "manual", "Manual (channel)"
        LISTINGS = "listings", "Manual (selected listings)"
        API = "api", "API"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"

    channel = models.ForeignKey(
        "channels_app.Channel", on_delete=models.CASCADE, related_name="reconciliation_runs"
    )
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    total = models.PositiveIntegerField(default=0, help_text="Listings to check")
    checked = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0, help_text="A push was pending or in flight")
    drifted = models.PositiveIntegerField(default=0)
    resynced = models.PositiveIntegerField(default=0, help_text="Beyond the threshold: resynced")
    fixed = models.PositiveIntegerField(default=0, help_text="Resynced and read back matching")
    errors = models.PositiveIntegerField(default=0)
    error_message = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        get_latest_by = "started_at"
        indexes = [
            models.Index(fields=["channel", "-started_at"], name="recon_channel_started_idx"),
            models.Index(fields=["status", "-started_at"], name="recon_status_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(checked__lte=F("total")), name="recon_checked_lte_total"
            ),
        ]

    def __str__(self) -> str:
        return f"Reconciliation #{self.pk} of channel {self.channel_id} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class DriftFinding(models.Model):
    """One value a channel showed that differs from what pimsync should publish:
    found by a reconciliation run, or reported at once by the channel's webhook
    (an edit made in the channel's own console; no run)."""

    class Field(models.TextChoices):
        PRICE = "price", "Price"
        QUANTITY = "quantity", "Quantity"

    class Source(models.TextChoices):
        RECONCILE = "reconcile", "Reconciliation run"
        WEBHOOK = "webhook", "Channel webhook (edited on the channel)"

    class Decision(models.TextChoices):
        NONE = "", "—"
        PUSHED_BACK = "pushed_back", "pimsync's value pushed back"
        CHANNEL_TAKEN = "channel_taken", "Channel's value taken into pimsync"
        FLAGGED = "flagged", "Waiting for a person"
        KEPT_PIMSYNC = "kept_pimsync", "A person kept pimsync's value"
        TOOK_CHANNEL = "took_channel", "A person took the channel's value"
        SUPERSEDED = "superseded", "A later edit replaced it"

    run = models.ForeignKey(
        ReconciliationRun,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="findings",
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.RECONCILE)
    # The delivery that reported it (webhook findings): where it came from, for ops.
    delivery_id = models.CharField(max_length=200, blank=True)
    decision = models.CharField(max_length=14, choices=Decision.choices, blank=True, default="")
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    channel = models.ForeignKey(
        "channels_app.Channel", on_delete=models.CASCADE, related_name="drift_findings"
    )
    listing_id = models.BigIntegerField()
    sku = models.CharField(max_length=100)
    field = models.CharField(max_length=10, choices=Field.choices)
    expected = models.DecimalField(max_digits=14, decimal_places=2)
    found = models.DecimalField(max_digits=14, decimal_places=2)
    difference = models.DecimalField(max_digits=14, decimal_places=2, help_text="found − expected")
    beyond_threshold = models.BooleanField(default=False)
    resync_requested = models.BooleanField(default=False)
    found_at = models.DateTimeField()
    read_back_at = models.DateTimeField(null=True, blank=True)
    read_back_value = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "sku", "field"]
        indexes = [
            models.Index(fields=["channel", "sku"], name="drift_channel_sku_idx"),
            models.Index(
                fields=["channel", "listing_id"],
                condition=Q(resolved_at__isnull=True),
                name="drift_open_idx",
            ),
            models.Index(fields=["resolved_at"], name="drift_resolved_idx"),
            models.Index(
                fields=["channel", "decision"],
                condition=Q(resolved_at__isnull=True),
                name="drift_open_decision_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_field_display()} of {self.sku}: {self.found} ≠ {self.expected}"


class Incident(models.Model):
    """The alerts of one outage, grouped: what broke, for how long, and why.

    Opened by a channel-level alert (dead, degraded, circuit open, auth failed);
    further alerts on its channels join while it is open. Recovered when every
    alert in it has resolved; time to recovery = recovered_at - detected_at.
    """

    title = models.CharField(max_length=200)
    channels = models.ManyToManyField("channels_app.Channel", related_name="incidents", blank=True)
    skus = models.JSONField(
        default=list, blank=True, help_text="SKUs affected (alerted or failed during it)"
    )
    sku_count = models.PositiveIntegerField(default=0)
    detected_at = models.DateTimeField(db_index=True)
    recovered_at = models.DateTimeField(null=True, blank=True, db_index=True)
    ttr_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Time to recovery in seconds"
    )
    root_cause = models.TextField(blank=True, help_text="What ops found; free text")
    root_cause_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    root_cause_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-detected_at", "-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    @property
    def is_open(self) -> bool:
        return self.recovered_at is None


class Notification(models.Model):
    """Outbox: one row per alert state change and transport, written in the
    state change's transaction, delivered by a task (never by the caller)."""

    class Event(models.TextChoices):
        OPENED = "opened", "Opened"
        REOPENED = "reopened", "Reopened"
        RESOLVED = "resolved", "Resolved"

    class Transport(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    state_version = models.PositiveIntegerField()
    event = models.CharField(max_length=10, choices=Event.choices)
    transport = models.CharField(max_length=10, choices=Transport.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # What was true at the state change (the alert row moves on).
    subject = models.CharField(max_length=255)
    payload = models.JSONField(default=dict)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_until = models.DateTimeField(null=True, blank=True)
    recipients = models.TextField(blank=True, help_text="Who it went to")
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "state_version", "transport"],
                name="notification_once_per_state_change",
            )
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="notification_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_transport_display()} {self.event}: {self.subject[:60]}"


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
