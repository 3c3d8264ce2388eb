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
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import NamedTuple, Protocol

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..models import ChannelSyncState, OperationBucket


class Turn(NamedTuple):
    taken: bool
    # taken: the seconds to wait before the call may go out; not taken: the seconds
    # until the queue ahead is short enough to join.
    wait: float


class RateLimiter(Protocol):
    def take(
        self, channel_id: int, *, rate: float, burst: float, tokens: float = 1.0, scope: str = ""
    ) -> float:
        """Take ``tokens``; returns the seconds to wait before the call may go out.

        ``rate``/``burst`` are the configured figures, used until :meth:`settle`
        stored the platform's own. ``scope``: an operation's own bucket ("" = the
        channel's)."""
        ...

    def take_unless_queued(
        self,
        channel_id: int,
        *,
        rate: float,
        burst: float,
        max_queue: float,
        tokens: float = 1.0,
        scope: str = "",
    ) -> Turn:
        """:meth:`take`, but only while at most ``max_queue`` seconds of calls are
        queued ahead; otherwise take nothing and say how long until they are."""
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
    level, turn = _turn_in_bucket(
        level, updated, now, rate=rate, burst=burst, tokens=tokens, max_queue=None
    )
    return level, turn.wait


def _turn_in_bucket(
    level: float,
    updated: float | None,
    now: float,
    *,
    rate: float,
    burst: float,
    tokens: float,
    max_queue: float | None,
) -> tuple[float, Turn]:
    """(new level, turn) for one take, refused while more than ``max_queue`` seconds
    of debt are queued ahead (None: never refused)."""
    level = _refill(level, updated, now, rate=rate, burst=burst)
    ahead = -level / rate if level < 0 else 0.0
    if max_queue is not None and ahead > max_queue:
        return level, Turn(False, ahead - max_queue)
    level -= tokens
    return level, Turn(True, -level / rate if level < 0 else 0.0)


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


class _TakesInTurn(ABC):
    """``take`` and ``take_unless_queued`` of both limiters: one ``_turn`` each."""

    def take(
        self, channel_id: int, *, rate: float, burst: float, tokens: float = 1.0, scope: str = ""
    ) -> float:
        return self._turn(channel_id, rate, burst, tokens, scope, max_queue=None).wait

    def take_unless_queued(
        self,
        channel_id: int,
        *,
        rate: float,
        burst: float,
        max_queue: float,
        tokens: float = 1.0,
        scope: str = "",
    ) -> Turn:
        return self._turn(channel_id, rate, burst, tokens, scope, max_queue=max_queue)

    @abstractmethod
    def _turn(
        self,
        channel_id: int,
        rate: float,
        burst: float,
        tokens: float,
        scope: str,
        *,
        max_queue: float | None,
    ) -> Turn:
        """One take in the limiter's store (None: never refused)."""


class DatabaseRateLimiter(_TakesInTurn):
    def _turn(
        self,
        channel_id: int,
        rate: float,
        burst: float,
        tokens: float,
        scope: str,
        *,
        max_queue: float | None,
    ) -> Turn:
        with _locked_bucket(channel_id, scope) as row:
            now = timezone.now()
            own_rate, own_burst = _platform_figures(row)
            level, turn = _turn_in_bucket(
                row.tokens,
                row.tokens_at.timestamp() if row.tokens_at else None,
                now.timestamp(),
                rate=own_rate or rate,
                burst=own_burst or burst,
                tokens=tokens,
                max_queue=max_queue,
            )
            row.tokens, row.tokens_at = level, now
            row.save(update_fields=["tokens", "tokens_at"])
            return turn

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
# KEYS[1] bucket; ARGV rate, burst, tokens (rate/burst: unless the bucket has its own),
# max_queue ('' = always take). Returns {1, wait} when taken, {0, seconds until the
# queue ahead is down to max_queue} when not.
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
local max_queue = tonumber(ARGV[4])
if max_queue ~= nil and level < 0 and -level / rate > max_queue then
  return {0, tostring(-level / rate - max_queue)}
end
level = level - want
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
if level < 0 then
  return {1, tostring(-level / rate)}
end
return {1, '0'}
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


class RedisRateLimiter(_TakesInTurn):
    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._take = self._client.register_script(_REDIS_TAKE)
        self._settle = self._client.register_script(_REDIS_SETTLE)

    def _turn(
        self,
        channel_id: int,
        rate: float,
        burst: float,
        tokens: float,
        scope: str,
        *,
        max_queue: float | None,
    ) -> Turn:
        said = "" if max_queue is None else max_queue  # '' = always take
        taken, wait = self._take(keys=[_key(channel_id, scope)], args=[rate, burst, tokens, said])
        return Turn(bool(int(taken)), float(wait))

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


# Set while a push run sends urgent work (a zero, low stock, a person's "push now").
_URGENT_CALLS: ContextVar[bool] = ContextVar("pimsync_urgent_calls", default=False)


@contextmanager
def urgent_calls() -> Iterator[None]:
    """Calls made inside go before queued routine calls of the same channel."""
    reset = _URGENT_CALLS.set(True)
    try:
        yield
    finally:
        _URGENT_CALLS.reset(reset)


def take_in_turn(
    channel_id: int,
    *,
    rate: float,
    burst: float,
    tokens: float = 1.0,
    scope: str = "",
    sleep: Callable[[float], object] = time.sleep,
    max_yield: float | None = None,
) -> float:
    """Take ``tokens``; returns the seconds still to wait before they may be used.

    Urgent calls always join the queue. A routine call joins it only while at most
    PIMSYNC_RATE_LIMIT_QUEUE_SECONDS of calls are queued ahead of it, and otherwise
    sleeps until the queue is that short. Without this, every run of a channel
    (several workers, one shared bucket) queues its whole batch in the bucket's debt
    and a zero sold a moment later waits behind all of it. Routine calls yield for
    at most ``max_yield`` seconds in all (default: the push time budget), then queue
    like any other, so they are late, never starved.
    """
    limiter = rate_limiter()
    if _URGENT_CALLS.get():
        return limiter.take(channel_id, rate=rate, burst=burst, tokens=tokens, scope=scope)
    queue = float(settings.PIMSYNC_RATE_LIMIT_QUEUE_SECONDS)
    yield_left = settings.PIMSYNC_PUSH_TIME_BUDGET_SECONDS if max_yield is None else max_yield
    while yield_left > 0:
        turn = limiter.take_unless_queued(
            channel_id, rate=rate, burst=burst, tokens=tokens, scope=scope, max_queue=queue
        )
        if turn.taken:
            return turn.wait
        pause = min(turn.wait, yield_left)
        sleep(pause)
        yield_left -= pause
    return limiter.take(channel_id, rate=rate, burst=burst, tokens=tokens, scope=scope)


def rate_limit_wait(
    channel_id: int,
    *,
    rate: float,
    burst: float | None = None,
    tokens: float = 1.0,
    sleep: Callable[[float], object] = time.sleep,
) -> float:
    """Take tokens (urgent calls first, see :func:`take_in_turn`) and sleep until
    they may be used; returns the seconds slept waiting in the queue."""
    wait = take_in_turn(
        channel_id,
        rate=rate,
        burst=burst if burst is not None else max(1.0, rate),
        tokens=tokens,
        sleep=sleep,
    )
    if wait > 0:
        sleep(wait)
    return wait
