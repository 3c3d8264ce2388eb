"""Webhooks registered on connect (docs/channels.md).

Saving or testing a Shopify or WooCommerce channel creates or repairs its webhook
subscriptions for the topics pimsync reads (the connector's ``webhook_topics``),
delivering to the channel's public URL + ``/webhooks/<slug>/``. The connector
does the HTTP (through the channel's rate budget); this module decides what to do
per topic and records what it found and did as one WebhookSubscription row per
topic, which the channel page shows:

    registered  a subscription of the topic delivers to our address (and is active)
    missing     none does: one is created
    wrong_url   ours delivers elsewhere (an old address, another host): it is repaired
    disabled    it delivers to our address but the channel stopped it (WooCommerce
                disables a webhook after 5 failed deliveries): it is made active again
    failed      the channel refused the call; the error is kept

A subscription the connector does not mark as pimsync's (a webhook a person made
by hand in WooCommerce for another address) is left alone; one made by hand for
pimsync's own address counts as registered.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from .connectors.base import Subscription, WebhookConnector
from .connectors.errors import ConnectorError
from .models import Channel, WebhookSubscription
from .sync.connection import channel_connector

log = logging.getLogger(__name__)
State = WebhookSubscription.State


def channel_public_url(channel: Channel) -> str:
    """Where the channel reaches pimsync: its own setting, else PIMSYNC_PUBLIC_URL."""
    return (channel.public_url or settings.PIMSYNC_PUBLIC_URL or "").rstrip("/")


def channel_webhook_address(channel: Channel) -> str:
    """The URL the channel's webhooks are registered at ("" without a public URL)."""
    base = channel_public_url(channel)
    return f"{base}{reverse('webhook-receive', args=[channel.slug])}" if base else ""


@dataclass(frozen=True)
class TopicOutcome:
    state: str
    subscription: Subscription | None = None
    note: str = ""
    error: str = ""


@dataclass
class Registration:
    """What one registration found and did, per topic."""

    channel: Channel
    address: str = ""
    topics: dict[str, TopicOutcome] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.topics) and all(t.state == State.REGISTERED for t in self.topics.values())

    def __str__(self) -> str:
        if not self.topics:
            return f"{self.channel}: {self.error or 'no webhooks to register'}"
        counts = Counter(t.state for t in self.topics.values())
        summary = ", ".join(f"{n} {State(state).label.lower()}" for state, n in counts.items())
        done = Counter(t.note for t in self.topics.values() if t.note)
        text = f"{self.channel}: webhooks to {self.address or '(no address)'}: {summary}"
        if done:
            text += " (" + ", ".join(f"{n} {note}" for note, n in sorted(done.items())) + ")"
        errors = sorted({t.error for t in self.topics.values() if t.error})
        return text + "." + "".join(f" {e}" for e in errors)


def _is_ours(subscription: Subscription, address: str) -> bool:
    """pimsync's to repair: made by it, or delivering to its address already."""
    return subscription.ours or subscription.address == address


def _found(found: list[Subscription], address: str) -> TopicOutcome:
    """The topic's state as found, with the subscription it is about."""
    exact = [sub for sub in found if sub.address == address]
    active = [sub for sub in exact if sub.active]
    if active:
        return TopicOutcome(State.REGISTERED, active[0])
    if exact:
        return TopicOutcome(State.DISABLED, exact[0])
    if found:
        return TopicOutcome(State.WRONG_URL, found[0])
    return TopicOutcome(State.MISSING)


def channel_webhooks_register(
    *,
    channel: Channel,
    repair: bool = True,
    refresh_secret: bool = False,
    now: datetime | None = None,
) -> Registration:
    """Check (and with ``repair``, create or repair) the channel's subscriptions and
    record each topic's state. ``refresh_secret`` sends the channel's webhook secret
    again to the registered ones (WooCommerce keeps one per webhook and never shows
    it; after the channel's secret changed). Never raises for the channel's answers:
    a refusal is a ``failed`` topic with the error."""
    now = now or timezone.now()
    report = Registration(channel=channel, address=channel_webhook_address(channel))
    connector = channel_connector(channel)
    if not isinstance(connector, WebhookConnector):
        report.error = f"{channel.get_platform_display()} webhooks are not registered by pimsync"
        return report
    topics = connector.webhook_topics
    if not report.address:
        error = "No public URL: set PIMSYNC_PUBLIC_URL or the channel's public URL."
        return _record(report, dict.fromkeys(topics, TopicOutcome(State.FAILED, error=error)), now)
    try:
        existing = connector.webhook_subscriptions()
    except ConnectorError as exc:
        error = f"Could not list the channel's webhooks: {exc.code}: {exc.message}"
        return _record(report, dict.fromkeys(topics, TopicOutcome(State.FAILED, error=error)), now)
    outcome = {}
    for topic in topics:
        found = _found(
            [s for s in existing if s.topic == topic and _is_ours(s, report.address)],
            report.address,
        )
        if repair:
            found = _put_right(connector, topic, found, report.address, refresh_secret)
        outcome[topic] = found
    return _record(report, outcome, now)


def channel_webhooks_register_saved(channel_id: int, *, refresh_secret: bool = False) -> str:
    """channel_webhooks_register for a channel saved a moment ago (the task's entry);
    a channel deleted or disabled since is left alone. Returns the report as text."""
    channel = Channel.objects.filter(pk=channel_id, is_enabled=True).first()
    if channel is None:
        return f"channel {channel_id} is missing or disabled"
    return str(channel_webhooks_register(channel=channel, refresh_secret=refresh_secret))


def _put_right(
    connector: WebhookConnector,
    topic: str,
    found: TopicOutcome,
    address: str,
    refresh_secret: bool,
) -> TopicOutcome:
    """Create, repair or re-activate: the outcome afterwards."""
    target = found.subscription
    try:
        if found.state == State.MISSING:
            return TopicOutcome(
                State.REGISTERED, connector.webhook_subscribe(topic, address), "created"
            )
        if target is None:
            return found
        if found.state == State.WRONG_URL:
            repaired = connector.webhook_subscription_repair(target, address)
            return TopicOutcome(State.REGISTERED, repaired, f"repaired (was {target.address})")
        if found.state == State.DISABLED:
            repaired = connector.webhook_subscription_repair(target, address)
            return TopicOutcome(State.REGISTERED, repaired, "reactivated")
        if refresh_secret:
            repaired = connector.webhook_subscription_repair(target, address)
            return TopicOutcome(State.REGISTERED, repaired, "secret sent again")
    except ConnectorError as exc:
        return TopicOutcome(State.FAILED, target, error=f"{topic}: {exc.code}: {exc.message}")
    return found


def _record(report: Registration, outcome: dict[str, TopicOutcome], now: datetime) -> Registration:
    channel = report.channel
    report.topics = outcome
    for topic, result in outcome.items():
        subscription = result.subscription
        WebhookSubscription.objects.update_or_create(
            channel=channel,
            topic=topic,
            defaults={
                "state": result.state,
                "external_id": subscription.external_id if subscription else "",
                "address": subscription.address if subscription else "",
                "error": result.error[:2000],
                "note": result.note[:300],
                "checked_at": now,
            },
        )
    WebhookSubscription.objects.filter(channel=channel).exclude(topic__in=list(outcome)).delete()
    failed = [t for t, r in outcome.items() if r.state == State.FAILED]
    if failed:
        log.warning("webhooks of channel %s not registered: %s", channel.slug, ", ".join(failed))
    return report
