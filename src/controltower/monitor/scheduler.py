"""The scheduler: each monitor on its own fixed beat, whatever its checks cost.

Due times live on the event loop's timer heap (``loop.call_at``): a monitor's
next check is due one interval after the previous *due time*, not after the
check ends, so a slow check neither shifts its own beat nor delays any other.
A check still running when its next one is due skips that beat (counted in
``skipped``) rather than piling up. A semaphore bounds how many checks run at
once. ``drift`` records how late each check started against its due time.
"""

from __future__ import annotations

import asyncio
import contextvars
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


def jitter_offset(name: str, interval: float) -> float:
    """A stable offset in [0, interval) so monitors do not all fire on the same tick."""
    return (zlib.crc32(name.encode()) % 10_000) / 10_000 * interval


@dataclass
class _Entry:
    key: int
    interval: float
    due: float
    handle: asyncio.TimerHandle | None = None
    running: bool = False


@dataclass
class Scheduler:
    run: Callable[[int, float], Awaitable[None]]
    concurrency: int = 200
    drift: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))
    started: int = 0
    skipped: int = 0
    _entries: dict[int, _Entry] = field(default_factory=dict)
    _semaphore: asyncio.Semaphore | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _context: contextvars.Context = field(default_factory=contextvars.copy_context)

    def __post_init__(self) -> None:
        self._semaphore = asyncio.Semaphore(self.concurrency)

    def keys(self) -> set[int]:
        return set(self._entries)

    def add(self, key: int, interval: float, first_due: float) -> None:
        """Schedule ``key`` every ``interval`` seconds, first at loop time ``first_due``."""
        if key in self._entries:
            return
        loop = asyncio.get_running_loop()
        entry = _Entry(key, interval, first_due)
        self._entries[key] = entry
        entry.handle = loop.call_at(first_due, self._fire, entry, context=self._context)

    def remove(self, key: int) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None and entry.handle is not None:
            entry.handle.cancel()

    def _fire(self, entry: _Entry) -> None:
        loop = asyncio.get_running_loop()
        due = entry.due
        entry.due = due + entry.interval
        now = loop.time()
        while entry.due <= now:
            entry.due += entry.interval
        entry.handle = loop.call_at(entry.due, self._fire, entry, context=self._context)
        if entry.running:
            self.skipped += 1
            return
        entry.running = True
        # Only tasks in flight are referenced, so a finished check leaves nothing
        # behind for the garbage collector to walk.
        task = loop.create_task(self._start(entry, due))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start(self, entry: _Entry, due: float) -> None:
        assert self._semaphore is not None
        try:
            async with self._semaphore:
                loop = asyncio.get_running_loop()
                self.drift.append(loop.time() - due)
                self.started += 1
                await self.run(entry.key, due)
        finally:
            entry.running = False

    async def stop(self) -> None:
        for key in list(self._entries):
            self.remove(key)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]
