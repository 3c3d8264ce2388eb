"""HttpClient with token auth: the access token is read per call, a refused token is
renewed once and the call retried, every attempt spends from the rate budget."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import responses

from channels_app.connectors.base import ChannelConfig
from channels_app.connectors.errors import AuthError, FailureKind, RetryableError
from channels_app.connectors.http import HttpClient

BASE = "https://api.example.test"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Tokens:
    """A token source that hands out ``tokens`` in turn and records renewals."""

    def __init__(self, *tokens: str, renewed: str | None = "fresh-token-2") -> None:
        self.tokens = list(tokens)
        self.renewed = renewed
        self.rejected: list[str] = []
        self.gate: list[float] = []

    def current(self) -> str:
        return self.tokens.pop(0) if len(self.tokens) > 1 else self.tokens[0]

    def on_unauthorized(self, token: str) -> str | None:
        self.rejected.append(token)
        return self.renewed

    def config(self, **overrides: Any) -> ChannelConfig:
        values: dict[str, Any] = {
            "channel_id": 1,
            "platform": "ebay",
            "base_url": BASE,
            "credentials": {"client_id": "cid", "client_secret": "cs", "refresh_token": "rt"},
            "rate_gate": self.gate.append,
            "access_token": self.current,
            "on_unauthorized": self.on_unauthorized,
        }
        values.update(overrides)
        return ChannelConfig(**values)


def sent_tokens() -> list[str]:
    return [call.request.headers["Authorization"] for call in responses.calls]


@responses.activate
def test_each_call_sends_the_token_the_source_gives_now() -> None:
    responses.get(f"{BASE}/a", json={}, status=200)
    tokens = Tokens("token-one-1", "token-two-2")
    client = HttpClient(tokens.config(), auth=bearer)

    client.get(f"{BASE}/a")
    client.get(f"{BASE}/a")

    assert sent_tokens() == ["Bearer token-one-1", "Bearer token-two-2"]


@responses.activate
def test_a_refused_token_is_renewed_once_and_the_call_sent_again() -> None:
    responses.get(f"{BASE}/a", json={"errors": [{"errorId": 1001}]}, status=401)
    responses.get(f"{BASE}/a", json={"ok": True}, status=200)
    tokens = Tokens("expired-token-1")
    client = HttpClient(tokens.config(), auth=bearer)

    result = client.get(f"{BASE}/a")

    assert (result.ok, result.data) == (True, {"ok": True})
    assert tokens.rejected == ["expired-token-1"]
    assert sent_tokens() == ["Bearer expired-token-1", "Bearer fresh-token-2"]
    assert tokens.gate == [1.0, 1.0]  # both attempts spent from the budget


@responses.activate
def test_a_second_refusal_is_the_calls_answer() -> None:
    responses.get(f"{BASE}/a", json={}, status=401)
    tokens = Tokens("expired-token-1")
    client = HttpClient(tokens.config(), auth=bearer)

    result = client.get(f"{BASE}/a")

    assert (result.status, type(result.error)) == (401, AuthError)
    assert len(responses.calls) == 2
    assert tokens.rejected == ["expired-token-1"]


@responses.activate
def test_no_retry_when_no_other_token_can_be_had() -> None:
    responses.get(f"{BASE}/a", json={}, status=401)
    tokens = Tokens("static-token-1", renewed=None)
    client = HttpClient(tokens.config(), auth=bearer)

    result = client.get(f"{BASE}/a")

    assert result.status == 401
    assert len(responses.calls) == 1


@responses.activate
def test_a_refused_renewal_is_the_calls_error() -> None:
    responses.get(f"{BASE}/a", json={}, status=401)
    refused = AuthError("refresh refused: get a new refresh token", code="invalid_grant")
    tokens = Tokens("expired-token-1")

    def renew(token: str) -> str | None:
        raise refused

    client = HttpClient(tokens.config(on_unauthorized=renew), auth=bearer)

    result = client.get(f"{BASE}/a")

    assert result.error is refused
    assert result.status == 401


@responses.activate
def test_a_token_that_cannot_be_had_fails_the_call_before_it_goes() -> None:
    def unavailable() -> str:
        raise RetryableError("token endpoint down", code="503")

    tokens = Tokens("unused")
    client = HttpClient(tokens.config(access_token=unavailable), auth=bearer)

    result = client.get(f"{BASE}/a")

    assert (result.status, result.error.kind if result.error else None) == (
        None,
        FailureKind.RETRYABLE,
    )
    assert len(responses.calls) == 0
    assert tokens.gate == []


@pytest.mark.parametrize(
    ("code", "renewed"),
    [("Unauthorized", True), ("AccessDenied", False)],
)
@responses.activate
def test_sp_api_403_unauthorized_renews_the_token_other_403s_do_not(
    code: str, renewed: bool
) -> None:
    body = {"errors": [{"code": code, "message": "Access to requested resource is denied."}]}
    responses.get(f"{BASE}/a", json=body, status=403)
    responses.get(f"{BASE}/a", json={}, status=200)
    tokens = Tokens("expired-token-1")
    client = HttpClient(tokens.config(platform="amazon"), auth=bearer)

    client.get(f"{BASE}/a")

    assert (tokens.rejected == ["expired-token-1"]) is renewed


@responses.activate
def test_a_call_without_token_auth_never_asks_for_a_token() -> None:
    responses.get(f"{BASE}/a", json={}, status=401)
    asked: list[str] = []
    tokens = Tokens("unused")
    config = tokens.config(access_token=lambda: asked.append("x") or "t")
    client = HttpClient(config, headers={"X-Key": "k"})

    result = client.get(f"{BASE}/a")

    assert (result.status, asked, tokens.rejected) == (401, [], [])


@responses.activate
def test_a_refreshed_token_is_masked_in_messages() -> None:
    responses.get(f"{BASE}/a", body="bad token fresh-token-2 here", status=400)
    tokens = Tokens("fresh-token-2")
    client = HttpClient(tokens.config(), auth=bearer)

    result = client.get(f"{BASE}/a")

    assert result.error is not None
    assert "fresh-token-2" not in result.error.message
    assert "***" in result.error.message


@responses.activate
def test_a_per_call_auth_scheme_overrides_the_default() -> None:
    responses.post(f"{BASE}/b", json={}, status=200)
    tokens = Tokens("token-one-1")
    client = HttpClient(tokens.config(), auth=bearer)
    iaf: Callable[[str], dict[str, str]] = lambda token: {"Authorization": f"IAF {token}"}  # noqa: E731

    client.post(f"{BASE}/b", json={}, auth=iaf)

    assert sent_tokens() == ["IAF token-one-1"]
