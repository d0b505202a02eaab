"""Per-project rate limits: a token bucket refilled at ``rate_limit`` events per minute."""

from __future__ import annotations

import math
from dataclasses import dataclass

from controltower.clock import system_clock
from controltower.typing import Clock


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``allow(key, per_minute, n)`` -> 0 when allowed, else seconds to wait."""

    def __init__(self, clock: Clock = system_clock) -> None:
        self._clock = clock
        self._buckets: dict[int, _Bucket] = {}

    def allow(self, key: int, per_minute: int, count: int = 1) -> int:
        now = self._clock.monotonic()
        rate = per_minute / 60.0
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(per_minute), now)
        bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= count:
            bucket.tokens -= count
            return 0
        return max(1, math.ceil((count - bucket.tokens) / rate))
