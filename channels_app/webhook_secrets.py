"""Revealing and rotating a channel's webhook secret: each time audited.

A webhook secret is written in the admin or the API and stored encrypted; staff who
may change a channel can see it again (to register it on the channel, or in the
sandbox's demo loop) or replace it by a new random one. Every reveal, rotation and
replacement leaves a WebhookSecretEvent (who, when, which channel, how) in the same
transaction; the secret itself is never recorded.
"""

from __future__ import annotations

import secrets

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction

from .models import Channel, WebhookSecretEvent

SECRET_BYTES = 32

Actor = AbstractBaseUser | AnonymousUser | None


def webhook_secret_event_record(
    *, channel: Channel, action: str, via: str, user: Actor = None
) -> WebhookSecretEvent:
    """Record one access to ``channel``'s webhook secret (``action`` and ``via`` are
    WebhookSecretEvent choices; ``user`` None for a command run on the server)."""
    person = user if user is not None and user.is_authenticated else None
    return WebhookSecretEvent.objects.create(
        channel=channel,
        action=action,
        via=via,
        user=person,
        username=person.get_username() if person is not None else "",
    )


def webhook_secret_reveal(*, channel: Channel, via: str, user: Actor = None) -> str:
    """The channel's stored webhook secret ("" when none), recorded as revealed."""
    with transaction.atomic():
        webhook_secret_event_record(
            channel=channel, action=WebhookSecretEvent.Action.REVEALED, via=via, user=user
        )
    return channel.webhook_secret or ""


def webhook_secret_rotate(*, channel: Channel, via: str, user: Actor = None) -> str:
    """Replace the secret by a new random one and return it. Deliveries signed with the
    old secret are refused (401) from now on: register the new one on the channel."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    with transaction.atomic():
        channel.webhook_secret = secret
        channel.save(update_fields=["webhook_secret", "updated_at"])
        webhook_secret_event_record(
            channel=channel, action=WebhookSecretEvent.Action.ROTATED, via=via, user=user
        )
    return secret
