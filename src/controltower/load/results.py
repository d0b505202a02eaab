"""Merging what the workers report into one result: histograms, errors, timeline, samples."""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from hdrh.histogram import HdrHistogram

from controltower.load.plan import Schedule
from controltower.load.worker import SAMPLE_SIZE, new_histogram

__all__ = ["PERCENTILES", "Aggregate", "LatencyStats", "LoadResult", "Second"]

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p99_9", 99.9))
LAG_FLOOR = 0.002
LAG_SHARE = 0.10
CPU_LIMIT = 0.90


@dataclass
class LatencyStats:
    """Counts, errors by kind and a latency histogram (microseconds) for one scenario or all."""

    histogram: HdrHistogram = field(default_factory=new_histogram)
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    _cache: tuple[int, list[int]] | None = field(default=None, repr=False, compare=False)

    def add(self, encoded: bytes, count: int, errors: dict[str, int]) -> None:
        if encoded:
            self.histogram.decode_and_add(encoded)
        self.requests += count
        for kind, number in errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + number

    def merge(self, other: LatencyStats) -> None:
        self.histogram.add(other.histogram)
        self.requests += other.requests
        for kind, number in other.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + number

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def error_rate(self) -> float:
        return self.error_count / self.requests if self.requests else 0.0

    def _cumulative(self) -> list[int]:
        """Running totals of the histogram's counts, recomputed only when its count changed.

        hdrh answers each percentile by walking every bucket in Python; reading the
        counts once and bisecting the running totals gives the same answers (see
        tests) at a fraction of the cost, which keeps the live display and the
        budget watch cheap on the machine that generates the load.
        """
        total = self.histogram.get_total_count()
        if self._cache is None or self._cache[0] != total:
            self._cache = (total, list(accumulate(self._counts())))
        return self._cache[1]

    def _counts(self) -> list[int]:
        return list(self.histogram.counts[: self.histogram.counts_len])

    def percentile(self, percent: float) -> float:
        """Seconds at ``percent`` (0 when nothing was recorded), as hdrh computes it."""
        histogram = self.histogram
        if not histogram.get_total_count():
            return 0.0
        cumulative = self._cumulative()
        index = bisect_left(cumulative, histogram.get_target_count_at_percentile(percent))
        value = histogram.get_value_from_index(min(index, len(cumulative) - 1))
        if percent:
            return float(histogram.get_highest_equivalent_value(value)) / 1e6
        return float(histogram.get_lowest_equivalent_value(value)) / 1e6

    def count_above(self, seconds: float) -> int:
        """Recorded latencies that may exceed ``seconds`` (their bucket reaches above it)."""
        histogram = self.histogram
        total = histogram.get_total_count()
        if not total:
            return 0
        cumulative = self._cumulative()
        threshold = max(0, int(seconds * 1e6))
        index = min(histogram.get_counts_array_index(threshold), len(cumulative) - 1)
        while (
            index >= 0
            and histogram.get_highest_equivalent_value(histogram.get_value_from_index(index))
            > threshold
        ):
            index -= 1
        below = cumulative[index] if index >= 0 else 0
        return int(total - below)

    def mean(self) -> float:
        """Seconds, from each bucket's middle value, as hdrh computes it."""
        histogram = self.histogram
        total = histogram.get_total_count()
        if not total:
            return 0.0
        half = histogram.sub_bucket_half_count_magnitude
        unit = histogram.unit_magnitude
        weighted = 0
        for index, count in enumerate(self._counts()):
            if count:
                lowest = histogram.get_value_from_index(index)
                width = 1 << (max(0, (index >> half) - 1) + unit)
                weighted += count * (lowest + (width >> 1))
        return float(weighted) / float(total) / 1e6

    def summary(self, elapsed: float) -> dict[str, Any]:
        recorded = self.histogram.get_total_count()
        out: dict[str, Any] = {
            "requests": self.requests,
            "errors": self.error_count,
            "error_rate": self.error_rate,
            "rps": self.requests / elapsed if elapsed > 0 else 0.0,
            "errors_by_kind": dict(sorted(self.errors.items())),
        }
        for name, percent in PERCENTILES:
            out[name] = self.percentile(percent)
        out["p999"] = out["p99_9"]
        out["max"] = self.histogram.get_max_value() / 1e6 if recorded else 0.0
        out["min"] = self.histogram.get_min_value() / 1e6 if recorded else 0.0
        out["mean"] = self.mean()
        out["latency"] = out["p95"]
        return out

    def spectrum(self) -> list[tuple[float, float]]:
        """(percentile, seconds) points for a latency distribution plot, evenly spaced in "nines".

        From the median's left (0%) to as many nines as the count supports
        (10,000 requests: 99.99%), twenty points per nine, then the maximum (100).
        """
        count = self.histogram.get_total_count()
        if not count:
            return []
        points = []
        steps = int(math.log10(count) * 20) if count > 1 else 0
        for step in range(steps + 1):
            percent = 100 * (1 - 10 ** (-step / 20))
            points.append((round(percent, 6), self.percentile(percent)))
        points.append((100.0, self.histogram.get_max_value() / 1e6))
        return points


@dataclass
class Second:
    """One second of the run, all workers together.

    Its histogram is dropped once the second is over (``seal``) and only its
    figures kept: a full-precision histogram is ~190 kB, an hour of them 700 MB.
    """

    stats: LatencyStats | None = field(default_factory=LatencyStats)
    lag_max: float = 0.0
    queued_max: int = 0
    cpu: dict[int, float] = field(default_factory=dict)
    sealed: dict[str, float] | None = None

    def figures(self) -> dict[str, float]:
        """requests, errors, p50, p95, p99 and max (seconds) of this second."""
        if self.sealed is not None:
            return self.sealed
        stats = self.stats or LatencyStats()
        recorded = stats.histogram.get_total_count()
        return {
            "requests": stats.requests,
            "errors": stats.error_count,
            "p50": stats.percentile(50),
            "p95": stats.percentile(95),
            "p99": stats.percentile(99),
            "max": stats.histogram.get_max_value() / 1e6 if recorded else 0.0,
        }

    def seal(self) -> None:
        if self.sealed is None:
            self.sealed = self.figures()
            self.stats = None

    def add(self, part: dict[str, Any]) -> None:
        if self.stats is not None:
            self.stats.add(part["hist"], part["count"], part["errors"])
        elif self.sealed is not None:  # a straggler: its counts still count
            self.sealed["requests"] += part["count"]
            self.sealed["errors"] += sum(part["errors"].values())


SEAL_AFTER = 5


class Aggregate:
    """Folds worker messages into totals and a per-second timeline as they arrive."""

    def __init__(self, scenarios: list[str], workers: int) -> None:
        self.workers = workers
        self.scenarios = {name: LatencyStats() for name in scenarios}
        self.timeline: dict[int, Second] = {}
        self.samples: list[tuple[list[int], int]] = []
        self.cpu_total: dict[int, float] = {}
        self.failures: list[str] = []
        self.dropped = 0
        self.lag = new_histogram()
        self._sealed = 0

    def fold(self, message: dict[str, Any]) -> None:
        index = int(message["second"])
        second = self.timeline.setdefault(index, Second())
        for name, part in message["scenarios"].items():
            self.scenarios[name].add(part["hist"], part["count"], part["errors"])
            second.add(part)
        second.lag_max = max(second.lag_max, float(message["lag_max"]))
        second.queued_max = max(second.queued_max, int(message["queued_max"]))
        worker = int(message["worker"])
        second.cpu[worker] = second.cpu.get(worker, 0.0) + float(message["cpu"])
        self.cpu_total[worker] = self.cpu_total.get(worker, 0.0) + float(message["cpu"])
        if message["kind"] == "final":
            self.samples.append((list(message["sample"]), int(message["seen"])))
            self.dropped += int(message.get("dropped", 0))
            if message.get("lag"):
                self.lag.decode_and_add(message["lag"])
        while self._sealed < index - SEAL_AFTER:
            if self._sealed in self.timeline:
                self.timeline[self._sealed].seal()
            self._sealed += 1

    def total(self) -> LatencyStats:
        total = LatencyStats()
        for stats in self.scenarios.values():
            total.merge(stats)
        return total

    def sample(self, size: int = SAMPLE_SIZE, seed: int = 1) -> list[int]:
        """A bounded sample of latencies (µs) drawn from each worker in proportion to its count."""
        seen = sum(count for _, count in self.samples)
        if seen == 0:
            return []
        chooser = random.Random(seed)
        out: list[int] = []
        for values, count in self.samples:
            take = min(len(values), round(size * count / seen))
            out.extend(chooser.sample(values, take))
        return out


@dataclass
class LoadResult:
    """A finished (or interrupted) run: everything the reports and budgets need."""

    plan: dict[str, Any]
    started_at: str
    elapsed: float
    total: LatencyStats
    scenarios: dict[str, LatencyStats]
    timeline: list[tuple[int, Second]]
    sample: list[int]
    interrupted: bool = False
    aborted: str = ""
    worker_cpu: dict[int, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    dropped: int = 0
    lag: HdrHistogram = field(default_factory=new_histogram)

    @property
    def generator(self) -> dict[str, Any]:
        """Whether the generator, not the target, limited the run, and the evidence.

        Two signs: a worker process near a full core, or sends so late (open
        model: the time from an arrival's due moment to its dispatch) that the
        lateness is a tenth or more of the p99 latency it was charged to.
        """
        lag = self.lag
        counted = lag.get_total_count()
        lag_p50 = lag.get_value_at_percentile(50) / 1e6 if counted else 0.0
        lag_p99 = lag.get_value_at_percentile(99) / 1e6 if counted else 0.0
        lag_max = lag.get_max_value() / 1e6 if counted else 0.0
        busy = (
            max(cpu / self.elapsed for cpu in self.worker_cpu.values())
            if self.worker_cpu and self.elapsed > 0
            else 0.0
        )
        queued = max((second.queued_max for _, second in self.timeline), default=0)
        latency_p99 = self.total.percentile(99)
        reasons = []
        if busy > CPU_LIMIT:
            reasons.append(
                f"a worker process used {busy:.0%} of a core: add --workers "
                "(one per core at most) or lower the load"
            )
        if lag_p99 > LAG_FLOOR and lag_p99 > LAG_SHARE * latency_p99:
            cause = (
                f"; its workers used at most {busy:.0%} of a core, so other work on "
                "this machine held them up"
                if busy <= CPU_LIMIT
                else ""
            )
            reasons.append(
                f"1% of requests were sent {lag_p99 * 1000:.1f}ms or more after they were due, "
                f"{lag_p99 / latency_p99 if latency_p99 else 1:.0%} of the p99 latency{cause}"
            )
        return {
            "bound": bool(reasons),
            "reasons": reasons,
            "send_lag_p50": lag_p50,
            "send_lag_p99": lag_p99,
            "send_lag_max": lag_max,
            "worker_cpu_max": busy,
            "queued_max": queued,
        }

    def summary(self) -> dict[str, Any]:
        return self.total.summary(self.elapsed)

    def scheduled(self) -> list[int]:
        """Open model: the arrivals due in each second of the run (empty for the closed model)."""
        if self.plan.get("model") != "open":
            return []
        schedule = Schedule(float(self.plan["rate"]), float(self.plan["ramp_up"]))
        duration = float(self.plan["duration"])
        seconds = math.ceil(duration)
        edges = [
            schedule.count_before(min(float(second), duration)) for second in range(seconds + 1)
        ]
        return [edges[index + 1] - edges[index] for index in range(seconds)]

    def to_dict(self) -> dict[str, Any]:
        scheduled = self.scheduled()
        return {
            "plan": self.plan,
            "started_at": self.started_at,
            "elapsed": self.elapsed,
            "interrupted": self.interrupted,
            "aborted": self.aborted,
            "dropped": self.dropped,
            "summary": self.summary(),
            "scenarios": {
                name: stats.summary(self.elapsed) for name, stats in self.scenarios.items()
            },
            "generator": self.generator,
            "timeline": [
                {
                    "second": index,
                    **({"scheduled": scheduled[index]} if index < len(scheduled) else {}),
                    **second.figures(),
                    "send_lag_max": second.lag_max,
                }
                for index, second in self.timeline
            ],
            "distribution": self.total.spectrum(),
            "failures": self.failures,
        }
