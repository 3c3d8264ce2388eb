"""Telling people about alerts: an outbox written with the state change, a task
that delivers it.

Every open, reopen and resolve of an alert records exactly one Notification per
transport (e-mail to ops, JSON POST to the alert webhook) in the transaction of
the state change, so a rolled-back change tells nobody and a committed one is
never forgotten. Delivery happens in ``notifications_deliver_due`` (a Celery
task, enqueued after commit and swept by beat): rows are claimed with
``SELECT … FOR UPDATE SKIP LOCKED`` plus a lease, so two workers never send the
same row; a worker killed between the send and the bookkeeping is the one case
that sends again after the lease, which is why the webhook carries an
idempotency key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from pimsync.backoff import backoff_delay

from .dispatch import notifications_deliver_request
from .models import Alert, Notification

log = logging.getLogger(__name__)
Event = Notification.Event
Transport = Notification.Transport
Status = Notification.Status
SEVERITY_RANK = {Alert.Severity.INFO: 0, Alert.Severity.WARNING: 1, Alert.Severity.CRITICAL: 2}
EMOJI = {
    Event.OPENED: ":rotating_light:",
    Event.REOPENED: ":repeat:",
    Event.RESOLVED: ":white_check_mark:",
}


class DeliveryError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


# --- recording (inside the alert's transaction) -------------------------------------------------


def _transports() -> list[str]:
    transports = []
    if settings.PIMSYNC_ALERT_EMAIL_ENABLED:
        transports.append(Transport.EMAIL)
    if settings.PIMSYNC_ALERT_WEBHOOK_URL:
        transports.append(Transport.WEBHOOK)
    return transports


def _worth_telling(alert: Alert) -> bool:
    minimum = SEVERITY_RANK.get(settings.PIMSYNC_ALERT_NOTIFY_MIN_SEVERITY, 1)
    return SEVERITY_RANK.get(alert.severity, 1) >= minimum


def alert_admin_url(alert: Alert) -> str:
    path = reverse("admin:synclog_alert_change", args=[alert.pk])
    return settings.PIMSYNC_ALERT_LINK_BASE_URL.rstrip("/") + path


def alert_payload(alert: Alert, event: str, channel_name: str) -> dict[str, Any]:
    """The JSON body of the webhook; ``text`` is what Slack (and compatibles) show."""
    where = f" on {channel_name}" if channel_name else ""
    sku = f" SKU {alert.sku}" if alert.sku else ""
    verb = {Event.OPENED: "OPEN", Event.REOPENED: "REOPENED", Event.RESOLVED: "RESOLVED"}[event]
    text = (
        f"{EMOJI[event]} [{alert.severity.upper()}] {verb}: {alert.get_kind_display()}{where}"
        f"{sku} — {alert.message[:500]} ({alert_admin_url(alert)})"
    )
    return {
        "text": text,
        "event": event,
        "alert": {
            "id": alert.pk,
            "kind": alert.kind,
            "kind_label": alert.get_kind_display(),
            "severity": alert.severity,
            "channel_id": alert.channel_id,
            "channel": channel_name,
            "sku": alert.sku,
            "message": alert.message,
            "count": alert.count,
            "first_seen": alert.first_seen.isoformat() if alert.first_seen else None,
            "last_seen": alert.last_seen.isoformat() if alert.last_seen else None,
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
            "incident_id": alert.incident_id,
            "url": alert_admin_url(alert),
        },
    }


def _subject(alert: Alert, event: str, channel_name: str) -> str:
    where = f" — {channel_name}" if channel_name else ""
    sku = f" {alert.sku}" if alert.sku else ""
    return (f"[pimsync] {event.upper()} {alert.severity}: {alert.get_kind_display()}{where}{sku}")[
        :255
    ]


def notifications_record(
    changes: Sequence[tuple[Alert, str]], *, now: datetime, channel_names: dict[int, str]
) -> int:
    """Write the outbox rows for alert state changes; call inside their transaction.

    One row per (change, transport); a row for the same alert state twice is
    refused by the database (``ignore_conflicts``), so a retried caller cannot
    double a notification. Enqueues delivery after commit. Returns rows written.
    """
    transports = _transports()
    if not transports:
        return 0
    rows = [
        Notification(
            alert=alert,
            state_version=alert.state_version,
            event=event,
            transport=transport,
            subject=_subject(alert, event, channel_names.get(alert.channel_id or 0, "")),
            payload=alert_payload(alert, event, channel_names.get(alert.channel_id or 0, "")),
            next_attempt_at=now,
            created_at=now,
        )
        for alert, event in changes
        if _worth_telling(alert)
        for transport in transports
    ]
    if not rows:
        return 0
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    transaction.on_commit(notifications_deliver_request)
    return len(rows)


# --- delivering -----------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0


def _claim(*, now: datetime, limit: int) -> list[Notification]:
    lease = timedelta(seconds=settings.PIMSYNC_ALERT_NOTIFY_LEASE_SECONDS)
    due = Q(status=Status.PENDING, next_attempt_at__lte=now) | Q(
        status=Status.SENDING, claimed_until__lt=now
    )
    with transaction.atomic():
        ids = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(due)
            .order_by("next_attempt_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return []
        Notification.objects.filter(pk__in=ids).update(
            status=Status.SENDING, claimed_until=now + lease
        )
    return list(Notification.objects.filter(pk__in=ids).order_by("pk"))


def ops_recipients() -> list[str]:
    """Active users with an e-mail in the ops group, and staff allowed to see the
    ops dashboard (directly, through a group, or as superuser); plus the extra
    addresses from the settings."""
    perm = Permission.objects.filter(
        content_type__app_label="synclog", codename="view_ops_dashboard"
    ).first()
    may_view = Q(is_superuser=True)
    if perm is not None:
        may_view |= Q(user_permissions=perm) | Q(groups__permissions=perm)
    users = (
        get_user_model()
        .objects.filter(is_active=True)
        .exclude(email="")
        .filter(Q(groups__name=settings.PIMSYNC_ALERT_OPS_GROUP) | (Q(is_staff=True) & may_view))
        .values_list("email", flat=True)
        .distinct()
    )
    return sorted({*users, *settings.PIMSYNC_ALERT_EMAIL_EXTRA})


def _email_body(n: Notification) -> str:
    a = n.payload.get("alert", {})
    lines = [
        n.payload.get("text", n.subject),
        "",
        f"Event:      {n.event}",
        f"Kind:       {a.get('kind_label', '')} ({a.get('kind', '')})",
        f"Severity:   {a.get('severity', '')}",
        f"Channel:    {a.get('channel') or '—'}",
        f"SKU:        {a.get('sku') or '—'}",
        f"Seen:       {a.get('count', '')} time(s), first {a.get('first_seen')}, "
        f"last {a.get('last_seen')}",
    ]
    if a.get("resolved_at"):
        lines.append(f"Resolved:   {a['resolved_at']}")
    if a.get("incident_id"):
        lines.append(f"Incident:   #{a['incident_id']}")
    lines += ["", a.get("message", ""), "", a.get("url", "")]
    return "\n".join(lines)


def _send_email(n: Notification) -> str:
    recipients = ops_recipients()
    if not recipients:
        raise DeliveryError("nobody to tell: no ops user has an e-mail address", retryable=False)
    try:
        EmailMessage(
            subject=n.subject,
            body=_email_body(n),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=recipients,
            headers={
                "X-Pimsync-Notification": str(n.pk),
                "X-Pimsync-Event": n.event,
                "X-Pimsync-Alert-Kind": str(n.payload.get("alert", {}).get("kind", "")),
            },
        ).send(fail_silently=False)
    except Exception as exc:  # SMTP errors of every kind: try again later
        raise DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
    return ", ".join(recipients)


def _send_webhook(n: Notification) -> str:
    url = settings.PIMSYNC_ALERT_WEBHOOK_URL
    if not url:
        raise DeliveryError("PIMSYNC_ALERT_WEBHOOK_URL is not set any more", retryable=False)
    try:
        response = requests.post(
            url,
            data=json.dumps(n.payload),
            headers={
                "Content-Type": "application/json",
                "User-Agent": "pimsync-alerts",
                # Receivers may drop a repeat (the one case: a worker killed mid-send).
                "Idempotency-Key": f"pimsync-notification-{n.pk}",
            },
            timeout=(
                settings.PIMSYNC_ALERT_WEBHOOK_CONNECT_TIMEOUT,
                settings.PIMSYNC_ALERT_WEBHOOK_READ_TIMEOUT,
            ),
        )
    except requests.RequestException as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise DeliveryError(f"HTTP {response.status_code}", retryable=True)
    if response.status_code >= 400:
        raise DeliveryError(f"HTTP {response.status_code}: {response.text[:300]}", retryable=False)
    return url


SENDERS = {Transport.EMAIL: _send_email, Transport.WEBHOOK: _send_webhook}


def _retry_delay(attempts: int) -> float:
    return backoff_delay(
        attempts,
        base=settings.PIMSYNC_ALERT_NOTIFY_RETRY_BASE_SECONDS,
        cap=settings.PIMSYNC_ALERT_NOTIFY_RETRY_CAP_SECONDS,
        jitter=(0.8, 1.2),  # around the step: a receiver down for a while is not hammered
    )


def _deliver_one(n: Notification, report: DeliveryReport, now: datetime) -> None:
    attempts = n.attempts + 1
    mine = Notification.objects.filter(pk=n.pk, status=Status.SENDING)
    try:
        recipients = SENDERS[n.transport](n)
    except DeliveryError as exc:
        final = not exc.retryable or attempts >= settings.PIMSYNC_ALERT_NOTIFY_MAX_ATTEMPTS
        skipped = not exc.retryable and "nobody to tell" in str(exc)
        status = Status.SKIPPED if skipped else Status.FAILED if final else Status.PENDING
        mine.update(
            status=status,
            attempts=attempts,
            claimed_until=None,
            last_error=str(exc)[:2000],
            next_attempt_at=now + timedelta(seconds=_retry_delay(attempts)),
        )
        level = logging.INFO if skipped else logging.WARNING
        log.log(level, "notification %s (%s) %s: %s", n.pk, n.transport, status, exc)
        if skipped:
            report.skipped += 1
        elif final:
            report.failed += 1
        else:
            report.retrying += 1
        return
    mine.update(
        status=Status.SENT,
        attempts=attempts,
        claimed_until=None,
        sent_at=timezone.now(),
        recipients=recipients[:2000],
        last_error="",
    )
    report.sent += 1


def notifications_deliver_due(*, now: datetime | None = None, limit: int = 100) -> DeliveryReport:
    """Send what is due (new rows, retries whose backoff passed, leases that ran
    out). Safe to run in any number of workers at once."""
    report = DeliveryReport()
    for n in _claim(now=now or timezone.now(), limit=limit):
        _deliver_one(n, report, now or timezone.now())
    return report


def notifications_retry(*, notification_ids: Iterable[int]) -> int:
    """Send failed or skipped notifications again (admin action); returns how many."""
    now = timezone.now()
    n = Notification.objects.filter(
        pk__in=list(notification_ids), status__in=[Status.FAILED, Status.SKIPPED]
    ).update(status=Status.PENDING, attempts=0, next_attempt_at=now, last_error="")
    if n:
        transaction.on_commit(notifications_deliver_request)
    return n
