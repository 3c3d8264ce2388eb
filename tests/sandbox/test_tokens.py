"""The sandbox's OAuth token endpoints: expiring access tokens in each platform's shape,
their lifetime, revocation and expiry set through /_control/tokens."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.server import RunningSandbox, start_sandbox
from tests.support.sandbox import FakeClock, control

EBAY_CLIENT = base64.b64encode(b"sandbox-ebay-client:sandbox-ebay-secret").decode()
EBAY_REFRESH = "v^1.1#i^1#r^1#sandbox-ebay-refresh"
AMAZON_FORM = {
    "grant_type": "refresh_token",
    "refresh_token": "Atzr|sandbox-amazon-refresh",
    "client_id": "amzn1.application-oa2-client.sandbox",
    "client_secret": "sandbox-amazon-secret",
}
LISTINGS = "/amazon/listings/2021-08-01/items/A2SANDBOXSELLER"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def timed(clock: FakeClock) -> Iterator[RunningSandbox]:
    running = start_sandbox(scale_limits=1000, clock=clock)
    yield running
    running.stop()


def ebay_grant(base_url: str, **form: str) -> requests.Response:
    body = {
        "grant_type": "refresh_token",
        "refresh_token": EBAY_REFRESH,
        "scope": "https://api.ebay.com/oauth/api_scope/sell.inventory",
        **form,
    }
    return requests.post(
        f"{base_url}/ebay/identity/v1/oauth2/token",
        data=body,
        headers={"Authorization": f"Basic {EBAY_CLIENT}"},
        timeout=5,
    )


def amazon_grant(base_url: str, **form: str) -> requests.Response:
    return requests.post(
        f"{base_url}/amazon/auth/o2/token", data={**AMAZON_FORM, **form}, timeout=5
    )


def ebay_call(base_url: str, token: str) -> requests.Response:
    return requests.get(
        f"{base_url}/ebay/sell/inventory/v1/inventory_item",
        params={"limit": 1, "offset": 0},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def amazon_call(base_url: str, token: str) -> requests.Response:
    return requests.get(
        f"{base_url}{LISTINGS}",
        params={"marketplaceIds": "ATVPDKIKX0DER", "pageSize": 1},
        headers={"x-amz-access-token": token},
        timeout=5,
    )


def test_grants_answer_in_each_platforms_shape(sandbox: RunningSandbox) -> None:
    ebay, amazon = ebay_grant(sandbox.url), amazon_grant(sandbox.url)

    assert ebay.status_code == 200
    assert ebay.json()["expires_in"] == 7200
    assert ebay.json()["token_type"] == "User Access Token"
    assert set(ebay.json()) == {"access_token", "expires_in", "token_type"}
    assert amazon.status_code == 200
    assert {k: v for k, v in amazon.json().items() if k != "access_token"} == {
        "refresh_token": "Atzr|sandbox-amazon-refresh",
        "token_type": "bearer",
        "expires_in": 3600,
    }
    assert ebay_call(sandbox.url, ebay.json()["access_token"]).status_code == 200
    assert amazon_call(sandbox.url, amazon.json()["access_token"]).status_code == 200


def test_a_token_expires_after_the_ttl_set_through_control(
    timed: RunningSandbox, clock: FakeClock
) -> None:
    status, tokens = control(
        timed.url, "POST", "/_control/tokens", {"ebay": {"ttl": 60}, "amazon": {"ttl": 60}}
    )
    assert status == 200
    assert (tokens["ebay"]["ttl"], tokens["amazon"]["ttl"]) == (60.0, 60.0)
    ebay_token = ebay_grant(timed.url).json()
    amazon_token = amazon_grant(timed.url).json()
    assert (ebay_token["expires_in"], amazon_token["expires_in"]) == (60, 60)

    clock.advance(59)
    assert ebay_call(timed.url, ebay_token["access_token"]).status_code == 200
    clock.advance(2)
    ebay_refused = ebay_call(timed.url, ebay_token["access_token"])
    amazon_refused = amazon_call(timed.url, amazon_token["access_token"])

    assert ebay_refused.status_code == 401
    assert ebay_refused.json()["errors"][0]["errorId"] == 1001
    assert amazon_refused.status_code == 403
    assert amazon_refused.json()["errors"][0]["code"] == "Unauthorized"
    status, described = control(timed.url, "GET", "/_control/tokens")
    assert described["ebay"]["expired_refusals"] == 1
    assert described["amazon"]["live"] == 0


def test_the_static_token_never_expires(timed: RunningSandbox, clock: FakeClock) -> None:
    control(timed.url, "POST", "/_control/tokens", {"ebay": {"ttl": 1}})
    clock.advance(10_000)

    assert ebay_call(timed.url, "sandbox-ebay-token").status_code == 200
    assert amazon_call(timed.url, "sandbox-amazon-token").status_code == 200


@pytest.mark.parametrize(
    ("grant", "description"),
    [
        (
            ebay_grant,
            "the provided authorization refresh token is invalid or was issued to another client",
        ),
        (amazon_grant, "The request has an invalid grant parameter : refresh_token"),
    ],
)
def test_a_revoked_refresh_token_fails_the_grant_until_restored(
    sandbox: RunningSandbox, grant: Any, description: str
) -> None:
    platform = "ebay" if grant is ebay_grant else "amazon"
    control(sandbox.url, "POST", "/_control/tokens", {platform: {"revoke": True}})

    refused = grant(sandbox.url)

    assert refused.status_code == 400
    assert refused.json() == {"error": "invalid_grant", "error_description": description}
    control(sandbox.url, "POST", "/_control/tokens", {platform: {"restore": True}})
    assert grant(sandbox.url).status_code == 200
    assert control(sandbox.url, "GET", "/_control/tokens")[1][platform]["refused_grants"] == 1


def test_expire_ends_every_issued_token_at_once(sandbox: RunningSandbox) -> None:
    token = amazon_grant(sandbox.url).json()["access_token"]

    control(sandbox.url, "POST", "/_control/tokens", {"amazon": {"expire": True}})

    assert amazon_call(sandbox.url, token).status_code == 403
    assert amazon_call(sandbox.url, amazon_grant(sandbox.url).json()["access_token"]).ok


def test_wrong_client_credentials_are_invalid_client(sandbox: RunningSandbox) -> None:
    ebay = requests.post(
        f"{sandbox.url}/ebay/identity/v1/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": EBAY_REFRESH, "scope": "x"},
        headers={"Authorization": "Basic " + base64.b64encode(b"sandbox-ebay-client:no").decode()},
        timeout=5,
    )
    amazon = amazon_grant(sandbox.url, client_secret="no")

    assert (ebay.status_code, ebay.json()["error"]) == (401, "invalid_client")
    assert (amazon.status_code, amazon.json()["error"]) == (401, "invalid_client")


def test_a_malformed_grant_is_refused_in_oauths_shape_and_recorded(sandbox: RunningSandbox) -> None:
    refused = ebay_grant(sandbox.url, grant_type="client_credentials")

    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_request"
    assert sandbox.platform("ebay").refusals[-1]["problems"] == [
        "body grant_type: 'client_credentials' is not one of ['refresh_token']"
    ]


def test_a_grant_must_be_sent_as_a_form(sandbox: RunningSandbox) -> None:
    refused = requests.post(f"{sandbox.url}/amazon/auth/o2/token", json=AMAZON_FORM, timeout=5)

    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_request")
    assert "Content-Type" in refused.json()["error_description"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"ebay": {"ttl": 0}}, "ttl must be positive"),
        ({"shopify": {"ttl": 60}}, "shopify has no token endpoint"),
        ({"ebay": 60}, "ebay: expected an object"),
    ],
)
def test_bad_token_settings_are_refused_and_change_nothing(
    sandbox: RunningSandbox, body: dict[str, Any], error: str
) -> None:
    status, answer = control(sandbox.url, "POST", "/_control/tokens", body)

    assert status == 400
    assert error in answer["error"]
    assert control(sandbox.url, "GET", "/_control/tokens")[1]["ebay"]["ttl"] == 7200.0


def test_reset_restores_the_default_lifetime_and_unrevokes(sandbox: RunningSandbox) -> None:
    control(sandbox.url, "POST", "/_control/tokens", {"ebay": {"ttl": 5, "revoke": True}})

    control(sandbox.url, "POST", "/_control/reset", {})

    assert control(sandbox.url, "GET", "/_control/tokens")[1]["ebay"] == {
        "ttl": 7200.0,
        "live": 0,
        "grants": 0,
        "refused_grants": 0,
        "expired_refusals": 0,
        "revoked_refresh_tokens": 0,
    }
    assert ebay_grant(sandbox.url).status_code == 200


def test_start_sandbox_sets_the_token_lifetime() -> None:
    running = start_sandbox(token_ttl=30)
    try:
        assert ebay_grant(running.url).json()["expires_in"] == 30
        assert amazon_grant(running.url).json()["expires_in"] == 30
    finally:
        running.stop()
