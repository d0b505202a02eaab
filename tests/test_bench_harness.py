"""The ingestion benchmark's harness, at a tiny size, so it does not rot between recordings.

``benchmarks/ingest/run.py`` (recorded in benchmarks/RESULTS.md) runs tower serve
and Bugsink for 15 s per load; here its own tower runner takes one second of the
real sentry-sdk transport into a real ``tower serve`` on SQLite, and its verdict
and CPU accounting are checked on known inputs. Bugsink and wrk are installed by
``scripts/bench-setup.sh``, not by the test run, so they are not run here.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from benchmarks.ingest.run import SDK, Outcome, Wrk, cpu_seconds, goal_lines, run_tower, tree_cpu

pytestmark = [pytest.mark.slow]


def _outcome(system: str, events_per_s: float, *, lost: int = 0) -> Outcome:
    return Outcome(
        system,
        "PostgreSQL",
        SDK,
        sent=100,
        accepted=100,
        refused=0,
        stored=100 - lost,
        events_per_s=events_per_s,
        accept_rps=0.0,
        p50_ms=1.0,
        p99_ms=2.0,
        seconds=1.0,
        cpu_us=100.0,
    )


class TestTowerRunner:
    def test_sdk_load_into_tower_serve_is_all_stored(self, tmp_path: Path) -> None:
        """One second of sentry-sdk traffic: every accepted event stored, timed, none refused."""
        args = argparse.Namespace(duration=1.0, senders=1, connections=1)
        url = f"sqlite:///{tmp_path / 'bench.db'}"
        outcome = run_tower(url, tmp_path, SDK, args)
        assert outcome.sent > 0, outcome
        assert outcome.refused == 0, outcome
        assert outcome.accepted == outcome.sent, outcome
        assert outcome.stored == outcome.accepted, outcome
        assert outcome.lost == 0
        assert outcome.events_per_s > 0 and outcome.cpu_us > 0, outcome
        assert math.isfinite(outcome.p50_ms) and outcome.p99_ms >= outcome.p50_ms, outcome


class TestVerdict:
    def test_three_times_with_none_lost_is_met(self) -> None:
        """tower at 3x Bugsink's events/s with 0 lost meets the goal."""
        [line] = goal_lines([_outcome("tower serve", 300.0), _outcome("Bugsink", 100.0)], (SDK,))
        assert "**met**" in line and "3.0x" in line

    def test_fast_but_losing_is_not_met(self) -> None:
        """Any event lost by tower fails the goal, however fast."""
        [line] = goal_lines(
            [_outcome("tower serve", 1000.0, lost=1), _outcome("Bugsink", 100.0)], (SDK,)
        )
        assert "**NOT met**" in line and "tower lost 1" in line

    def test_below_three_times_is_not_met(self) -> None:
        """2.9x is not 3x."""
        [line] = goal_lines([_outcome("tower serve", 290.0), _outcome("Bugsink", 100.0)], (SDK,))
        assert "**NOT met**" in line

    def test_lost_counts_accepted_minus_stored(self) -> None:
        """Outcome.measured: lost is what was accepted and is not in the store."""
        outcome = Outcome.measured(
            "Bugsink",
            "sqlite:///x.db",
            SDK,
            Wrk(requests=10, non_2xx=2, rps=10.0, p50_ms=1.0, p99_ms=2.0),
            accepted=8,
            stored=5,
            seconds=2.0,
            cpu=0.5,
        )
        assert (outcome.lost, outcome.refused, outcome.events_per_s) == (3, 2, 2.5)
        assert outcome.cpu_us == pytest.approx(100_000)


class TestCpuAccounting:
    def test_a_child_that_exited_still_counts(self) -> None:
        """A worker that exits (gunicorn's --max-requests) moves its CPU time into its parent's."""
        before = tree_cpu(os.getpid())
        own_before = cpu_seconds(os.getpid())
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "import time\nend = time.process_time() + 0.3\n"
                "while time.process_time() < end: pass",
            ],
            check=True,
        )
        assert child.returncode == 0
        time.sleep(0.05)
        assert tree_cpu(os.getpid()) - before >= 0.25
        assert cpu_seconds(os.getpid()) - own_before < 0.25
