"""OAuth refresh-token grants: a new access token for eBay and for Amazon (Login with Amazon).

Pure I/O like every connector module; ``channels_app/sync/tokens.py`` decides
when to call it, stores what it returns and locks so one worker refreshes for all.

* eBay (OAuth 2, "Using a refresh token to update a User access token"):
  ``POST {base_url}/identity/v1/oauth2/token`` with ``Authorization: Basic
  base64(client_id:client_secret)`` and the form ``grant_type=refresh_token,
  refresh_token, scope`` (space-separated; the scopes of the original consent or
  a subset). Answer: ``{"access_token", "expires_in": 7200, "token_type": "User
  Access Token"}``. ``platform_config["token_url"]`` overrides the endpoint,
  ``platform_config["oauth_scopes"]`` the scopes (default: sell.inventory and
  sell.fulfillment, what pimsync calls).
* Amazon (Login with Amazon, SP-API "Connect to the SP-API" step 1):
  ``POST https://api.amazon.com/auth/o2/token`` (Europe ``api.amazon.co.uk``, Far
  East ``api.amazon.co.jp``; ``platform_config["token_url"]``) with the form
  ``grant_type=refresh_token, refresh_token, client_id, client_secret``. Answer:
  ``{"access_token": "Atza|…", "refresh_token": "Atzr|…", "token_type": "bearer",
  "expires_in": 3600}``. LWA returns the same refresh token, so it is not stored back.
  A ``token_url`` that is a path (``/auth/o2/token``) is taken on the channel's base
  URL: the local sandbox serves Login with Amazon under its Amazon prefix.

Both refuse a revoked or unknown refresh token with HTTP 400 ``{"error":
"invalid_grant", "error_description": …}`` and wrong client credentials with
``invalid_client`` (RFC 6749 §5.2). Any such refusal is an :class:`AuthError`
whose message says what to do; 429, 5xx and transport failures are retryable.
The token call goes through HttpClient, so it spends from the channel's rate
budget like every other call.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from .base import ChannelConfig
from .errors import AuthError, ConnectorError, FailureKind, RetryableError
from .http import HttpClient, HttpResult

EBAY_TOKEN_PATH = "/identity/v1/oauth2/token"  # noqa: S105 - an endpoint, not a secret
EBAY_SCOPES = (
    "https://api.ebay.com/oauth/api_scope/sell.inventory",
    "https://api.ebay.com/oauth/api_scope/sell.fulfillment",
)
LWA_TOKEN_URL = "https://api.amazon.com/auth/o2/token"  # noqa: S105 - an endpoint
FORM = "application/x-www-form-urlencoded;charset=UTF-8"
REQUIRED = ("client_id", "client_secret", "refresh_token")

# What a person does when the platform refuses the grant, per platform and error.
REMEDIES = {
    ("ebay", "invalid_client"): "Check client_id and client_secret: the App ID and Cert ID "
    "of your application (developer.ebay.com → Application Keys).",
    ("ebay", ""): "Get a new refresh token: developer.ebay.com → Application Keys → User "
    "Tokens → Get a Token from eBay via Your Application, signed in as the selling account "
    "(eBay refresh tokens last 18 months and end when the seller revokes the app). Paste "
    '{"client_id", "client_secret", "refresh_token"} into the channel\'s credentials and '
    "save: the channel resumes.",
    ("amazon", "invalid_client"): "Check client_id and client_secret: the LWA credentials of "
    "your app (Seller Central → Apps and Services → Develop Apps → View).",
    ("amazon", ""): "Authorize the app again (Seller Central → Apps and Services → Develop "
    "Apps → Authorize; the seller may have revoked it) and paste the new refresh token with "
    '{"client_id", "client_secret", "refresh_token"} into the channel\'s credentials, then '
    "save: the channel resumes.",
}
PLATFORM_NAMES = {"ebay": "eBay", "amazon": "Login with Amazon"}


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    expires_in: float  # seconds from the answer
    token_type: str = ""


def uses_refresh_token(credentials: Mapping[str, Any]) -> bool:
    """Credentials that are refreshed (a refresh token), as opposed to a static token."""
    return bool(credentials.get("refresh_token"))


def refresh_access_token(config: ChannelConfig) -> TokenGrant:
    """A new access token from the channel's refresh token (one call to the token
    endpoint, through the rate budget). Raises AuthError when the platform refuses
    the grant (the message says what to do) and RetryableError when it cannot answer."""
    missing = [key for key in REQUIRED if not config.credentials.get(key)]
    if missing:
        raise AuthError(
            f"The credentials lack {', '.join(missing)}: token refresh needs client_id, "
            "client_secret and refresh_token.",
            code="credentials_incomplete",
        )
    grants: dict[str, Callable[[ChannelConfig], HttpResult]] = {
        "ebay": _ebay_request,
        "amazon": _lwa_request,
    }
    request = grants.get(config.platform)
    if request is None:
        raise AuthError(f"{config.platform} has no token refresh", code="unsupported")
    return _grant(config.platform, request(config))


def _ebay_request(config: ChannelConfig) -> HttpResult:
    credentials = config.credentials
    pair = f"{credentials['client_id']}:{credentials['client_secret']}".encode()
    url = _token_url(config, EBAY_TOKEN_PATH)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": credentials["refresh_token"],
        "scope": " ".join(_scopes(config.platform_config.get("oauth_scopes"))),
    }
    return _post_form(
        config, url, form, {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}
    )


def _lwa_request(config: ChannelConfig) -> HttpResult:
    credentials = config.credentials
    url = _token_url(config, LWA_TOKEN_URL)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": credentials["refresh_token"],
        "client_id": credentials["client_id"],
        "client_secret": credentials["client_secret"],
    }
    return _post_form(config, url, form, {})


def _token_url(config: ChannelConfig, default: str) -> str:
    """``platform_config["token_url"]`` or the platform's; a path is on the channel's
    base URL (the local sandbox serves Login with Amazon under its Amazon prefix)."""
    url = str(config.platform_config.get("token_url") or default)
    return config.base_url.rstrip("/") + url if url.startswith("/") else url


def _post_form(
    config: ChannelConfig, url: str, form: Mapping[str, str], headers: Mapping[str, str]
) -> HttpResult:
    http = HttpClient(config, headers={"Content-Type": FORM, **headers})
    try:
        return http.post(url, data=urlencode(form))
    finally:
        http.close()


def _scopes(value: Any) -> list[str]:
    if isinstance(value, str) and value.strip():
        return value.split()
    if isinstance(value, list | tuple) and value:
        return [str(scope) for scope in value]
    return list(EBAY_SCOPES)


def _grant(platform: str, result: HttpResult) -> TokenGrant:
    if result.error is not None:
        raise _refusal(platform, result, result.error)
    data = result.data if isinstance(result.data, Mapping) else {}
    token = data.get("access_token")
    try:
        expires_in = float(data.get("expires_in") or 0)
    except (TypeError, ValueError):
        expires_in = 0.0
    if not isinstance(token, str) or not token or expires_in <= 0:
        raise RetryableError(
            f"{PLATFORM_NAMES[platform]} answered the token request without a token",
            code="bad_token_response",
            status=result.status,
        )
    return TokenGrant(token, expires_in, str(data.get("token_type", "")))


def _refusal(platform: str, result: HttpResult, error: ConnectorError) -> ConnectorError:
    if error.kind is FailureKind.RETRYABLE or result.status is None:
        return error
    data = result.data if isinstance(result.data, Mapping) else {}
    code = str(data.get("error") or error.code or result.status)
    description = str(data.get("error_description") or error.message)
    remedy = REMEDIES.get((platform, code)) or REMEDIES[(platform, "")]
    return AuthError(
        f"{PLATFORM_NAMES[platform]} refused the token refresh ({code}: {description}). {remedy}",
        code=code,
        status=result.status,
    )
