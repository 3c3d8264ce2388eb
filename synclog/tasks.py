"""Thin Celery wrappers for the record: notification delivery."""

from __future__ import annotations

from dataclasses import asdict

from celery import shared_task

from .notifications import notifications_deliver_due


# Each send has its own short timeouts; the limit only guards a stuck SMTP server.
@shared_task(time_limit=120, soft_time_limit=100, ignore_result=True, acks_late=False)
def notifications_deliver_task() -> dict:
    """Deliver due notifications (enqueued after each alert change, and by beat for
    retries). Running it in several workers at once is harmless: rows are claimed."""
    return asdict(notifications_deliver_due())
