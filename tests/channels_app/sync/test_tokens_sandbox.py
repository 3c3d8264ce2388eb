"""Token refresh end to end at small scale: eBay and Amazon channels with refresh-token
credentials, the engine's pushes and the orders poll against the sandbox's token
endpoints issuing 2-second tokens; a revoked refresh token pauses the channel."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from channels_app.models import (
    Channel,
    ChannelListing,
    ChannelSyncState,
    ChannelToken,
)
from channels_app.orders.polling import channel_poll
from channels_app.services import listing_save
from channels_app.sync import engine
from inventory import services
from inventory.models import Location, Product, Variant
from pimsync.demo import listing_ids
from sandbox.server import RunningSandbox
from synclog.models import SyncLogEntry
from tests.support.alerts import open_alerts
from tests.support.sandbox import demo_channel

pytestmark = pytest.mark.django_db(transaction=True)
SKUS = ("TOK-1", "TOK-2", "TOK-3")


def oauth_channel(sandbox: RunningSandbox, platform: str) -> tuple[Channel, Location]:
    """A channel configured as the demo's (client id, secret, refresh token; no access
    token) with three listed SKUs, seeded on the sandbox."""
    channel, location = demo_channel(
        sandbox, platform, location_code=f"t-{platform}", location_name="Token warehouse"
    )
    assert "access_token" not in channel.credentials
    product = Product.objects.create(title="Tokens", handle=f"tokens-{platform}")
    rows = []
    for n, sku in enumerate(SKUS):
        variant = Variant.objects.create(product=product, sku=sku, price=Decimal("10"))
        ids = listing_ids(platform, n, 0, sku)
        rows.append({"sku": ids.get("listing_sku") or sku, "price": "10.00", "quantity": 0, **ids})
        listing_save(listing=ChannelListing(channel=channel, variant=variant, **ids))
    sandbox.platform(platform).seed(
        [{k.removeprefix("external_"): v for k, v in row.items()} for row in rows]
    )
    return channel, location


def receive(sku: str, location: Location, quantity: int, key: str) -> None:
    services.stock_adjust(
        variant=Variant.objects.get(sku=sku),
        location=location,
        quantity=quantity,
        reason="receive",
        source="t",
        idempotency_key=key,
    )


@pytest.mark.parametrize("platform", ["ebay", "amazon"])
def test_pushes_and_polls_across_token_expiries_never_fail(sandbox, platform):
    issuer = sandbox.platform(platform).issuer()
    issuer.ttl = 2.0  # refreshed half a second ahead (a quarter of the lifetime)
    channel, location = oauth_channel(sandbox, platform)

    for round_ in range(4):
        receive(SKUS[round_ % 3], location, 5, f"r{round_}")
        engine.channel_push(channel.pk, time_budget=30)
        assert channel_poll(channel.pk).error == ""
        time.sleep(1.0)
    # a token the platform stops accepting early is replaced and the call retried
    issuer.expire_all()
    receive(SKUS[0], location, 5, "after-expiry")
    engine.channel_push(channel.pk, time_budget=30)

    token = ChannelToken.objects.get(channel=channel)
    assert token.refresh_count >= 3  # the first, at least one ahead of expiry, the forced one
    assert issuer.describe()["grants"] == token.refresh_count  # once per refresh, no more
    assert list(SyncLogEntry.objects.exclude(status="success").values("status", "message")) == []
    assert SyncLogEntry.objects.filter(channel=channel, status="success").count() >= 5
    assert ChannelSyncState.objects.get(channel=channel).auth_failed_at is None
    assert open_alerts("auth_failed") == []
    live = sandbox.platform(platform).catalog
    assert live.get(ChannelListing.objects.get(variant__sku=SKUS[0]).channel_sku).quantity == 15


@pytest.mark.parametrize(
    ("platform", "remedy"),
    [("ebay", "Get a new refresh token"), ("amazon", "Authorize the app again")],
)
def test_a_revoked_refresh_token_pauses_the_channel_and_alerts(sandbox, platform, remedy):
    issuer = sandbox.platform(platform).issuer()
    channel, location = oauth_channel(sandbox, platform)
    receive(SKUS[0], location, 5, "first")
    engine.channel_push(channel.pk, time_budget=30)
    # the seller revoked the app: the refresh token is refused, the access token ends
    issuer.configure({"revoke": True}, sandbox.platform(platform).credentials["refresh_token"])
    issuer.expire_all()

    receive(SKUS[1], location, 5, "second")
    engine.channel_push(channel.pk, time_budget=30)

    state = ChannelSyncState.objects.get(channel=channel)
    assert state.auth_failed_at is not None
    assert "invalid_grant" in state.auth_error
    [alert] = open_alerts("auth_failed")
    assert (alert.channel_id, alert.severity) == (channel.pk, "critical")
    assert remedy in alert.message
    # paused: the next push does not run, a poll does not ask the token endpoint again
    assert engine.channel_push(channel.pk, time_budget=30).stopped == "auth"
    assert "refresh_refused" in channel_poll(channel.pk).error
    assert issuer.describe()["refused_grants"] == 1
