"""Synthetic traffic for the analysis: ``[deploy.analysis] traffic`` scenarios sent to the new release.

A low-traffic app gives the analysis too few requests for a verdict. With
``traffic = ["browse"]`` the engine sends those ``[[budgets.scenarios]]`` (the
ones ``tower load`` runs) straight to the new release's instances while a step
is analysed, at a steady rate, and adds what it measured to the new release's
figures: requests, errors (a 5xx, or no answer), latency.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass

import httpx

from controltower.clock import system_clock
from controltower.deploy.drivers.base import TargetMetrics
from controltower.spec.budgets import FlowStepSpec, ScenarioSpec
from controltower.typing import Clock


@dataclass(frozen=True)
class _Sample:
    at: float
    error: bool
    latency: float


class TrafficRunner:
    """Sends the scenarios round-robin (by weight) to ``targets`` on a thread."""

    def __init__(
        self,
        targets: list[str],
        scenarios: list[ScenarioSpec],
        *,
        rate: float,
        clock: Clock = system_clock,
        timeout: float = 5.0,
    ) -> None:
        self.targets = targets
        self.scenarios = scenarios
        self.rate = rate
        self.clock = clock
        self.timeout = timeout
        self.samples: deque[_Sample] = deque(maxlen=100_000)
        self.sent = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> TrafficRunner:
        self._thread = threading.Thread(target=self._run, name="analysis traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> str:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 2)
        names = ", ".join(s.name for s in self.scenarios)
        return f"{self.sent} requests ({names}) at {self.rate:g}/s, {self.errors} failed"

    def window(self, seconds: float) -> TargetMetrics:
        since = self.clock.monotonic() - seconds
        with self._lock:
            chosen = [s for s in self.samples if s.at >= since]
        errors = sum(1 for s in chosen if s.error)
        latencies = sorted(s.latency for s in chosen if not s.error)

        def quantile(q: float) -> float | None:
            if not latencies:
                return None
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

        return TargetMetrics(
            requests=len(chosen),
            errors=errors,
            error_rate=errors / len(chosen) if chosen else 0.0,
            p50=quantile(0.50),
            p95=quantile(0.95),
            p99=quantile(0.99),
            source="synthetic traffic",
        )

    def _requests(self) -> itertools.cycle[tuple[str, str, dict[str, str], str]]:
        plan: list[tuple[str, str, dict[str, str], str]] = []
        smallest = min(s.weight for s in self.scenarios)
        for scenario in self.scenarios:
            steps: list[FlowStepSpec | ScenarioSpec] = [*scenario.steps] or [scenario]
            for _ in range(max(1, round(scenario.weight / smallest))):
                plan += [(s.method, s.path, dict(s.headers), s.body) for s in steps]
        return itertools.cycle(plan)

    def _run(self) -> None:
        interval = 1.0 / self.rate
        requests = self._requests()
        targets = itertools.cycle(self.targets)
        started = self.clock.monotonic()
        count = 0
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.is_set():
                method, path, headers, body = next(requests)
                begin = self.clock.monotonic()
                try:
                    response = client.request(
                        method, next(targets) + path, headers=headers, content=body or None
                    )
                    error = response.status_code >= 500
                except httpx.HTTPError:
                    error = True
                end = self.clock.monotonic()
                with self._lock:
                    self.samples.append(_Sample(end, error, end - begin))
                    self.sent += 1
                    self.errors += int(error)
                count += 1
                delay = started + count * interval - self.clock.monotonic()
                if delay < -1.0:  # far behind: do not burst to catch up
                    started, count = self.clock.monotonic(), 0
                elif delay > 0:
                    self._stop.wait(delay)
