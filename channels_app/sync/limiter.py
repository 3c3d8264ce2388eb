"""A channel's rate limit, shared by every worker on every machine.

Token bucket with debt: a caller always takes its tokens and is told how long
to sleep before using them, so N workers together never exceed the rate and
callers are served in arrival order. Redis in production (one atomic script),
the database row of ChannelSyncState in the embedded default.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache
from typing import Protocol

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..models import ChannelSyncState


class RateLimiter(Protocol):
    def take(self, channel_id: int, *, rate: float, burst: float, tokens: float = 1.0) -> float:
        """Take ``tokens``; returns the seconds to wait before the call may go out."""
        ...


def _take_from_bucket(
    level: float, updated: float | None, now: float, *, rate: float, burst: float, tokens: float
) -> tuple[float, float]:
    """(new level, wait seconds) for one take; level may go negative (debt)."""
    level = burst if updated is None else min(burst, level + max(0.0, now - updated) * rate)
    level -= tokens
    return level, (-level / rate if level < 0 else 0.0)


class DatabaseRateLimiter:
    def take(self, channel_id: int, *, rate: float, burst: float, tokens: float = 1.0) -> float:
        ChannelSyncState.objects.get_or_create(channel_id=channel_id)
        with transaction.atomic():
            state = ChannelSyncState.objects.select_for_update().get(channel_id=channel_id)
            now = timezone.now()
            updated = state.tokens_at.timestamp() if state.tokens_at else None
            level, wait = _take_from_bucket(
                state.tokens, updated, now.timestamp(), rate=rate, burst=burst, tokens=tokens
            )
            state.tokens, state.tokens_at = level, now
            state.save(update_fields=["tokens", "tokens_at"])
            return wait


# KEYS[1] bucket; ARGV rate, burst, tokens. Uses the server clock so workers'
# clocks need not agree.
_REDIS_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
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


class RedisRateLimiter:
    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._client.register_script(_REDIS_TAKE)

    def take(self, channel_id: int, *, rate: float, burst: float, tokens: float = 1.0) -> float:
        result = self._script(keys=[f"pimsync:ratelimit:{channel_id}"], args=[rate, burst, tokens])
        return float(result)


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
