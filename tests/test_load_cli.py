"""``tower load`` end to end and ``run_budget_check`` for the performance check category."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controltower.cli.main import app
from controltower.exceptions import UsageError
from controltower.load.api import run_budget_check
from controltower.spec import parse_spec

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("load-heavy")]

Start = Callable[..., str]

SPEC = """
[service]
name = "shop"

[budgets]
conditions = ["{budget}", "error_rate < 1%", "rps >= 20"]
rate = 40
duration = "2s"
check_duration = "1s"

[[budgets.scenarios]]
name = "landing"
path = "/"
weight = 3
conditions = ["p99 < 2s"]

[[budgets.scenarios]]
name = "login"
[[budgets.scenarios.steps]]
method = "POST"
path = "/login"
capture = {{ token = "body.token" }}
[[budgets.scenarios.steps]]
path = "/private"
headers = {{ Authorization = "Bearer {{{{token}}}}" }}
"""


def _served(url: str) -> int:
    with urllib.request.urlopen(f"{url}/__count", timeout=5) as response:
        return int(response.read())


def _project(tmp_path: Path, budget: str = "p95 < 500ms") -> Path:
    path = tmp_path / "tower.toml"
    path.write_text(SPEC.format(budget=budget), encoding="utf-8")
    return path


class TestBudgetCheck:
    def test_met_budgets_pass(self, load_target: Start, tmp_path: Path) -> None:
        """A short load within budget passes, with one result per budget and a summary."""
        url = load_target("--latency", "fixed:5ms")
        spec = parse_spec(SPEC.format(budget="p95 < 500ms"), environ={})
        check = run_budget_check(spec, url)
        assert check.passed, check.summary
        assert [result.condition for result in check.results] == [
            "p95 < 500ms",
            "error_rate < 1%",
            "rps >= 20",
            "p99 < 2s",
        ]
        assert all(result.ok for result in check.results)
        assert check.summary.startswith("performance budgets met")
        assert check.outcome is not None and check.outcome.result.elapsed <= 1.5

    def test_a_lost_budget_fails_and_says_which(self, load_target: Start) -> None:
        """p95 < 5ms against a 30 ms server fails, naming the budget and the observed value."""
        url = load_target("--latency", "fixed:30ms")
        spec = parse_spec(SPEC.format(budget="p95 < 5ms"), environ={})
        check = run_budget_check(spec, url, duration=1.0)
        assert not check.passed
        assert [result.ok for result in check.results] == [False, True, True, True]
        assert "p95 < 5ms: observed" in check.summary

    def test_no_budgets_means_skipped(self) -> None:
        """Without budgets nothing is sent and the check is skipped."""
        spec = parse_spec('[service]\nname = "a"\n', environ={})
        check = run_budget_check(spec, "http://127.0.0.1:9")
        assert check.skipped and check.passed and check.results == []


class TestCommand:
    def test_json_report_html_baseline_and_compare(
        self, load_target: Start, tmp_path: Path
    ) -> None:
        """A baseline is saved; a slower run is a regression (exit 1); a faster one is not."""
        fast = load_target("--latency", "fixed:5ms")
        slow = load_target("--latency", "fixed:60ms")
        spec = _project(tmp_path)
        runner = CliRunner()
        base = ["load", "--spec", str(spec)]
        first = runner.invoke(app, [*base, "--url", fast, "--save-baseline", "--format", "json"])
        assert first.exit_code == 0, first.output
        report = json.loads(first.stdout)
        assert report["passed"] and report["run_id"] == 1
        assert report["summary"]["requests"] > 60
        assert set(report["scenarios"]) == {"landing", "login"}
        assert "saved run 1 as the baseline" in report["notes"]
        assert report["comparison"] is None
        html = tmp_path / "report.html"
        second = runner.invoke(
            app, [*base, "--url", slow, "--compare", "baseline", "--html", str(html)]
        )
        assert second.exit_code == 1, second.output
        assert "latency is slower than the baseline (run 1) beyond noise" in second.stdout
        assert "budgets met" in second.stdout  # the exit code is the regression's
        assert "ran a different load" in second.stdout  # another URL
        page = html.read_text(encoding="utf-8")
        assert page.count("<svg") == 3 and "Latency over time" in page
        assert "latency is slower than the baseline" in page
        third = runner.invoke(
            app, [*base, "--url", fast, "--compare", "previous", "--format", "json"]
        )
        assert third.exit_code == 0, third.output
        comparison = json.loads(third.stdout)["comparison"]
        assert comparison["verdict"] == "faster" and comparison["against"] == "previous (run 2)"
        assert (tmp_path / ".tower" / "tower.db").exists()

    def test_a_failed_budget_exits_1(self, load_target: Start, tmp_path: Path) -> None:
        """Exit code 1 and a FAIL line when a budget is not met."""
        url = load_target("--latency", "fixed:20ms")
        spec = _project(tmp_path, budget="p50 < 2ms")
        result = CliRunner().invoke(
            app, ["load", "--spec", str(spec), "--url", url, "--duration", "1s", "--no-store"]
        )
        assert result.exit_code == 1, result.output
        assert "FAIL  [global] p50 < 2ms" in result.stdout
        assert not (tmp_path / ".tower").exists()

    def test_credentials_in_the_url_are_never_shown(
        self, load_target: Start, tmp_path: Path
    ) -> None:
        """User, password and query of --url stay out of the output, the HTML and the store."""
        url = load_target().replace("http://", "http://user:s3cret@") + "/?key=s3cret"
        spec = _project(tmp_path)
        html = tmp_path / "load.html"
        arguments = ["load", "--spec", str(spec), "--url", url, "--duration", "1s"]
        result = CliRunner().invoke(app, [*arguments, "--html", str(html), "--format", "json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["summary"]["requests"] > 20 and report["summary"]["errors"] == 0
        assert "s3cret" not in result.output and "s3cret" not in html.read_text()
        assert "s3cret" not in (tmp_path / ".tower" / "tower.db").read_bytes().decode("latin-1")
        assert report["plan"]["url"].startswith("http://127.0.0.1:")

    def test_usage_errors_exit_2(self, tmp_path: Path) -> None:
        """No URL, both models at once, a zero duration or rate, a baseline not kept: bad usage."""
        spec = _project(tmp_path)
        runner = CliRunner()
        missing = runner.invoke(app, ["load", "--spec", str(spec)])
        assert isinstance(missing.exception, UsageError) and missing.exception.exit_code == 2
        assert "no URL to load" in str(missing.exception)
        both = runner.invoke(
            app, ["load", "--spec", str(spec), "--url", "http://x", "--rate", "5", "--users", "5"]
        )
        assert isinstance(both.exception, UsageError) and "exclude" in str(both.exception)
        nothing = runner.invoke(
            app, ["load", "--spec", str(spec), "--url", "http://x", "--duration", "0s"]
        )
        assert isinstance(nothing.exception, UsageError)
        assert "--duration must be longer than 0s" in str(nothing.exception)
        kept = runner.invoke(
            app, ["load", "--spec", str(spec), "--url", "http://x", "--save-baseline", "--no-store"]
        )
        assert isinstance(kept.exception, UsageError) and "--no-store" in str(kept.exception)
        zero = runner.invoke(app, ["load", "--spec", str(spec), "--url", "http://x", "--rate", "0"])
        assert zero.exit_code == 2

    def test_ctrl_c_stops_cleanly_with_a_partial_report(
        self, load_target: Start, tmp_path: Path
    ) -> None:
        """SIGINT once requests flow in a 30 s run: stops within seconds, a partial JSON report, exit 130."""
        url = load_target("--latency", "fixed:5ms")
        spec = _project(tmp_path)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controltower",
                "load",
                "--spec",
                str(spec),
                "--url",
                url,
                "--duration",
                "30s",
                "--format",
                "json",
                "--no-store",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert process.stderr is not None
        lines: list[str] = []
        reader = threading.Thread(
            target=lambda: lines.extend(line.decode() for line in process.stderr), daemon=True
        )
        reader.start()
        deadline = time.monotonic() + 60
        # Interrupt once requests flow and a progress line has been printed on stderr.
        while time.monotonic() < deadline and (
            _served(url) < 50 or not any("s/30s" in line for line in list(lines))
        ):
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        assert process.stdout is not None
        process.wait(timeout=20)  # the JSON report is far smaller than the pipe's buffer
        stdout = process.stdout.read()
        reader.join(5)
        stderr = "".join(lines)
        assert process.returncode == 130, stderr
        report = json.loads(stdout)
        assert report["interrupted"]
        assert 0 < report["elapsed"] < 10
        assert report["summary"]["requests"] >= 50  # what was measured before the stop is kept
        assert any("partial report" in note for note in report["notes"])
        assert "s/30s" in stderr  # progress lines while it ran, on stderr
