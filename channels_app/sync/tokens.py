"""OAuth access tokens of the channels that refresh them (eBay, Amazon).

A channel whose credentials hold ``client_id``, ``client_secret`` and
``refresh_token`` gets a :class:`TokenProvider` from ``connection.channel_config``;
its ``current`` and ``rejected`` are the connector's ``access_token`` and
``on_unauthorized`` (ChannelConfig). What callers may rely on:

* **Ahead of expiry.** A token is refreshed ``PIMSYNC_TOKEN_REFRESH_AHEAD_SECONDS``
  (300) before it expires, at most a quarter of its lifetime ahead (a 60-second
  token 15 s before): no call goes out with a token about to lapse.
* **Once for all workers.** The refresh happens under the row lock of the
  channel's :class:`ChannelToken` (``select_for_update``; on SQLite the
  IMMEDIATE transaction) and re-checks under it: a worker that waited for the lock
  finds the token another worker just stored and uses it.
* **Stored encrypted with its expiry** (``ChannelToken.access_token`` is an
  EncryptedTextField); a worker process keeps it in memory until it is due, so a
  call costs no database read.
* **A refused token** (the API answered 401 / SP-API 403 Unauthorized) is
  replaced once: by the token another worker stored meanwhile, or by a refresh;
  the connector retries that call once (a second refusal is the call's answer:
  credentials the platform refuses whatever the token, e.g. a missing role).
* **A refused refresh** (``invalid_grant``: revoked or expired refresh token;
  ``invalid_client``) pauses the channel like any auth failure
  (``ChannelSyncState.auth_failed_at`` and a critical ``auth_failed`` alert whose
  message says what to do) and is not retried until the credentials change or the
  channel is resumed. A token endpoint that cannot answer (5xx, timeout) is
  retryable: the current token is used while it lasts.
* The token call spends from the channel's rate budget (it goes through the
  connector's HttpClient with the channel's rate gate).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from synclog import services as synclog

from ..connectors.base import ChannelConfig
from ..connectors.errors import AuthError, RetryableError
from ..connectors.oauth import TokenGrant, refresh_access_token
from ..models import ChannelSyncState, ChannelToken

log = logging.getLogger(__name__)

# While the token endpoint cannot answer, a still-valid token is used and the
# refresh tried again after this long.
RETRY_REFRESH_SECONDS = 5.0
Refresher = Callable[[ChannelConfig], TokenGrant]


def credentials_digest(credentials: Mapping[str, Any]) -> str:
    """Which grant a stored token belongs to (client id + refresh token), unreadable."""
    raw = f"{credentials.get('client_id', '')}\n{credentials.get('refresh_token', '')}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _ahead(row: ChannelToken) -> timedelta:
    """How long before expiry the token is refreshed."""
    ahead = timedelta(seconds=settings.PIMSYNC_TOKEN_REFRESH_AHEAD_SECONDS)
    if row.expires_at is None or row.refreshed_at is None:
        return ahead
    return min(ahead, (row.expires_at - row.refreshed_at) / 4)


def _refresh_due(row: ChannelToken) -> datetime | None:
    return None if row.expires_at is None else row.expires_at - _ahead(row)


class TokenProvider:
    """The access token of one channel for one connector (see the module docstring)."""

    def __init__(
        self,
        *,
        channel_id: int,
        config: ChannelConfig,
        refresher: Refresher = refresh_access_token,
        clock: Callable[[], datetime] = timezone.now,
    ) -> None:
        self.channel_id = channel_id
        self.config = config
        self.digest = credentials_digest(config.credentials)
        self._refresher = refresher
        self._clock = clock
        self._token = ""
        self._due: datetime | None = None

    def current(self) -> str:
        """A valid access token (refreshing it when due). Raises AuthError when the
        refresh was refused, RetryableError when none can be had right now."""
        now = self._clock()
        if self._token and self._due is not None and now < self._due:
            return self._token
        row = ChannelToken.objects.filter(channel_id=self.channel_id).first()
        if row is not None and self._usable(row, now):
            return self._keep(row)
        return self._refresh(rejected=None)

    def rejected(self, token: str) -> str:
        """The API refused ``token``: the token to retry the call with (the one another
        worker stored meanwhile, else a new one). Raises like :meth:`current`."""
        self._token, self._due = "", None
        return self._refresh(rejected=token)

    # --- under the lock

    def _refresh(self, *, rejected: str | None) -> str:
        with transaction.atomic():
            ChannelToken.objects.get_or_create(channel_id=self.channel_id)
            row = ChannelToken.objects.select_for_update().get(channel_id=self.channel_id)
            now = self._clock()
            if self._refused_before(row):
                raise AuthError(row.last_error, code="refresh_refused")
            if self._usable(row, now) and row.access_token != rejected:
                return self._keep(row)  # another worker refreshed while we waited
            try:
                grant = self._refresher(self.config)
            except RetryableError:
                if rejected is None and self._valid(row, now):
                    return self._meanwhile(row, now)
                raise
            except AuthError as exc:
                refused = exc
                self._record_refusal(row, exc, now)
            else:
                return self._keep(self._store(row, grant, now))
        # Outside the row's transaction: the refusal is recorded whatever the caller does.
        channel_token_refused(channel_id=self.channel_id, error=refused, now=now)
        raise refused

    def _usable(self, row: ChannelToken, now: datetime) -> bool:
        due = _refresh_due(row)
        return (
            bool(row.access_token)
            and row.credentials_digest == self.digest
            and row.failed_at is None
            and due is not None
            and now < due
        )

    def _valid(self, row: ChannelToken, now: datetime) -> bool:
        return (
            bool(row.access_token)
            and row.credentials_digest == self.digest
            and row.expires_at is not None
            and now < row.expires_at
        )

    def _meanwhile(self, row: ChannelToken, now: datetime) -> str:
        """The token endpoint could not answer: use the token while it is valid and
        try the refresh again shortly."""
        log.warning("channel %s: token refresh failed, the token is still valid", self.channel_id)
        self._token = row.access_token
        self._due = min(row.expires_at or now, now + timedelta(seconds=RETRY_REFRESH_SECONDS))
        return row.access_token

    def _refused_before(self, row: ChannelToken) -> bool:
        return row.failed_at is not None and row.credentials_digest == self.digest

    def _keep(self, row: ChannelToken) -> str:
        self._token, self._due = row.access_token, _refresh_due(row)
        return row.access_token

    def _store(self, row: ChannelToken, grant: TokenGrant, now: datetime) -> ChannelToken:
        row.access_token = grant.access_token
        row.refreshed_at = now
        row.expires_at = now + timedelta(seconds=grant.expires_in)
        row.refresh_count += 1
        row.credentials_digest = self.digest
        row.failed_at, row.last_error = None, ""
        row.save()
        log.info("channel %s: access token refreshed, expires %s", self.channel_id, row.expires_at)
        return row

    def _record_refusal(self, row: ChannelToken, error: AuthError, now: datetime) -> None:
        row.access_token, row.expires_at = "", None
        row.credentials_digest = self.digest
        row.failed_at, row.last_error = now, error.message[:2000]
        row.save()


def channel_token_refused(*, channel_id: int, error: AuthError, now: datetime) -> None:
    """The platform refused the refresh: pause the channel (the existing auth pause)
    and raise the auth alert with what to do. Idempotent (a repeat is counted)."""
    message = error.message[:2000]
    ChannelSyncState.objects.get_or_create(channel_id=channel_id)
    ChannelSyncState.objects.filter(channel_id=channel_id).update(
        auth_failed_at=now, auth_error=message
    )
    synclog.alert_raise(
        kind="auth_failed",
        channel_id=channel_id,
        severity="critical",
        message=f"Access token refresh refused; pushes are paused. {message}",
        now=now,
    )


def channel_token_reset(*, channel_id: int) -> None:
    """Forget a refused refresh (the channel is resumed): the next call tries again."""
    ChannelToken.objects.filter(channel_id=channel_id).update(failed_at=None, last_error="")
