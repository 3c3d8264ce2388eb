"""The HTTP client every connector uses, and the one place failures are classified.

Interface
---------
``HttpClient(config, *, headers=None, extra_secrets=(), gated=True, auth=None)``
    One ``requests.Session`` per connector instance, with the User-Agent
    ``pimsync/0.1 (+connector)``, ``Accept: application/json``, the given default
    headers (static auth headers belong here) and ``(connect_timeout,
    read_timeout)`` from the ChannelConfig on every call. Redirects are not
    followed: an API that redirects is misconfigured (wrong base URL, a login
    page), and following it would resend credentials elsewhere. Every call first
    spends ``cost`` from the channel's rate budget (``config.rate_gate``) unless
    ``gated=False`` (pre-signed storage URLs).

    ``auth(token) -> headers``: token auth. Each call sends the token
    ``config.current_access_token()`` gives now (refreshed by the caller's token
    provider on OAuth channels); when the API refuses it (401, or SP-API's 403
    ``Unauthorized``) ``config.on_unauthorized(token)`` gives the token to send
    the call once more with, or None (no retry). A token that cannot be had fails
    the call before it goes.

``client.request(method, url, *, params=None, json=None, data=None, headers=None,
expect_json=True, timeout=None, retry_after_hint=None, cost=1.0, auth=None) -> HttpResult``
    Never raises for HTTP or transport failures; ``get/post/put/patch/delete``
    are shorthands. ``retry_after_hint(result)`` lets a connector supply the
    wait for a retryable failure whose response has no usable ``Retry-After``
    (e.g. derived from Shopify's throttle status or Amazon's rate header);
    ``auth`` overrides the client's token auth for one call (eBay Post-Order's
    ``IAF`` scheme).

``HttpResult``: ``status`` (None when no response arrived), ``data`` (parsed
JSON, or None for an empty body / ``expect_json=False``), ``body`` (raw bytes),
``headers``, ``elapsed_ms``, ``error`` (a ConnectorError or None), ``ok``,
``unwrap()`` which returns ``data`` or raises ``error``, and ``unwrap_body()``
(the raw bytes, or raises).

Classification (``classify_response`` / ``classify_exception``):
    429, 5xx, 408, timeouts, connection errors -> RetryableError (retry_after
    from ``Retry-After`` in seconds or as an HTTP-date, else the hint);
    401 / 403 -> AuthError; any other 4xx and unexpected 3xx -> PermanentError;
    a 2xx whose body is not JSON (malformed, or an HTML error page) ->
    PermanentError carrying the first ``BODY_SNIPPET_CHARS`` characters.
    The error ``code`` is the channel's own code when the body has a known shape
    (eBay ``errorId``, SP-API / WooCommerce ``code``, GraphQL
    ``extensions.code``), else the HTTP status, ``timeout``,
    ``connection_error``, ``malformed_json`` or ``html_response``.

``error_results(skus, error) -> list[ItemResult]``
    Fans one call-level failure out to every SKU of the call.
``ok_result(sku)`` and ``item_result(sku, error)`` build single results;
``error_for_kind(kind, message, ...)`` builds the matching ConnectorError;
``error_code_and_message(data)`` and ``body_snippet(body)`` are the parsing
pieces the classification uses (for connectors reading per-item errors).

``TokenBucket(rate, burst, clock=..., sleep=...)``
    Client-side pacing: ``acquire()`` blocks until a token is free, so a full
    batch spends the channel's documented rate instead of burning 429s;
    ``drain()`` after a 429; ``rate <= 0`` disables it. Pace a little under the
    server's limit: equal buckets turn network jitter into 429s.

Paging and time helpers for ``orders_since``: ``encode_page_cursor(state)`` /
``decode_page_cursor(cursor)`` (an opaque ``page:...`` cursor; a plain ISO
timestamp - the stored high-water mark - decodes to None), ``parse_timestamp``
and ``format_timestamp`` (UTC, ``Z``, optional milliseconds).

Secrets: no header is ever logged; URLs and messages pass through ``redact``,
which masks every credential value of the ChannelConfig, every access token the
client sent, and the values of secret-looking query parameters
(``consumer_secret``, ``access_token``, ...).
"""

from __future__ import annotations

import base64
import json as jsonlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any

import requests

from .base import ChannelConfig, ItemResult
from .errors import (
    AuthError,
    ConnectorError,
    FailureKind,
    PermanentError,
    RetryableError,
)

logger = logging.getLogger(__name__)

USER_AGENT = "pimsync/0.1 (+connector)"
BODY_SNIPPET_CHARS = 200
REDACTED = "***"

# Query/form keys whose values are secrets wherever they appear (WooCommerce may
# send its keys as query parameters; OAuth flows put tokens in URLs).
_SECRET_KEY_RE = re.compile(
    r"(?i)\b((?:consumer_key|consumer_secret|access_token|refresh_token|client_secret|"
    r"api_key|apikey|password|token|signature|secret)=)[^&\s'\"]+"
)
# A credential shorter than this is not masked by value: masking "1" would
# shred every number in a log line while protecting nothing.
_MIN_SECRET_LEN = 4
_TOKEN_EPSILON = 1e-9

RetryAfterHint = Callable[["HttpResult"], float | None]
# The auth headers of a call, from the access token to send (e.g. a Bearer header).
TokenHeaders = Callable[[str], Mapping[str, str]]


@dataclass(frozen=True)
class HttpResult:
    """Outcome of one HTTP call; ``error`` is None exactly when it succeeded."""

    status: int | None
    data: Any = None
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    elapsed_ms: float = 0.0
    error: ConnectorError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> Any:
        """Return the parsed body, or raise the classified error."""
        if self.error is not None:
            raise self.error
        return self.data

    def unwrap_body(self) -> bytes:
        """Return the raw body (``expect_json=False`` calls), or raise the error."""
        if self.error is not None:
            raise self.error
        return self.body


# --------------------------------------------------------------------------- results


def ok_result(sku: str, *, http_status: int | None = None) -> ItemResult:
    return ItemResult(sku=sku, kind=FailureKind.OK, http_status=http_status)


def item_result(sku: str, error: ConnectorError) -> ItemResult:
    """One SKU's result carrying a call-level (or per-item) failure."""
    return ItemResult(
        sku=sku,
        kind=error.kind,
        code=error.code,
        message=error.message,
        retry_after=error.retry_after,
        http_status=error.status,
    )


def error_results(skus: Iterable[str], error: ConnectorError) -> list[ItemResult]:
    """The same failure for every SKU of a failed call, in input order."""
    return [item_result(sku, error) for sku in skus]


def error_for_kind(
    kind: FailureKind,
    message: str,
    *,
    code: str = "",
    status: int | None = None,
    retry_after: float | None = None,
) -> ConnectorError:
    """Build the ConnectorError subclass matching ``kind`` (OK is not an error)."""
    cls: type[ConnectorError] = {
        FailureKind.RETRYABLE: RetryableError,
        FailureKind.AUTH: AuthError,
    }.get(kind, PermanentError)
    return cls(message, code=code, status=status, retry_after=retry_after)


# --------------------------------------------------------------------------- parsing


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT even when unmarked
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def body_snippet(body: bytes | str, limit: int = BODY_SNIPPET_CHARS) -> str:
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return " ".join(text[:limit].split())


def _looks_like_html(body: bytes, content_type: str) -> bool:
    if "html" in content_type.lower():
        return True
    head = body.lstrip()[:15].lower()
    return head.startswith((b"<!doctype", b"<html", b"<head", b"<body"))


def error_code_and_message(data: Any) -> tuple[str, str]:
    """The channel's own error code/message from the shapes our platforms use."""
    if not isinstance(data, Mapping):
        return "", ""
    errors = data.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        first = errors[0]
        code = first.get("errorId", first.get("code", ""))
        if not code and isinstance(first.get("extensions"), Mapping):
            code = first["extensions"].get("code", "")
        message = first.get("longMessage") or first.get("message") or ""
        return str(code), str(message)
    if isinstance(errors, str):  # Shopify REST: {"errors": "..."}
        return "", errors
    code = data.get("code", "")
    message = data.get("message", "")
    return (str(code) if code else "", str(message) if message else "")


# --------------------------------------------------------------------------- classify


def classify_response(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    expect_json: bool = True,
    redactor: Callable[[str], str] = lambda text: text,
) -> tuple[Any, ConnectorError | None]:
    """Parse a response and classify it: ``(data, error)``; ``error`` None = success."""
    content_type = headers.get("Content-Type", "")
    data: Any = None
    parse_failed = False
    if expect_json and body.strip():
        try:
            data = jsonlib.loads(body)
        except ValueError:
            parse_failed = True

    if 200 <= status < 300:
        if not parse_failed:
            return data, None
        return None, _not_json_error(status, body, content_type, redactor)

    code, channel_message = error_code_and_message(data)
    detail = channel_message or (body_snippet(body) if body.strip() else "")
    if parse_failed and _looks_like_html(body, content_type):
        detail = f"HTML page instead of JSON: {body_snippet(body)}"
    message = redactor(f"HTTP {status}" + (f": {detail}" if detail else ""))
    code = code or str(status)
    retry_after = parse_retry_after(headers.get("Retry-After"))

    if status == 429 or status == 408 or status >= 500:
        return data, RetryableError(message, code=code, status=status, retry_after=retry_after)
    if status in (401, 403):
        return data, AuthError(message, code=code, status=status)
    if 300 <= status < 400:
        location = redactor(headers.get("Location", ""))
        return data, PermanentError(
            f"unexpected redirect (HTTP {status}) to {location or 'unknown location'}",
            code=str(status),
            status=status,
        )
    return data, PermanentError(message, code=code, status=status)


def _not_json_error(
    status: int, body: bytes, content_type: str, redactor: Callable[[str], str]
) -> PermanentError:
    if _looks_like_html(body, content_type):
        return PermanentError(
            redactor(f"expected JSON, got an HTML page (HTTP {status}): {body_snippet(body)}"),
            code="html_response",
            status=status,
        )
    return PermanentError(
        redactor(f"malformed JSON (HTTP {status}): {body_snippet(body)}"),
        code="malformed_json",
        status=status,
    )


def classify_exception(
    exc: requests.RequestException, *, redactor: Callable[[str], str] = lambda text: text
) -> ConnectorError:
    """Transport failures: timeouts and connection errors are retryable."""
    text = redactor(str(exc))
    if isinstance(exc, requests.ConnectTimeout):
        return RetryableError(f"connect timeout (request not sent): {text}", code="timeout")
    if isinstance(exc, requests.Timeout):
        # The channel may have applied the call; the caller re-reads or re-pushes
        # the same absolute values, which is safe.
        return RetryableError(f"read timeout (outcome unknown): {text}", code="timeout")
    if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return RetryableError(f"connection error: {text}", code="connection_error")
    return PermanentError(f"request failed: {text}", code="request_error")


# --------------------------------------------------------------------------- client


class HttpClient:
    """A requests.Session with timeouts, redaction and failure classification."""

    def __init__(
        self,
        config: ChannelConfig,
        *,
        headers: Mapping[str, str] | None = None,
        extra_secrets: Iterable[str] = (),
        gated: bool = True,
        auth: TokenHeaders | None = None,
    ) -> None:
        self.config = config
        # The access token goes into each request's headers as it is sent: an OAuth
        # channel's token is refreshed while a connector lives.
        self._auth = auth
        self._tokens_sent: set[str] = set()
        # Calls to the platform's API spend from the channel's rate budget; transfers
        # to pre-signed storage URLs (Amazon feed documents) are not API calls.
        self._gate = config.rate_gate if gated else None
        self.timeout = (config.connect_timeout, config.read_timeout)
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        if headers:
            self.session.headers.update(headers)
        # Decrypted JSON: a value need not be a string whatever the type says.
        candidates: list[object] = [
            *config.credentials.values(),
            config.webhook_secret,
            *extra_secrets,
        ]
        # Longest first so a secret containing another is masked whole.
        self._secrets = sorted(
            {s for s in candidates if isinstance(s, str) and len(s) >= _MIN_SECRET_LEN},
            key=len,
            reverse=True,
        )

    def redact(self, text: str) -> str:
        for secret in [*self._secrets, *self._tokens_sent]:
            text = text.replace(secret, REDACTED)
        return _SECRET_KEY_RE.sub(rf"\g<1>{REDACTED}", text)

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        expect_json: bool = True,
        timeout: tuple[float, float] | None = None,
        retry_after_hint: RetryAfterHint | None = None,
        cost: float = 1.0,
        auth: TokenHeaders | None = None,
    ) -> HttpResult:
        """One call. With token auth the current access token is sent, and a token the
        API refuses is renewed once and the call sent again (each attempt spends from
        the rate budget)."""
        auth = auth or self._auth
        send = partial(
            self._send,
            method,
            url,
            params=params,
            json=json,
            data=data,
            expect_json=expect_json,
            timeout=timeout,
            retry_after_hint=retry_after_hint,
            cost=cost,
        )
        if auth is None:
            return send(headers=headers)
        try:
            token = self.config.current_access_token()
        except ConnectorError as exc:  # no token to be had (refresh refused, endpoint down)
            return HttpResult(status=None, error=exc)
        result = send(headers=self._with_token(auth, token, headers))
        renew = self.config.on_unauthorized
        if renew is None or not _token_refused(result):
            return result
        try:
            fresh = renew(token)
        except ConnectorError as exc:
            return replace(result, error=exc)
        if not fresh or fresh == token:
            return result
        return send(headers=self._with_token(auth, fresh, headers))

    def _with_token(
        self, auth: TokenHeaders, token: str, headers: Mapping[str, str] | None
    ) -> dict[str, str]:
        if len(token) >= _MIN_SECRET_LEN:
            self._tokens_sent.add(token)  # a refreshed token is masked in messages too
        return {**auth(token), **(headers or {})}

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        data: bytes | str | None,
        headers: Mapping[str, str] | None,
        expect_json: bool,
        timeout: tuple[float, float] | None,
        retry_after_hint: RetryAfterHint | None,
        cost: float,
    ) -> HttpResult:
        if self._gate is not None and cost > 0:
            self._gate(cost)
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                json=json,
                data=data,
                headers=dict(headers) if headers else None,
                timeout=timeout or self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            refused = classify_exception(exc, redactor=self.redact)
            elapsed = (time.monotonic() - started) * 1000
            self._log(method, url, None, elapsed, refused)
            return HttpResult(status=None, elapsed_ms=elapsed, error=refused)

        elapsed = (time.monotonic() - started) * 1000
        body = response.content
        parsed, error = classify_response(
            response.status_code,
            body,
            response.headers,
            expect_json=expect_json,
            redactor=self.redact,
        )
        result = HttpResult(
            status=response.status_code,
            data=parsed,
            body=body,
            headers=response.headers,
            elapsed_ms=elapsed,
            error=error,
        )
        if (
            error is not None
            and error.kind is FailureKind.RETRYABLE
            and error.retry_after is None
            and retry_after_hint is not None
        ):
            error.retry_after = retry_after_hint(result)
        self._log(method, response.url or url, response.status_code, elapsed, error)
        return result

    def get(self, url: str, **kwargs: Any) -> HttpResult:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> HttpResult:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> HttpResult:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> HttpResult:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> HttpResult:
        return self.request("DELETE", url, **kwargs)

    def _log(
        self,
        method: str,
        url: str,
        status: int | None,
        elapsed_ms: float,
        error: ConnectorError | None,
    ) -> None:
        # Headers are never logged; the URL and message are redacted.
        safe_url = self.redact(url)
        if error is None:
            logger.debug("%s %s -> %s in %.0f ms", method, safe_url, status, elapsed_ms)
            return
        logger.warning(
            "%s %s -> %s in %.0f ms: %s %s: %s",
            method,
            safe_url,
            status if status is not None else "no response",
            elapsed_ms,
            error.kind.value,
            error.code,
            error.message,
        )


def _token_refused(result: HttpResult) -> bool:
    """The API refused the access token: 401, or SP-API's 403 ``Unauthorized``
    (Amazon answers an expired or revoked token with 403, not 401)."""
    if result.error is None or result.error.kind is not FailureKind.AUTH:
        return False
    return result.status == 401 or result.error.code == "Unauthorized"


# --------------------------------------------------------------------------- pacing


class TokenBucket:
    """Client-side pacing: ``rate`` tokens per second, at most ``burst`` saved.

    Thread-safe. ``rate <= 0`` disables pacing (tests and raised sandbox limits).
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()
        self._lock = threading.Lock()

    def acquire(self, tokens: float = 1.0) -> float:
        """Take ``tokens``, sleeping until they are available; returns seconds waited."""
        if self.rate <= 0:
            return 0.0
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                # The tolerance stops float dust (0.9999999) from spinning on
                # ever-smaller waits that a coarse or fake clock never covers.
                if self._tokens + _TOKEN_EPSILON >= tokens:
                    self._tokens = max(0.0, self._tokens - tokens)
                    return waited
                wait = (tokens - self._tokens) / self.rate
            self._sleep(wait)
            waited += wait

    def drain(self) -> None:
        """Empty the bucket (after the server said 429: our estimate was too generous)."""
        with self._lock:
            self._tokens = 0.0
            self._updated = self._clock()


# --------------------------------------------------------------------------- paging


PAGE_CURSOR_PREFIX = "page:"


def encode_page_cursor(state: Mapping[str, Any]) -> str:
    """An opaque cursor for "the next page of this poll" (URL-safe base64 JSON).

    A poll's first cursor is the stored high-water mark (an ISO timestamp) and
    is passed as-is; page cursors carry what the platform needs to continue
    (offset or token) plus the running high-water mark across pages.
    """
    raw = jsonlib.dumps(dict(state), separators=(",", ":"), sort_keys=True).encode()
    return PAGE_CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_cursor(cursor: str) -> dict[str, Any] | None:
    """The state of a page cursor, or None when ``cursor`` is not one (a timestamp)."""
    if not cursor.startswith(PAGE_CURSOR_PREFIX):
        return None
    encoded = cursor[len(PAGE_CURSOR_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        state = jsonlib.loads(raw)
    except ValueError as exc:
        raise PermanentError(f"unreadable page cursor {cursor[:40]!r}", code="bad_cursor") from exc
    if not isinstance(state, dict):
        raise PermanentError(f"unreadable page cursor {cursor[:40]!r}", code="bad_cursor")
    return state


def parse_timestamp(value: str) -> datetime:
    """ISO-8601 from a platform or a stored cursor (``Z`` or offset; naive = UTC)."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise PermanentError(f"not an ISO timestamp: {value[:40]!r}", code="bad_timestamp") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_timestamp(value: datetime, *, millis: bool = False) -> str:
    """UTC ISO-8601 with a ``Z`` suffix (eBay wants milliseconds, Amazon seconds)."""
    value = value.astimezone(UTC)
    if millis:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def header(headers: Mapping[str, str], name: str) -> str:
    """A header's value by case-insensitive name ("" when absent)."""
    wanted = name.lower()
    if isinstance(headers, dict) and wanted in headers:  # names already folded
        return headers[wanted]
    return next((v for k, v in headers.items() if k.lower() == wanted), "")
