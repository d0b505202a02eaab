"""The bounded in-process queue between the ingestion endpoints and the writer."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from controltower.ingest.event import ParsedEvent


class IngestBuffer:
    """Events accepted but not yet stored. ``offer`` refuses rather than grow past capacity."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("an ingest buffer needs a capacity of at least 1")
        self.capacity = capacity
        self._events: deque[ParsedEvent] = deque()
        self._wake = asyncio.Event()
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
        self._wake.set()
        return True

    def take(self, limit: int) -> list[ParsedEvent]:
        batch: list[ParsedEvent] = []
        while self._events and len(batch) < limit:
            batch.append(self._events.popleft())
        if not self._events:
            self._wake.clear()
        return batch

    def put_back(self, events: list[ParsedEvent]) -> None:
        """Return a batch that could not be written, ahead of everything else."""
        self._events.extendleft(reversed(events))
        self._wake.set()

    async def wait(self, timeout: float) -> None:
        """Until something is queued or ``timeout`` seconds pass."""
        if self._events:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
