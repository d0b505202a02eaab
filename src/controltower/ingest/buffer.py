"""The bounded in-process queue between the ingestion endpoints and the writer."""

from __future__ import annotations

import asyncio
from collections import deque

from controltower.ingest.event import ParsedEvent


class IngestBuffer:
    """Events accepted but not yet stored. ``offer`` refuses rather than grow past capacity."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("an ingest buffer needs a capacity of at least 1")
        self.capacity = capacity
        self._events: deque[ParsedEvent] = deque()
        self._ready = asyncio.Event()
        self._want = 0
        self.accepted = 0

    def __len__(self) -> int:
        return len(self._events)

    @property
    def free(self) -> int:
        return self.capacity - len(self._events)

    def offer(self, events: list[ParsedEvent]) -> bool:
        """Queue all of ``events``, or none when they do not fit."""
        if len(events) > self.free:
            return False
        self._events.extend(events)
        self.accepted += len(events)
        self._wake()
        return True

    def take(self, limit: int) -> list[ParsedEvent]:
        batch: list[ParsedEvent] = []
        while self._events and len(batch) < limit:
            batch.append(self._events.popleft())
        return batch

    def put_back(self, events: list[ParsedEvent]) -> None:
        """Return a batch that could not be written, ahead of everything else."""
        self._events.extendleft(reversed(events))
        self._wake()

    def _wake(self) -> None:
        if self._want and len(self._events) >= self._want:
            self._ready.set()

    async def wait_for(
        self, count: int, timeout: float | None, stop: asyncio.Event | None = None
    ) -> None:
        """Until ``count`` events are queued, ``timeout`` seconds pass (None: no limit)
        or ``stop`` is set. Queuing wakes the waiter only once the count is reached."""
        if len(self._events) >= count or (stop is not None and stop.is_set()):
            return
        self._want = count
        self._ready.clear()
        waiters = [asyncio.ensure_future(self._ready.wait())]
        if stop is not None:
            waiters.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._want = 0
            for waiter in waiters:
                waiter.cancel()
