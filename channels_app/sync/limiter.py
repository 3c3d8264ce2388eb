"""A channel's rate limit, shared by every worker on every machine.

Token bucket with debt: a caller always takes its tokens and is told how long
to sleep before using them, so N workers together never exceed the rate and
callers are served in arrival order. Redis in production (one atomic script per
operation), the database row of ChannelSyncState in the embedded default.

Besides the channel's bucket, a platform that limits some operations on their own
(Amazon's usage plans: ``searchOrders`` one call per three minutes after a burst of
20) has a bucket per operation (``scope``), shared by every worker alike: a bucket
in a worker's memory would start full in every process and every new connector.

A bucket counts what its platform counts: calls for most, query-cost points for
Shopify. There a call takes the points it requests before it goes, and
:meth:`RateLimiter.settle` then follows the platform's own account: the points
requested but not charged come back, the level never stays above what the
platform says is left, and the platform's restore rate and bucket size replace
the configured ones for every later take.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Protocol

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..models import ChannelSyncState, OperationBucket


class RateLimiter(Protocol):
    def take(
        self, channel_id: int, *, rate: float, burst: float, tokens: float = 1.0, scope: str = ""
    ) -> float:
        """Take ``tokens``; returns the seconds to wait before the call may go out.

        ``rate``/``burst`` are the configured figures, used until :meth:`settle`
        stored the platform's own. ``scope``: an operation's own bucket ("" = the
        channel's)."""
        ...

    def settle(
        self,
        channel_id: int,
        *,
        rate: float,
        burst: float,
        refund: float = 0.0,
        available: float | None = None,
        scope: str = "",
    ) -> None:
        """After a call: give ``refund`` tokens back (taken, not charged; capped at the
        burst), never keep more than ``available`` (the platform's figure, when it
        gave one), and use ``rate``/``burst`` from now on (the platform's)."""
        ...


def _refill(level: float, updated: float | None, now: float, *, rate: float, burst: float) -> float:
    return burst if updated is None else min(burst, level + max(0.0, now - updated) * rate)


def _take_from_bucket(
    level: float, updated: float | None, now: float, *, rate: float, burst: float, tokens: float
) -> tuple[float, float]:
    """(new level, wait seconds) for one take; level may go negative (debt)."""
    level = _refill(level, updated, now, rate=rate, burst=burst) - tokens
    return level, (-level / rate if level < 0 else 0.0)


def _settle_bucket(
    level: float,
    updated: float | None,
    now: float,
    *,
    rate: float,
    burst: float,
    refund: float,
    available: float | None,
) -> float:
    """The level after a call's account: refund back (capped), capped by ``available``."""
    level = min(burst, _refill(level, updated, now, rate=rate, burst=burst) + max(0.0, refund))
    return level if available is None else min(level, available)


@contextmanager
def _locked_bucket(channel_id: int, scope: str) -> Iterator[ChannelSyncState | OperationBucket]:
    """The bucket's row, locked for the transaction: the channel's own
    (ChannelSyncState) or one operation's (OperationBucket)."""
    if scope:
        OperationBucket.objects.get_or_create(channel_id=channel_id, operation=scope)
        with transaction.atomic():
            yield OperationBucket.objects.select_for_update().get(
                channel_id=channel_id, operation=scope
            )
        return
    ChannelSyncState.objects.get_or_create(channel_id=channel_id)
    with transaction.atomic():
        yield ChannelSyncState.objects.select_for_update().get(channel_id=channel_id)


def _platform_figures(row: ChannelSyncState | OperationBucket) -> tuple[float | None, float | None]:
    """The rate and size the platform reported (only the channel's bucket keeps them)."""
    if isinstance(row, ChannelSyncState):
        return row.bucket_rate, row.bucket_burst
    return None, None


class DatabaseRateLimiter:
    def take(
        self, channel_id: int, *, rate: float, burst: float, tokens: float = 1.0, scope: str = ""
    ) -> float:
        with _locked_bucket(channel_id, scope) as row:
            now = timezone.now()
            own_rate, own_burst = _platform_figures(row)
            level, wait = _take_from_bucket(
                row.tokens,
                row.tokens_at.timestamp() if row.tokens_at else None,
                now.timestamp(),
                rate=own_rate or rate,
                burst=own_burst or burst,
                tokens=tokens,
            )
            row.tokens, row.tokens_at = level, now
            row.save(update_fields=["tokens", "tokens_at"])
            return wait

    def settle(
        self,
        channel_id: int,
        *,
        rate: float,
        burst: float,
        refund: float = 0.0,
        available: float | None = None,
        scope: str = "",
    ) -> None:
        with _locked_bucket(channel_id, scope) as row:
            now = timezone.now()
            own_rate, _ = _platform_figures(row)
            row.tokens = _settle_bucket(
                row.tokens,
                row.tokens_at.timestamp() if row.tokens_at else None,
                now.timestamp(),
                rate=own_rate or rate,
                burst=burst,
                refund=refund,
                available=available,
            )
            row.tokens_at = now
            if isinstance(row, ChannelSyncState):
                row.bucket_rate, row.bucket_burst = rate, burst
                row.save(update_fields=["tokens", "tokens_at", "bucket_rate", "bucket_burst"])
            else:
                row.save(update_fields=["tokens", "tokens_at"])


# Both scripts use the server clock so workers' clocks need not agree. A bucket
# holds level, at and, once settled, the platform's rate and burst.
# KEYS[1] bucket; ARGV rate, burst, tokens (rate/burst: unless the bucket has its own).
_REDIS_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(redis.call('HGET', KEYS[1], 'rate')) or tonumber(ARGV[1])
local burst = tonumber(redis.call('HGET', KEYS[1], 'burst')) or tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local level = tonumber(redis.call('HGET', KEYS[1], 'level'))
local at = tonumber(redis.call('HGET', KEYS[1], 'at'))
if level == nil or at == nil then
  level = burst
else
  level = math.min(burst, level + math.max(0, now - at) * rate)
end
level = level - want
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
if level < 0 then
  return tostring(-level / rate)
end
return '0'
"""

# KEYS[1] bucket; ARGV rate, burst, refund, available ('' = the platform said nothing).
_REDIS_SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local old_rate = tonumber(redis.call('HGET', KEYS[1], 'rate')) or rate
local level = tonumber(redis.call('HGET', KEYS[1], 'level'))
local at = tonumber(redis.call('HGET', KEYS[1], 'at'))
if level == nil or at == nil then
  level = burst
else
  level = math.min(burst, level + math.max(0, now - at) * old_rate)
end
level = math.min(burst, level + math.max(0, tonumber(ARGV[3])))
local available = tonumber(ARGV[4])
if available ~= nil then
  level = math.min(level, available)
end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(now),
           'rate', tostring(rate), 'burst', tostring(burst))
redis.call('EXPIRE', KEYS[1], 3600)
return tostring(level)
"""


class RedisRateLimiter:
    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._take = self._client.register_script(_REDIS_TAKE)
        self._settle = self._client.register_script(_REDIS_SETTLE)

    def take(
        self, channel_id: int, *, rate: float, burst: float, tokens: float = 1.0, scope: str = ""
    ) -> float:
        result = self._take(keys=[_key(channel_id, scope)], args=[rate, burst, tokens])
        return float(result)

    def settle(
        self,
        channel_id: int,
        *,
        rate: float,
        burst: float,
        refund: float = 0.0,
        available: float | None = None,
        scope: str = "",
    ) -> None:
        said = "" if available is None else available
        self._settle(keys=[_key(channel_id, scope)], args=[rate, burst, refund, said])


def _key(channel_id: int, scope: str = "") -> str:
    return f"pimsync:ratelimit:{channel_id}" + (f":{scope}" if scope else "")


@lru_cache(maxsize=1)
def _limiter_for(url: str) -> RateLimiter:
    return RedisRateLimiter(url) if url else DatabaseRateLimiter()


def rate_limiter() -> RateLimiter:
    return _limiter_for(settings.PIMSYNC_RATE_LIMIT_REDIS_URL)


def rate_limit_wait(
    channel_id: int,
    *,
    rate: float,
    burst: float | None = None,
    tokens: float = 1.0,
    sleep: Callable[[float], object] = time.sleep,
) -> float:
    """Take tokens and sleep until they may be used; returns the seconds slept."""
    wait = rate_limiter().take(
        channel_id, rate=rate, burst=burst if burst is not None else max(1.0, rate), tokens=tokens
    )
    if wait > 0:
        sleep(wait)
    return wait
