"""Fixtures for the alert tests (health and synclog): the alert webhook, an ops
person, a stocked channel whose seed push is cleared."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses
from django.contrib.auth.models import Group

from channels_app.models import SyncMarker
from inventory import services
from tests.support.alerts import HOOK_URL


@pytest.fixture
def hook(settings) -> Iterator[responses.RequestsMock]:
    """The alert webhook, answered 200 by a mock; its calls are the deliveries."""
    settings.PIMSYNC_ALERT_WEBHOOK_URL = HOOK_URL
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.POST, HOOK_URL, json={"ok": True}, status=200)
        yield rsps


@pytest.fixture
def ops(db, django_user_model):
    user = django_user_model.objects.create_user("olga", "olga@ops.example", "pw-Very-Long-1")
    user.groups.add(Group.objects.get_or_create(name="ops")[0])
    return user


@pytest.fixture
def alerting_shop(
    db, channel_factory, channel_location_factory, location, variant_factory, listing_factory
):
    """A Shopify channel fed by `location`; SKU-1 has 50 units there."""
    channel = channel_factory(name="Shop", slug="shop", platform="shopify")
    channel_location_factory(channel=channel, location=location)
    variant = variant_factory(sku="SKU-1")
    listing_factory(channel=channel, variant=variant)
    services.stock_adjust(
        variant=variant,
        location=location,
        quantity=50,
        reason="receive",
        source="t",
        idempotency_key="seed-SKU-1",
    )
    SyncMarker.objects.all().delete()  # the seed's own push is not what these tests look at
    return channel
