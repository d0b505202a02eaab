"""Time comes from here, so tests can move it."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from controltower.typing import Clock


class SystemClock:
    """The real clock: wall time for timestamps, a monotonic clock for intervals."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


system_clock: Clock = SystemClock()


def utcnow() -> datetime:
    return system_clock.now()
