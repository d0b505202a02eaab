"""Folding worker reports: fast percentiles, the timeline, the generator verdict and the HTML report."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controltower.load.html import render_html, time_ticks
from controltower.load.plan import Schedule
from controltower.load.results import SEAL_AFTER, Aggregate, LatencyStats, LoadResult, Second
from controltower.load.worker import new_histogram

latencies = st.lists(st.integers(min_value=1, max_value=120_000_000), min_size=1, max_size=300)


def _stats(values: list[int]) -> LatencyStats:
    stats = LatencyStats()
    for value in values:
        stats.histogram.record_value(value)
    stats.requests = len(values)
    return stats


def _encoded(values: list[int]) -> bytes:
    histogram = new_histogram()
    for value in values:
        histogram.record_value(value)
    return bytes(histogram.encode())


def _message(
    worker: int, second: int, values: list[int], *, kind: str = "interval", **extra: Any
) -> dict[str, Any]:
    return {
        "kind": kind,
        "worker": worker,
        "second": second,
        "scenarios": {
            "default": {"hist": _encoded(values), "count": len(values), "errors": {"timeout": 1}}
        },
        "lag_max": 0.001,
        "queued_max": 0,
        "cpu": 0.1,
        **extra,
    }


class TestLatencyStats:
    @settings(max_examples=60, deadline=None)
    @given(latencies, st.sampled_from([0.0, 1.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0]))
    def test_percentiles_agree_with_hdrh(self, values: list[int], percent: float) -> None:
        """The bisected running totals give exactly hdrh's get_value_at_percentile."""
        stats = _stats(values)
        assert stats.percentile(percent) == stats.histogram.get_value_at_percentile(percent) / 1e6

    @settings(max_examples=60, deadline=None)
    @given(latencies, st.integers(min_value=0, max_value=130_000_000))
    def test_count_above_agrees_with_a_walk(self, values: list[int], threshold: int) -> None:
        """count_above counts the latencies whose bucket reaches above the threshold."""
        stats = _stats(values)
        histogram = stats.histogram
        above = sum(
            item.count_at_value_iterated_to
            for item in histogram.get_recorded_iterator()
            if histogram.get_highest_equivalent_value(item.value_iterated_to) > threshold
        )
        assert stats.count_above(threshold / 1e6) == above

    @settings(max_examples=40, deadline=None)
    @given(latencies)
    def test_mean_agrees_with_hdrh(self, values: list[int]) -> None:
        """The mean is hdrh's, from each bucket's middle value."""
        stats = _stats(values)
        assert stats.mean() == stats.histogram.get_mean_value() / 1e6

    def test_the_cache_follows_new_values(self) -> None:
        """Recording more values after a percentile was read changes the next answer."""
        stats = _stats([1000] * 10)
        assert stats.percentile(50) == stats.histogram.get_value_at_percentile(50) / 1e6
        for _ in range(30):
            stats.histogram.record_value(9000)
        assert stats.percentile(50) == stats.histogram.get_value_at_percentile(50) / 1e6 > 0.008

    def test_spectrum_runs_from_the_least_to_the_max_in_nines(self) -> None:
        """The distribution has 20 points per nine the count supports, rising, ending at the max."""
        stats = _stats(list(range(1, 10_001)))
        points = stats.spectrum()
        assert len(points) == 4 * 20 + 1 + 1
        assert points[0] == (0.0, stats.percentile(0))
        assert points[-1] == (100.0, stats.histogram.get_max_value() / 1e6)
        assert abs(points[-1][1] - 0.010) < 0.010 * 0.001  # three significant digits
        assert points[-2][0] == 99.99
        values = [value for _, value in points]
        assert values == sorted(values)


class TestSchedule:
    @given(
        st.floats(min_value=1, max_value=5000),
        st.floats(min_value=0, max_value=20),
        st.floats(min_value=0, max_value=40),
    )
    def test_count_before_inverts_at(self, rate: float, ramp: float, seconds: float) -> None:
        """count_before(t) arrivals are due before t, and the next one is not."""
        schedule = Schedule(rate, ramp)
        count = schedule.count_before(seconds)
        assert count == 0 or schedule.at(count - 1) < seconds
        assert schedule.at(count) >= seconds

    def test_scheduled_arrivals_per_second(self) -> None:
        """A 2 s ramp to 100/s then 100/s: 25, 75, 100, 100 arrivals in the four seconds."""
        result = LoadResult(
            plan={"model": "open", "rate": 100.0, "ramp_up": 2.0, "duration": 4.0},
            started_at="",
            elapsed=4.0,
            total=LatencyStats(),
            scenarios={},
            timeline=[],
            sample=[],
        )
        assert result.scheduled() == [25, 75, 100, 100]


class TestAggregate:
    def test_two_workers_fold_into_totals_and_a_timeline(self) -> None:
        """Histograms, counts and errors add up per second and in total; finals carry samples and lag."""
        aggregate = Aggregate(["default"], workers=2)
        aggregate.fold(_message(0, 0, [1000, 2000]))
        aggregate.fold(_message(1, 0, [3000]))
        lag = new_histogram()
        lag.record_value(500)
        aggregate.fold(
            _message(
                0,
                1,
                [4000],
                kind="final",
                sample=[1000, 2000, 4000],
                seen=3,
                dropped=2,
                lag=bytes(lag.encode()),
            )
        )
        total = aggregate.total()
        assert total.requests == 4 and total.errors == {"timeout": 3}
        assert total.histogram.get_total_count() == 4
        assert aggregate.timeline[0].figures()["requests"] == 3
        assert aggregate.timeline[1].figures()["max"] == pytest.approx(4000 / 1e6, rel=1e-3)
        assert aggregate.dropped == 2 and aggregate.lag.get_total_count() == 1
        assert sorted(aggregate.sample()) == [1000, 2000, 4000]
        assert aggregate.cpu_total == {0: 0.2, 1: 0.1}

    def test_old_seconds_keep_their_figures_but_not_their_histogram(self) -> None:
        """Seconds older than SEAL_AFTER are sealed: same figures, no histogram; stragglers still count."""
        aggregate = Aggregate(["default"], workers=1)
        for second in range(SEAL_AFTER + 3):
            aggregate.fold(_message(0, second, [1000 * (second + 1)] * 3))
        first = aggregate.timeline[0]
        assert first.stats is None and first.sealed is not None
        assert first.figures() == {
            "requests": 3,
            "errors": 1,
            **dict.fromkeys(("p50", "p95", "p99", "max"), pytest.approx(1000 / 1e6, rel=1e-3)),
        }
        assert aggregate.timeline[SEAL_AFTER + 2].stats is not None
        aggregate.fold(_message(0, 0, [5000]))
        assert first.figures()["requests"] == 4


def _result(cpu: float, lags_us: list[int], latency_us: int, elapsed: float = 10.0) -> LoadResult:
    lag = new_histogram()
    for value in lags_us:
        lag.record_value(value)
    return LoadResult(
        plan={"model": "open", "rate": 100.0, "ramp_up": 0.0, "duration": elapsed},
        started_at="2026-01-01T00:00:00+00:00",
        elapsed=elapsed,
        total=_stats([latency_us] * 1000),
        scenarios={},
        timeline=[],
        sample=[],
        worker_cpu={0: cpu * elapsed},
        lag=lag,
    )


class TestGeneratorVerdict:
    def test_a_busy_worker_is_the_bottleneck(self) -> None:
        """A worker above 90% of a core makes the run generator-bound, with advice."""
        generator = _result(cpu=0.97, lags_us=[100] * 100, latency_us=20_000).generator
        assert generator["bound"]
        assert generator["reasons"] == [
            "a worker process used 97% of a core: add --workers (one per core at most) "
            "or lower the load"
        ]

    def test_late_sends_on_an_idle_worker_blame_the_machine(self) -> None:
        """Sends 5 ms late against 20 ms latency, at 10% CPU: bound, and other work is to blame."""
        generator = _result(cpu=0.10, lags_us=[100] * 95 + [5000] * 5, latency_us=20_000).generator
        assert generator["bound"]
        assert generator["send_lag_p99"] == pytest.approx(5000 / 1e6, rel=1e-3)
        (reason,) = generator["reasons"]
        assert reason.startswith("1% of requests were sent 5.0ms or more after they were due, 25%")
        assert "other work on this machine" in reason

    def test_small_lateness_against_slow_answers_is_not_a_bottleneck(self) -> None:
        """5 ms late against a 500 ms p99 is 1% of it: not bound."""
        generator = _result(cpu=0.10, lags_us=[5000] * 100, latency_us=500_000).generator
        assert not generator["bound"] and generator["reasons"] == []


def _report(**changes: Any) -> dict[str, Any]:
    stats = {
        "requests": 100,
        "rps": 10.0,
        "error_rate": 0.01,
        "errors_by_kind": {"status_5xx": 1},
        **{key: 0.02 for key in ("p50", "p90", "p95", "p99", "p99_9", "max")},
    }
    report = {
        "plan": {"url": "http://shop.test", "model": "open"},
        "description": "10 req/s (open model) for 10s against http://shop.test, 1 worker(s)",
        "started_at": "2026-01-01T10:00:00+00:00",
        "elapsed": 10.0,
        "passed": False,
        "summary": stats,
        "scenarios": {"<script>alert(1)</script>": stats},
        "budgets": [
            {"scope": "global", "ok": False, "message": "p95 < 10ms: observed 20ms (failed)"}
        ],
        "notes": ["saved run 3 as the baseline"],
        "comparison": {"message": "no latency change from the baseline (run 2) beyond noise"},
        "generator": {
            "bound": False,
            "reasons": [],
            "send_lag_p50": 0.0001,
            "send_lag_p99": 0.0004,
            "send_lag_max": 0.001,
            "worker_cpu_max": 0.05,
            "queued_max": 0,
        },
        "timeline": [
            {
                "second": index,
                "scheduled": 10,
                "requests": 10,
                "errors": index % 2,
                "p50": 0.01,
                "p95": 0.02,
                "p99": 0.03,
                "max": 0.04,
            }
            for index in range(10)
        ],
        "distribution": [(0.0, 0.01), (90.0, 0.02), (99.0, 0.03), (100.0, 0.04)],
    }
    report.update(changes)
    return report


class TestHtmlReport:
    def test_three_charts_with_legends_and_no_outside_resources(self) -> None:
        """Latency over time, distribution and throughput are inline SVG; nothing is fetched."""
        page = render_html(_report())
        assert page.count("<svg") == 3
        for heading in ("Latency over time", "Latency distribution", "Throughput"):
            assert f"<h2>{heading}</h2>" in page
        for label in ("p50", "p95", "p99", "max", "requests/s", "errors/s", "scheduled arrivals/s"):
            assert f">{label}</text>" in page
        assert not re.search(r"<script|<link|src=|@import", page)

    def test_figures_budgets_and_notes_are_shown_escaped(self) -> None:
        """Names from tower.toml are escaped; budgets, notes, comparison and errors appear."""
        page = render_html(_report())
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
        assert "FAIL [global] p95 &lt; 10ms: observed 20ms (failed)" in page
        assert "saved run 3 as the baseline" in page and "no latency change" in page
        assert "errors by kind: status_5xx 1" in page
        assert "Started 2026-01-01 10:00:00 UTC" in page and "failed</strong>" in page

    def test_an_empty_run_still_renders(self) -> None:
        """With nothing recorded the charts say so instead of failing."""
        page = render_html(_report(timeline=[], distribution=[]))
        assert page.count("no data") == 3

    def test_time_ticks_stay_few_and_round(self) -> None:
        """Ticks fall on round seconds or minutes, never more than nine."""
        assert [label for _, label in time_ticks(1, 10)] == [f"{n}s" for n in range(2, 11, 2)]
        minutes = time_ticks(1, 600)
        assert len(minutes) <= 9 and minutes[-1][1] == "10m"

    def test_closed_model_has_no_schedule_line(self) -> None:
        """Only the open model has a schedule to draw."""
        page = render_html(_report(plan={"url": "http://shop.test", "model": "closed"}))
        assert "scheduled arrivals/s" not in page
        second = Second()
        assert second.figures()["requests"] == 0
