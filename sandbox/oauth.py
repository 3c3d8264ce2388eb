"""Expiring OAuth access tokens, as eBay's and Login with Amazon's token endpoints issue them.

A platform that refreshes tokens (``ebay.py``, ``amazon.py``) holds one
:class:`TokenIssuer` and serves its token endpoint with it:

* eBay ``POST /ebay/identity/v1/oauth2/token`` (the real host is the API host,
  so the path is the real one under the platform prefix);
* Login with Amazon ``POST /amazon/auth/o2/token`` (the real host is
  ``api.amazon.com``, not the SP-API host: a channel points ``platform_config
  ["token_url"]`` here).

Both take the refresh-token grant in the platform's shape (form body, validated
against sandbox/contracts/ like every other operation) and answer a new access
token valid for ``ttl`` seconds on the platform's clock (``/_control/tokens``
sets it; the defaults are the platforms' two hours and one hour). An API call
with an expired or unknown issued token is refused with the platform's
401/403; the platform's static ``credentials["access_token"]`` keeps working
and never expires (tests and channels configured with a static token). A
refresh token revoked through ``/_control/tokens`` makes the grant fail with
``invalid_grant``; wrong client credentials fail with ``invalid_client`` (RFC
6749 §5.2 shapes: ``{"error", "error_description"}``). Issued tokens live in
memory only: after a restart the sandbox refuses them and pimsync refreshes.
"""

from __future__ import annotations

import secrets
import threading
import time
from urllib.parse import parse_qs

from .clock import Clock
from .http import JsonDict, Request, Response

# How long an expired token is still told apart from one never issued (for the counts).
REMEMBER_EXPIRED_SECONDS = 600.0


class TokenIssuer:
    """Access tokens issued by one platform's token endpoint, each with its expiry."""

    def __init__(self, *, prefix: str, ttl: float, clock: Clock = time.monotonic) -> None:
        self.prefix = prefix
        self.default_ttl = float(ttl)
        self.ttl = float(ttl)
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}
        self.revoked: set[str] = set()
        self.grants = 0
        self.refused_grants = 0
        self.expired_refusals = 0  # API calls refused because their issued token had expired

    def issue(self) -> tuple[str, int]:
        """A new token and its lifetime in whole seconds (what ``expires_in`` says)."""
        now = self._clock()
        token = self.prefix + secrets.token_urlsafe(24)
        with self._lock:
            self.grants += 1
            self._expiry[token] = now + self.ttl
            forget = now - REMEMBER_EXPIRED_SECONDS
            self._expiry = {t: at for t, at in self._expiry.items() if at > forget}
        return token, max(1, round(self.ttl))

    def accepts(self, token: str) -> bool:
        """Issued here and not expired; counts an expired one's refusal."""
        with self._lock:
            expiry = self._expiry.get(token)
            if expiry is None:
                return False
            if self._clock() < expiry:
                return True
            self.expired_refusals += 1
            return False

    def expire_all(self) -> None:
        now = self._clock()
        with self._lock:
            self._expiry = {token: min(at, now) for token, at in self._expiry.items()}

    def reset(self) -> None:
        with self._lock:
            self._expiry.clear()
            self.revoked.clear()
            self.ttl = self.default_ttl
            self.grants = self.refused_grants = self.expired_refusals = 0

    def describe(self) -> JsonDict:
        now = self._clock()
        with self._lock:
            return {
                "ttl": self.ttl,
                "live": sum(1 for at in self._expiry.values() if at > now),
                "grants": self.grants,
                "refused_grants": self.refused_grants,
                "expired_refusals": self.expired_refusals,
                "revoked_refresh_tokens": len(self.revoked),
            }

    def configure(self, spec: JsonDict, refresh_token: str) -> None:
        """``{"ttl": s, "revoke": true, "restore": true, "expire": true}`` (control API)."""
        if "ttl" in spec:
            ttl = float(spec["ttl"])
            if ttl <= 0:
                raise ValueError("ttl must be positive")
            self.ttl = ttl
        if spec.get("revoke"):
            self.revoked.add(refresh_token)
        if spec.get("restore"):
            self.revoked.discard(refresh_token)
        if spec.get("expire"):
            self.expire_all()

    def refuse_grant(self, status: int, error: str, description: str) -> Response:
        with self._lock:
            self.refused_grants += 1
        return oauth_error(status, error, description)


def oauth_error(status: int, error: str, description: str) -> Response:
    """RFC 6749 §5.2: what both token endpoints answer when they refuse a grant."""
    return Response.json(status, {"error": error, "error_description": description})


def form(request: Request) -> dict[str, str]:
    """The request's form body (one value per name; validated against the contract first)."""
    parsed = parse_qs(request.body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in parsed.items()}
