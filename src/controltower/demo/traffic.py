"""Background traffic for the demo: a steady request rate so canary analysis has data."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

import httpx

from controltower.clock import system_clock


@dataclass
class TrafficTotals:
    requests: int = 0
    failed: int = 0
    by_status: Counter[str] = field(default_factory=Counter)


class Traffic:
    """GETs ``paths`` in turn at ``rate`` requests per second on a thread, until stopped.

    A request fails when it gets a 5xx or no answer. The schedule is fixed in
    advance (request n is due at start + n / rate), so a slow answer delays the
    next request but never lowers the rate the service is asked to bear.
    """

    def __init__(self, base_url: str, paths: list[str], *, rate: float = 40.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.paths = paths
        self.rate = rate
        self.totals = TrafficTotals()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, workers: int = 4) -> Traffic:
        for index in range(workers):
            thread = threading.Thread(target=self._run, args=(index, workers), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self, index: int, workers: int) -> None:
        interval = workers / self.rate
        due = system_clock.monotonic() + index / self.rate
        n = index
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            while not self._stop.is_set():
                delay = due - system_clock.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                path = self.paths[n % len(self.paths)]
                client.cookies.clear()  # a new visitor each time: split by weight, not by cookie
                try:
                    status = str(client.get(path).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                self._count(status)
                n += workers
                due += interval

    def _count(self, status: str) -> None:
        with self._lock:
            self.totals.requests += 1
            self.totals.by_status[status] += 1
            if not status.isdigit() or status.startswith("5"):
                self.totals.failed += 1

    def snapshot(self) -> TrafficTotals:
        with self._lock:
            return TrafficTotals(
                self.totals.requests, self.totals.failed, Counter(self.totals.by_status)
            )

    def stop(self) -> TrafficTotals:
        self._stop.set()
        for thread in self._threads:
            thread.join(6)
        return self.snapshot()
