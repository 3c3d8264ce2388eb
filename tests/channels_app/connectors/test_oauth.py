"""Refresh-token grants of eBay and Login with Amazon against the sandbox's token endpoints."""

from __future__ import annotations

import pytest

from channels_app.connectors.base import ChannelConfig
from channels_app.connectors.errors import AuthError, RetryableError
from channels_app.connectors.oauth import EBAY_SCOPES, refresh_access_token
from sandbox.server import RunningSandbox
from tests.support.sandbox import oauth_config


def test_ebay_grant_answers_a_user_access_token_with_its_lifetime(sandbox: RunningSandbox) -> None:
    grant = refresh_access_token(oauth_config(sandbox, "ebay"))

    assert grant.expires_in == 7200
    assert grant.token_type == "User Access Token"
    assert sandbox.platform("ebay").accepts_token(grant.access_token)


def test_ebay_grant_asks_for_the_sell_scopes_and_a_scope_not_granted_is_refused(
    sandbox: RunningSandbox,
) -> None:
    platform = sandbox.platform("ebay")
    platform.check_answers = True
    refresh_access_token(oauth_config(sandbox, "ebay"))  # the default scopes were granted
    wider = oauth_config(
        sandbox, "ebay", platform_config={"oauth_scopes": [*EBAY_SCOPES, "https://x/sell.finances"]}
    )

    with pytest.raises(AuthError) as refused:
        refresh_access_token(wider)

    assert (refused.value.code, refused.value.status) == ("invalid_scope", 400)
    assert (list(platform.refusals), list(platform.answer_problems)) == ([], [])


def test_amazon_grant_goes_to_the_token_url_path_on_the_base_url(sandbox: RunningSandbox) -> None:
    platform = sandbox.platform("amazon")
    platform.check_answers = True

    grant = refresh_access_token(oauth_config(sandbox, "amazon"))

    assert (grant.expires_in, grant.token_type) == (3600, "bearer")
    assert grant.access_token.startswith("Atza|")
    assert platform.counters.snapshot()["by_endpoint"] == {"lwaRefreshAccessToken": 1}
    assert (list(platform.refusals), list(platform.answer_problems)) == ([], [])


@pytest.mark.parametrize(
    ("platform", "remedy"),
    [("ebay", "Get a new refresh token"), ("amazon", "Authorize the app again")],
)
def test_a_revoked_refresh_token_is_refused_with_what_to_do(
    sandbox: RunningSandbox, platform: str, remedy: str
) -> None:
    issuer = sandbox.platform(platform).issuer()
    issuer.configure({"revoke": True}, sandbox.platform(platform).credentials["refresh_token"])

    with pytest.raises(AuthError) as refused:
        refresh_access_token(oauth_config(sandbox, platform))

    assert (refused.value.code, refused.value.status) == ("invalid_grant", 400)
    assert remedy in refused.value.message
    assert "refresh_token" in refused.value.message  # the credentials to paste are named


@pytest.mark.parametrize("platform", ["ebay", "amazon"])
def test_a_wrong_client_secret_is_refused_as_invalid_client(
    sandbox: RunningSandbox, platform: str
) -> None:
    config = oauth_config(sandbox, platform, client_secret="wrong-secret")

    with pytest.raises(AuthError) as refused:
        refresh_access_token(config)

    assert (refused.value.code, refused.value.status) == ("invalid_client", 401)
    assert "Check client_id and client_secret" in refused.value.message


def test_incomplete_credentials_are_refused_without_a_call(sandbox: RunningSandbox) -> None:
    config = oauth_config(sandbox, "ebay", client_secret="")

    with pytest.raises(AuthError) as refused:
        refresh_access_token(config)

    assert refused.value.code == "credentials_incomplete"
    assert "client_secret" in refused.value.message
    assert sandbox.platform("ebay").counters.snapshot()["calls"] == 0


def test_a_token_endpoint_that_cannot_answer_is_retryable(sandbox: RunningSandbox) -> None:
    sandbox.platform("amazon").faults.configure(
        {"error_5xx": 1.0, "endpoints": ["lwaRefreshAccessToken"]}
    )

    with pytest.raises(RetryableError):
        refresh_access_token(oauth_config(sandbox, "amazon"))


def test_the_token_call_spends_from_the_rate_budget(sandbox: RunningSandbox) -> None:
    spent: list[float] = []
    config = oauth_config(sandbox, "ebay", rate_gate=spent.append)

    refresh_access_token(config)

    assert spent == [1.0]


def test_a_static_token_channel_has_no_grant_to_make() -> None:
    config = ChannelConfig(
        channel_id=9, platform="shopify", base_url="http://127.0.0.1:9", credentials={}
    )

    with pytest.raises(AuthError) as refused:
        refresh_access_token(config)

    assert refused.value.code == "credentials_incomplete"
