"""The shared connector HTTP client: classification, redaction, pacing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
import requests
import responses

from channels_app.connectors.base import ChannelConfig
from channels_app.connectors.errors import (
    AuthError,
    FailureKind,
    PermanentError,
    RetryableError,
)
from channels_app.connectors.http import (
    USER_AGENT,
    HttpClient,
    TokenBucket,
    error_results,
    ok_result,
    parse_retry_after,
)

BASE = "https://api.example.test"
TOKEN = "s3cr3t-access-token-value"


def make_client(**overrides: object) -> HttpClient:
    config = ChannelConfig(
        channel_id=1,
        platform="ebay",
        base_url=BASE,
        credentials={"access_token": TOKEN},
        webhook_secret="hook-secret-xyz",
        connect_timeout=1.5,
        read_timeout=7.0,
        **overrides,  # type: ignore[arg-type]
    )
    return HttpClient(config, headers={"Authorization": f"Bearer {TOKEN}"})


@responses.activate
def test_success_parses_json_and_sends_user_agent_and_timeouts() -> None:
    # given
    responses.get(f"{BASE}/thing", json={"a": 1}, status=200)
    client = make_client()
    sent: dict[str, object] = {}
    original = client.session.request

    def spy(*args: object, **kwargs: object) -> requests.Response:
        sent.update(kwargs)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    client.session.request = spy  # type: ignore[method-assign]
    # when
    result = client.get(f"{BASE}/thing")
    # then
    assert result.ok
    assert result.status == 200
    assert result.data == {"a": 1}
    assert result.unwrap() == {"a": 1}
    assert sent["timeout"] == (1.5, 7.0)
    assert sent["allow_redirects"] is False
    request = responses.calls[0].request
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


@responses.activate
def test_429_with_retry_after_seconds_is_retryable() -> None:
    responses.post(
        f"{BASE}/x",
        json={"errors": [{"code": "QuotaExceeded", "message": "You exceeded your quota"}]},
        status=429,
        headers={"Retry-After": "3"},
    )
    result = make_client().post(f"{BASE}/x", json={})
    assert isinstance(result.error, RetryableError)
    assert result.error.code == "QuotaExceeded"
    assert result.error.retry_after == 3.0
    assert result.error.status == 429
    assert "You exceeded your quota" in result.error.message


@responses.activate
def test_retry_after_http_date_is_converted_to_seconds() -> None:
    when = datetime(2030, 1, 1, 0, 0, 10, tzinfo=UTC)
    now = datetime(2030, 1, 1, 0, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Tue, 01 Jan 2030 00:00:10 GMT", now=now) == 10.0
    assert parse_retry_after(when.strftime("%a, %d %b %Y %H:%M:%S GMT"), now=when) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("1.5") == 1.5


@responses.activate
def test_retry_after_hint_supplies_wait_when_header_missing() -> None:
    responses.get(f"{BASE}/x", json={"errors": []}, status=429)
    result = make_client().get(f"{BASE}/x", retry_after_hint=lambda r: 2.5)
    assert isinstance(result.error, RetryableError)
    assert result.error.retry_after == 2.5


@responses.activate
def test_retry_after_header_wins_over_hint() -> None:
    responses.get(f"{BASE}/x", status=503, headers={"Retry-After": "7"}, body="")
    result = make_client().get(f"{BASE}/x", retry_after_hint=lambda r: 99.0)
    assert isinstance(result.error, RetryableError)
    assert result.error.retry_after == 7.0
    assert result.error.code == "503"


@pytest.mark.parametrize(
    ("status", "kind", "cls"),
    [
        (500, FailureKind.RETRYABLE, RetryableError),
        (502, FailureKind.RETRYABLE, RetryableError),
        (503, FailureKind.RETRYABLE, RetryableError),
        (408, FailureKind.RETRYABLE, RetryableError),
        (401, FailureKind.AUTH, AuthError),
        (403, FailureKind.AUTH, AuthError),
        (400, FailureKind.PERMANENT, PermanentError),
        (404, FailureKind.PERMANENT, PermanentError),
        (422, FailureKind.PERMANENT, PermanentError),
        (302, FailureKind.PERMANENT, PermanentError),
    ],
)
@responses.activate
def test_status_classification(status: int, kind: FailureKind, cls: type) -> None:
    responses.get(f"{BASE}/x", json={"errors": [{"errorId": 25002, "message": "m"}]}, status=status)
    result = make_client().get(f"{BASE}/x")
    assert isinstance(result.error, cls)
    assert result.error.kind is kind
    assert result.error.status == status
    assert not result.ok


@responses.activate
def test_ebay_error_id_becomes_code() -> None:
    responses.post(
        f"{BASE}/x",
        json={
            "errors": [{"errorId": 25709, "message": "Invalid value", "longMessage": "Bad price"}]
        },
        status=400,
    )
    result = make_client().post(f"{BASE}/x")
    assert isinstance(result.error, PermanentError)
    assert result.error.code == "25709"
    assert "Bad price" in result.error.message


@responses.activate
def test_malformed_json_on_200_is_permanent_with_snippet() -> None:
    responses.get(f"{BASE}/x", body='{"responses": [ {"sku": "A1", ', status=200)
    result = make_client().get(f"{BASE}/x")
    assert isinstance(result.error, PermanentError)
    assert result.error.code == "malformed_json"
    assert '{"responses": [ {"sku": "A1",' in result.error.message


@responses.activate
def test_html_page_instead_of_json_is_permanent_with_first_200_chars() -> None:
    page = "<!DOCTYPE html><html><head><title>Maintenance</title></head><body>" + "x" * 500
    responses.get(f"{BASE}/x", body=page, status=200, content_type="text/html")
    result = make_client().get(f"{BASE}/x")
    assert isinstance(result.error, PermanentError)
    assert result.error.code == "html_response"
    assert "<title>Maintenance</title>" in result.error.message
    assert "x" * 200 not in result.error.message  # only the first 200 chars of the body


@responses.activate
def test_html_error_page_on_502_stays_retryable_and_quotes_page() -> None:
    responses.get(f"{BASE}/x", body="<html><body>Bad Gateway</body></html>", status=502)
    result = make_client().get(f"{BASE}/x")
    assert isinstance(result.error, RetryableError)
    assert "Bad Gateway" in result.error.message


@responses.activate
def test_read_timeout_is_retryable() -> None:
    responses.get(f"{BASE}/x", body=requests.ReadTimeout("read timed out"))
    result = make_client().get(f"{BASE}/x")
    assert result.status is None
    assert isinstance(result.error, RetryableError)
    assert result.error.code == "timeout"
    assert "outcome unknown" in result.error.message


@responses.activate
def test_connection_error_is_retryable() -> None:
    responses.get(f"{BASE}/x", body=requests.ConnectionError("refused"))
    result = make_client().get(f"{BASE}/x")
    assert isinstance(result.error, RetryableError)
    assert result.error.code == "connection_error"


def test_unwrap_raises_classified_error() -> None:
    with responses.RequestsMock() as mock:
        mock.get(f"{BASE}/x", status=401, json={"errors": [{"message": "bad token"}]})
        result = make_client().get(f"{BASE}/x")
    with pytest.raises(AuthError, match="bad token"):
        result.unwrap()


@responses.activate
def test_empty_body_success_has_no_data() -> None:
    responses.post(f"{BASE}/x", body="", status=204)
    result = make_client().post(f"{BASE}/x")
    assert result.ok
    assert result.data is None


@responses.activate
def test_secrets_never_reach_logs_or_messages(caplog: pytest.LogCaptureFixture) -> None:
    # given: a server echoing the token and a URL carrying secrets as query params
    responses.get(
        f"{BASE}/x",
        body=f"<html>token {TOKEN} rejected</html>",
        status=500,
    )
    caplog.set_level(logging.DEBUG, logger="channels_app.connectors.http")
    # when
    result = make_client().get(
        f"{BASE}/x", params={"consumer_key": "ck_abcdef", "consumer_secret": "cs_123456"}
    )
    # then
    assert result.error is not None
    logged = caplog.text
    assert "/x?consumer_key=***&consumer_secret=***" in logged
    for secret in (TOKEN, "ck_abcdef", "cs_123456", "Bearer"):
        assert secret not in logged
        assert secret not in result.error.message


def test_redact_masks_credentials_and_webhook_secret() -> None:
    client = make_client()
    assert client.redact(f"a {TOKEN} b hook-secret-xyz c") == "a *** b *** c"
    assert client.redact("https://h/p?access_token=abc&x=1") == "https://h/p?access_token=***&x=1"


def test_error_results_fans_out_to_every_sku() -> None:
    error = RetryableError("HTTP 503", code="503", status=503, retry_after=4.0)
    results = error_results(["A", "B", "C"], error)
    assert [r.sku for r in results] == ["A", "B", "C"]
    assert all(r.kind is FailureKind.RETRYABLE for r in results)
    assert all(r.retry_after == 4.0 and r.http_status == 503 and r.code == "503" for r in results)
    assert ok_result("A").ok


def test_token_bucket_paces_after_burst() -> None:
    # given: a fake clock so the test measures the schedule, not wall time
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(5.0, 5.0, clock=lambda: now[0], sleep=sleep)
    # when: ten calls back to back
    for _ in range(10):
        bucket.acquire()
    # then: five go at once, the next five are spaced 0.2 s apart
    assert len(slept) == 5
    assert sum(slept) == pytest.approx(1.0)


def test_token_bucket_drain_and_disabled() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(2.0, 10.0, clock=lambda: now[0], sleep=sleep)
    bucket.drain()
    assert bucket.acquire() == pytest.approx(0.5)
    assert TokenBucket(0, 1).acquire() == 0.0
