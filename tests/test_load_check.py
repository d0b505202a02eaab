"""The ``performance.budgets`` check: ``tower check`` runs a short load when budgets are set."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from controltower.checks import (
    Category,
    Check,
    CheckContext,
    Outcome,
    Status,
    passed,
    register,
    run_checks,
    select,
    unregister,
)
from controltower.cli.main import app
from controltower.load.check import LoadBudgets
from controltower.spec import parse_spec

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("load-heavy")]

Start = Callable[..., str]

SPEC = """
[service]
name = "shop"

[budgets]
conditions = [{conditions}]
rate = 40
check_duration = "{seconds}"

[[budgets.scenarios]]
name = "landing"
path = "/"
conditions = ["p99 < 2s"]
"""


def _spec(conditions: str = '"p95 < 500ms", "error_rate < 1%"', seconds: str = "1s") -> str:
    return SPEC.format(conditions=conditions, seconds=seconds)


def _served(url: str) -> int:
    with urllib.request.urlopen(f"{url}/__delays", timeout=5) as response:
        return len(json.loads(response.read()))


def _run(text: str, url: str) -> Outcome:
    spec = parse_spec(text, environ={})
    ctx = CheckContext(spec=spec, root=Path("."), url=url, client=None)
    return asyncio.run(LoadBudgets().run(ctx))


class TestPerformanceCheck:
    def test_budgets_met_pass_with_the_figures(self, load_target: Start) -> None:
        """A short load within budget passes; the figures and each budget's verdict are in the finding."""
        url = load_target("--latency", "fixed:5ms")
        outcome = _run(_spec(), url)
        assert outcome.status is Status.PASS, outcome.message
        assert outcome.message.startswith("performance budgets met: 40 requests")
        assert outcome.data["requests"] == 40 and 0.004 < float(outcome.data["p95"]) < 0.5
        assert [line.split(":")[0] for line in outcome.details[:3]] == [
            "pass [global] p95 < 500ms",
            "pass [global] error_rate < 1%",
            "pass [landing] p99 < 2s",
        ]
        assert _served(url) == 40

    def test_a_lost_budget_fails_with_a_fix(self, load_target: Start) -> None:
        """p95 < 5ms against a 30 ms server fails, naming the budget, with a fix in tower.toml."""
        url = load_target("--latency", "fixed:30ms")
        outcome = _run(_spec('"p95 < 5ms"'), url)
        assert outcome.status is Status.FAIL
        assert "p95 < 5ms: observed" in outcome.message
        assert outcome.fix is not None and outcome.fix.file == "tower.toml"
        assert outcome.details[0].startswith("FAIL [global] p95 < 5ms")

    def test_without_budgets_nothing_is_sent(self, load_target: Start) -> None:
        """No condition anywhere in [budgets]: skipped, and the server sees no request."""
        url = load_target()
        outcome = _run('[service]\nname = "shop"\n[budgets]\nrate = 40\n', url)
        assert outcome.status is Status.SKIP
        assert "no performance budgets" in outcome.message
        assert _served(url) == 0

    def test_a_zero_check_duration_turns_the_load_off(self, load_target: Start) -> None:
        """budgets.check_duration = 0s keeps tower check from loading the service."""
        url = load_target()
        outcome = _run(_spec(seconds="0s"), url)
        assert outcome.status is Status.SKIP and "check_duration" in outcome.message
        assert _served(url) == 0

    def test_it_is_registered_in_the_performance_category(self) -> None:
        """tower check selects it with the other performance checks, as a live deploy-gate check."""
        ids = [check.id for check in select(["performance."])]
        assert "performance.budgets" in ids
        assert LoadBudgets.category is Category.PERFORMANCE and LoadBudgets.kind == "live"
        assert LoadBudgets.exclusive


class _Timed(Check):
    """Records when it ran; ``exclusive`` decides whether it may overlap others."""

    category = Category.PERFORMANCE
    kind = "static"
    spans: ClassVar[dict[str, tuple[float, float]]] = {}

    async def run(self, ctx: CheckContext) -> Outcome:
        start = time.monotonic()
        await asyncio.sleep(0.2)
        self.spans[self.id] = (start, time.monotonic())
        return passed("ran")


class _Slow(_Timed):
    id = "test.slow"
    title = "slow"


class _Alone(_Timed):
    id = "test.alone"
    title = "alone"
    exclusive = True


@pytest.fixture
def timed_checks() -> Iterator[None]:
    register(_Slow)
    register(_Alone)
    yield
    unregister(_Slow.id)
    unregister(_Alone.id)


class TestExclusiveChecks:
    def test_an_exclusive_check_runs_after_the_others(self, timed_checks: None) -> None:
        """The runner starts an exclusive check only when every other check has finished."""
        spec = parse_spec('[service]\nname = "shop"\n', environ={})
        ctx = CheckContext(spec=spec, root=Path("."))
        run = asyncio.run(run_checks(ctx, select(["test."])))
        assert {finding.id for finding in run.findings} == {"test.slow", "test.alone"}
        assert _Timed.spans["test.alone"][0] >= _Timed.spans["test.slow"][1]


class TestCheckCommand:
    def test_tower_check_gates_on_the_budgets(self, load_target: Start, tmp_path: Path) -> None:
        """tower check --gate 3 exits 0 when the budgets hold and 1 when one is lost."""
        url = load_target("--latency", "fixed:20ms")
        spec = tmp_path / "tower.toml"
        runner = CliRunner()
        arguments = ["check", "--spec", str(spec), "--url", url, "--only", "performance.budgets"]
        arguments += ["--gate", "3", "--no-store", "--format", "json"]
        spec.write_text(_spec(), encoding="utf-8")
        good = runner.invoke(app, arguments)
        assert good.exit_code == 0, good.output
        finding = json.loads(good.stdout)["findings"][0]
        assert finding["id"] == "performance.budgets" and finding["status"] == "pass"
        spec.write_text(_spec('"p50 < 2ms"'), encoding="utf-8")
        bad = runner.invoke(app, arguments)
        assert bad.exit_code == 1, bad.output
        report = json.loads(bad.stdout)
        assert report["findings"][0]["status"] == "fail"
        assert report["gates"]["3"]["passed"] is False
