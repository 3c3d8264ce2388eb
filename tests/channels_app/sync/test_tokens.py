"""sync/tokens.py: refreshed ahead of expiry, stored encrypted with its expiry, a refused
token replaced once, a refused refresh pauses the channel with an alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from channels_app.connectors.base import ChannelConfig
from channels_app.connectors.errors import AuthError, RetryableError
from channels_app.connectors.oauth import TokenGrant
from channels_app.models import ChannelSyncState, ChannelToken
from channels_app.services import channel_resume
from channels_app.sync.connection import channel_config
from channels_app.sync.tokens import TokenProvider
from tests.support.alerts import open_alerts

pytestmark = pytest.mark.django_db

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CREDENTIALS = {"client_id": "cid", "client_secret": "secret", "refresh_token": "refresh-1"}


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Grants:
    """A token endpoint: numbered tokens of ``lifetime`` seconds, or a scripted failure."""

    def __init__(self, lifetime: float = 3600) -> None:
        self.lifetime = lifetime
        self.calls = 0
        self.fail: Exception | None = None

    def __call__(self, config: ChannelConfig) -> TokenGrant:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return TokenGrant(f"access-token-{self.calls:03d}", self.lifetime, "bearer")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def grants() -> Grants:
    return Grants()


@pytest.fixture
def ebay(channel_factory: Any) -> Any:
    return channel_factory(
        platform="ebay", base_url="http://127.0.0.1:9/ebay", credentials=dict(CREDENTIALS)
    )


def provider(channel: Any, grants: Grants, clock: Clock, **credentials: str) -> TokenProvider:
    config = channel_config(channel)
    if credentials:
        config = ChannelConfig(
            channel_id=config.channel_id,
            platform=config.platform,
            base_url=config.base_url,
            credentials={**config.credentials, **credentials},
        )
    return TokenProvider(channel_id=channel.pk, config=config, refresher=grants, clock=clock)


def test_the_first_call_refreshes_and_stores_the_token_encrypted_with_its_expiry(
    ebay: Any, grants: Grants, clock: Clock
) -> None:
    token = provider(ebay, grants, clock).current()

    row = ChannelToken.objects.get(channel=ebay)
    assert token == row.access_token == "access-token-001"
    assert (row.expires_at, row.refreshed_at, row.refresh_count) == (
        START + timedelta(hours=1),
        START,
        1,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT access_token FROM channels_app_channeltoken WHERE channel_id = %s", [ebay.pk]
        )
        stored = cursor.fetchone()[0]
    assert "access-token-001" not in stored


def test_a_valid_token_is_reused_by_every_provider_until_it_is_due(
    ebay: Any, grants: Grants, clock: Clock
) -> None:
    first = provider(ebay, grants, clock)
    first.current()
    clock.advance(3600 - 301)  # 5 minutes and a second before expiry

    assert first.current() == "access-token-001"
    assert provider(ebay, grants, clock).current() == "access-token-001"  # another worker
    assert grants.calls == 1
    clock.advance(2)  # now less than 5 minutes are left: refreshed ahead of expiry
    assert first.current() == "access-token-002"
    assert grants.calls == 2


def test_a_short_lived_token_is_refreshed_a_quarter_of_its_lifetime_ahead(
    ebay: Any, clock: Clock
) -> None:
    grants = Grants(lifetime=60)
    tokens = provider(ebay, grants, clock)
    tokens.current()

    clock.advance(44)
    assert tokens.current() == "access-token-001"
    clock.advance(2)  # 14 s left of 60: due (a quarter is 15 s)
    assert tokens.current() == "access-token-002"


def test_a_token_refused_after_another_worker_refreshed_is_replaced_without_a_refresh(
    ebay: Any, grants: Grants, clock: Clock
) -> None:
    slow = provider(ebay, grants, clock)
    old = slow.current()
    clock.advance(600)
    provider(ebay, grants, clock).rejected(old)  # another worker saw the 401 first

    assert slow.rejected(old) == "access-token-002"
    assert grants.calls == 2


def test_a_refused_current_token_is_refreshed(ebay: Any, grants: Grants, clock: Clock) -> None:
    tokens = provider(ebay, grants, clock)
    old = tokens.current()
    clock.advance(600)  # well before its expiry, but the platform revoked it

    assert tokens.rejected(old) == "access-token-002"


def test_a_refused_refresh_pauses_the_channel_with_an_alert_that_says_what_to_do(
    ebay: Any, grants: Grants, clock: Clock
) -> None:
    grants.fail = AuthError(
        "eBay refused the token refresh (invalid_grant: revoked). Get a new refresh token: …",
        code="invalid_grant",
    )

    with pytest.raises(AuthError):
        provider(ebay, grants, clock).current()

    state = ChannelSyncState.objects.get(channel=ebay)
    assert state.auth_failed_at == START
    assert "invalid_grant" in state.auth_error
    [alert] = open_alerts("auth_failed")
    assert alert.channel_id == ebay.pk
    assert alert.severity == "critical"
    assert "Get a new refresh token" in alert.message
    assert "pushes are paused" in alert.message


def test_after_a_refused_refresh_nothing_is_retried_until_resume_or_new_credentials(
    ebay: Any, grants: Grants, clock: Clock
) -> None:
    grants.fail = AuthError("refused", code="invalid_grant")
    with pytest.raises(AuthError):
        provider(ebay, grants, clock).current()

    with pytest.raises(AuthError) as again:
        provider(ebay, grants, clock).current()
    assert (again.value.code, grants.calls) == ("refresh_refused", 1)

    grants.fail = None
    assert provider(ebay, grants, clock, refresh_token="refresh-2").current() == "access-token-002"
    grants.fail = AuthError("refused", code="invalid_grant")
    with pytest.raises(AuthError):
        provider(ebay, grants, clock, refresh_token="refresh-3").current()
    grants.fail = None
    channel_resume(channel=ebay)  # a person says the cause is fixed
    assert provider(ebay, grants, clock, refresh_token="refresh-3").current() == "access-token-004"
    assert open_alerts("auth_failed") == []


def test_new_credentials_never_use_the_token_of_the_old_ones(
    ebay: Any, grants: Grants, clock: Clock
) -> None:
    provider(ebay, grants, clock).current()

    assert provider(ebay, grants, clock, client_id="other-app").current() == "access-token-002"


def test_a_token_endpoint_that_cannot_answer_leaves_the_valid_token_in_use(
    ebay: Any, grants: Grants, clock: Clock
) -> None:
    tokens = provider(ebay, grants, clock)
    tokens.current()
    clock.advance(3400)  # due, not expired
    grants.fail = RetryableError("token endpoint down", code="503")

    assert tokens.current() == "access-token-001"
    assert ChannelSyncState.objects.filter(channel=ebay, auth_failed_at__isnull=False).count() == 0
    clock.advance(300)  # expired now: no token to be had
    with pytest.raises(RetryableError):
        tokens.current()
    grants.fail = None
    clock.advance(10)
    assert tokens.current() == "access-token-004"  # calls 2 and 3 failed


def test_channel_config_gives_refresh_credentials_a_token_source_and_static_ones_none(
    channel_factory: Any,
) -> None:
    refreshing = channel_config(channel_factory(platform="amazon", credentials=dict(CREDENTIALS)))
    static = channel_config(
        channel_factory(platform="ebay", credentials={"access_token": "v^1.1#static"})
    )
    shopify = channel_config(channel_factory(credentials={"refresh_token": "not for shopify"}))

    assert (refreshing.access_token is not None, refreshing.on_unauthorized is not None) == (
        True,
        True,
    )
    assert (static.access_token, static.on_unauthorized) == (None, None)
    assert static.current_access_token() == "v^1.1#static"
    assert shopify.access_token is None
