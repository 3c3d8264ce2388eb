"""A person's choice on a flagged finding: keep pimsync's value, or take the channel's.

synclog shows the findings and the alert that asks for the choice, and offers it
(admin actions, buttons on the finding and on the alert). Carrying it out — a
forced push, a stock count, a listing's price override — is channels_app's
business: it registers the function that does it with ``drift_decider_register``
(synclog never imports channels_app).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models
from django.db.models import QuerySet

from .models import Alert, DriftFinding


class Choice(models.TextChoices):
    PIMSYNC = "pimsync", "Keep pimsync's value"
    CHANNEL = "channel", "Take the channel's value"


class Decider(Protocol):
    def __call__(
        self,
        *,
        finding_ids: Sequence[int],
        choice: str,
        user: AbstractBaseUser | AnonymousUser | None,
    ) -> str: ...


_deciders: list[Decider] = []


def drift_decider_register(decider: Decider) -> None:
    """The function that carries out choices (channels_app registers it at start-up)."""
    _deciders[:] = [decider]


def drift_findings_choose(
    *,
    finding_ids: Sequence[int],
    choice: str,
    user: AbstractBaseUser | AnonymousUser | None = None,
) -> str:
    """Carry out ``choice`` on the flagged open findings among ``finding_ids``; returns
    a sentence for the person. Findings decided already are left alone."""
    if choice not in Choice.values:
        raise ValueError(f"unknown choice {choice!r}")
    if not _deciders:
        raise RuntimeError("no decider registered: is channels_app installed?")
    return _deciders[0](finding_ids=list(finding_ids), choice=choice, user=user)


def findings_awaiting_choice(alert: Alert) -> QuerySet[DriftFinding]:
    """The open flagged findings behind a "choose" alert (its channel and SKU)."""
    if alert.channel_id is None:
        return DriftFinding.objects.none()
    return DriftFinding.objects.filter(
        channel_id=alert.channel_id,
        sku=alert.sku,
        decision=DriftFinding.Decision.FLAGGED,
        resolved_at__isnull=True,
    ).order_by("found_at", "pk")
