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
        self._grown = asyncio.Event()
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
        self._grown.set()
        return True

    def take(self, limit: int) -> list[ParsedEvent]:
        batch: list[ParsedEvent] = []
        while self._events and len(batch) < limit:
            batch.append(self._events.popleft())
        return batch

    def put_back(self, events: list[ParsedEvent]) -> None:
        """Return a batch that could not be written, ahead of everything else."""
        self._events.extendleft(reversed(events))
        self._grown.set()

    async def wait_for(
        self, count: int, timeout: float | None, stop: asyncio.Event | None = None
    ) -> None:
        """Until ``count`` events are queued, ``timeout`` seconds pass (None: no limit)
        or ``stop`` is set."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while len(self._events) < count and not (stop is not None and stop.is_set()):
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return
            self._grown.clear()
            waiters = [asyncio.ensure_future(self._grown.wait())]
            if stop is not None:
                waiters.append(asyncio.ensure_future(stop.wait()))
            try:
                await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
