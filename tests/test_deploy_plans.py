"""Pure parts of the deploy engine: strategy plans and the analysis of metrics."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from controltower.deploy import analysis
from controltower.deploy.drivers.base import TargetMetrics
from controltower.deploy.strategies import Step, build_plan, commit_index, rollback
from controltower.spec.deploy import AnalysisSpec, DeploySpec, Strategy

PRE = [Step("gates"), Step("hooks", phase="pre_deploy")]


def spec(**values: Any) -> DeploySpec:
    return DeploySpec.model_validate(values)


class TestPlans:
    def test_first_deploy_is_immediate(self) -> None:
        """With nothing serving yet there is nothing to shift traffic from."""
        plan = build_plan(spec(strategy="canary"), Strategy.CANARY, has_previous=False)
        assert plan == build_plan(spec(), Strategy.IMMEDIATE, has_previous=True)
        assert [s.label for s in plan] == [
            "gates",
            "hooks:pre_deploy",
            "start:2",
            "health",
            "hooks:pre_switch",
            "route:100%",
            "smoke",
            "stop_old:all",
            "hooks:post_deploy",
        ]

    def test_rolling_batches_by_max_unavailable(self) -> None:
        """Three instances, two at a time: start, gate, shift and stop per batch."""
        plan = build_plan(spec(instances=3, max_unavailable=2), Strategy.ROLLING, has_previous=True)
        assert plan == [
            *PRE,
            Step("start", count=2),
            Step("health"),
            Step("hooks", phase="pre_switch"),
            Step("route", weight=2 / 3),
            Step("stop_old", count=2),
            Step("start", count=1),
            Step("health"),
            Step("route", weight=1.0),
            Step("stop_old", count=1),
            Step("smoke"),
            Step("stop_old"),
            Step("hooks", phase="post_deploy"),
        ]

    def test_bluegreen_switches_once_and_keeps_blue_warm(self) -> None:
        """Green starts and passes health before one switch; analysis, smoke, then blue is retired."""
        plan = build_plan(
            spec(analysis={"conditions": ["error_rate < 1%"], "interval": "7s"}),
            Strategy.BLUEGREEN,
            has_previous=True,
        )
        assert [s.label for s in plan] == [
            "gates",
            "hooks:pre_deploy",
            "start:2",
            "health",
            "hooks:pre_switch",
            "route:100%",
            "analyse:7s",
            "smoke",
            "retire",
            "hooks:post_deploy",
        ]

    def test_canary_steps_with_and_without_pause(self) -> None:
        """Each step routes its weight and holds; no pause means wait for promote; 100% ends it."""
        plan = build_plan(
            spec(steps=[{"weight": "5%", "pause": "30s"}, {"weight": "50%"}, {"weight": "100%"}]),
            Strategy.CANARY,
            has_previous=True,
        )
        labels = [s.label for s in plan]
        assert labels[5:10] == [
            "route:5%",
            "analyse:30s",
            "route:50%",
            "analyse:until-promote",
            "route:100%",
        ]
        assert plan[8] == Step("analyse", pause=None)

    def test_default_canary_steps(self) -> None:
        """Without steps, a canary goes 5%, 25%, 50%, each held for one analysis interval."""
        plan = build_plan(spec(analysis={"interval": "3s"}), Strategy.CANARY, has_previous=True)
        assert [s.label for s in plan if s.kind in ("route", "analyse")] == [
            "route:5%",
            "analyse:3s",
            "route:25%",
            "analyse:3s",
            "route:50%",
            "analyse:3s",
            "route:100%",
        ]

    def test_rollback_plan_reuses_warm_instances(self) -> None:
        """Back to warm instances: no start; to stopped ones: start them first."""
        assert rollback(spec(), reuse=True)[0] == Step("health")
        assert rollback(spec(), reuse=False)[:2] == [Step("start", count=2), Step("health")]

    def test_commit_point_is_the_smoke_step(self) -> None:
        """A plan is past its point of no return once the smoke checks have passed."""
        plan = build_plan(spec(), Strategy.CANARY, has_previous=True)
        assert plan[commit_index(plan)].kind == "smoke"
        assert commit_index([Step("start")]) == 1

    def test_steps_round_trip(self) -> None:
        """Plans are stored as JSON with the release and read back equal."""
        plan = build_plan(spec(), Strategy.ROLLING, has_previous=True)
        assert [Step.from_dict(s.to_dict()) for s in plan] == plan


def metrics(requests: int, errors: int, p95: float | None = 0.1) -> TargetMetrics:
    return TargetMetrics(requests, errors, errors / requests if requests else 0.0, 0.05, p95, p95)


class TestAnalysis:
    def conditions(self, *text: str, **values: Any) -> AnalysisSpec:
        return AnalysisSpec.model_validate({"conditions": list(text), "min_requests": 20, **values})

    def test_pass_names_each_condition(self) -> None:
        """A pass lists every condition with what was observed."""
        verdict = analysis.evaluate(
            self.conditions("error_rate < 5%", "p95 < 300ms"),
            analysis.build_context(metrics(100, 1), None),
        )
        assert verdict.outcome == analysis.PASS
        assert (
            verdict.message == "error_rate < 5%: observed 1% (ok); p95 < 300ms: observed 100ms (ok)"
        )

    def test_fail_names_the_failed_condition_and_value(self) -> None:
        """A failure says which condition failed and the value seen."""
        verdict = analysis.evaluate(
            self.conditions("error_rate < 5%", "p95 < 300ms"),
            analysis.build_context(metrics(100, 20), None),
        )
        assert verdict.outcome == analysis.FAIL
        assert verdict.message == "error_rate < 5%: observed 20% (failed)"

    def test_too_little_traffic_is_inconclusive(self) -> None:
        """Fewer requests than min_requests never passes."""
        verdict = analysis.evaluate(
            self.conditions("error_rate < 5%"), analysis.build_context(metrics(5, 0), None)
        )
        assert verdict.outcome == analysis.INCONCLUSIVE
        assert "5 requests reached the new release (at least 20 needed)" in verdict.message

    def test_compared_with_the_stable_release(self) -> None:
        """error_rate_delta and p95_ratio compare the canary with the stable release."""
        spec_ = self.conditions("error_rate_delta < 2%", "p95_ratio < 1.5")
        slower = analysis.build_context(metrics(100, 3, p95=0.4), metrics(900, 9, p95=0.2))
        verdict = analysis.evaluate(spec_, slower)
        assert verdict.outcome == analysis.FAIL
        assert verdict.message == "p95_ratio < 1.5: observed 2 (failed)"
        assert slower["stable"]["requests"] == 900
        assert slower["error_rate_delta"] == pytest.approx(0.02)

    def test_stable_conditions_wait_for_stable_traffic(self) -> None:
        """With too little stable traffic the comparisons are left out, not failed."""
        spec_ = self.conditions("error_rate < 5%", "p95_ratio < 1.5")
        context = analysis.build_context(metrics(100, 0, p95=0.4), metrics(3, 0, p95=0.1))
        verdict = analysis.evaluate(spec_, context)
        assert verdict.outcome == analysis.PASS
        assert [r.message for r in verdict.results] == ["error_rate < 5%: observed 0% (ok)"]

    def test_no_metrics_is_inconclusive(self) -> None:
        """A driver without router metrics and no queries gives no value: inconclusive."""
        verdict = analysis.evaluate(
            self.conditions("error_rate < 5%"), analysis.build_context(None, None)
        )
        assert verdict.outcome == analysis.INCONCLUSIVE
        assert verdict.message == "inconclusive: no value yet for error_rate"


class TestPrometheus:
    def test_queries_fill_the_context(self) -> None:
        """Each named PromQL query (with {release} filled in) becomes a value conditions can use."""
        seen: list[str] = []

        def answer(request: httpx.Request) -> httpx.Response:
            query = request.url.params["query"]
            seen.append(query)
            value = "0.2" if "5.." in query else "0.35"
            return httpx.Response(
                200,
                json={"status": "success", "data": {"result": [{"value": [1, value]}]}},
            )

        spec_ = AnalysisSpec.model_validate(
            {
                "prometheus_url": "http://prometheus.test/",
                "queries": {
                    "http_5xx": 'sum(rate(http_requests_total{release="{release}",code=~"5.."}[1m]))',
                    "latency": 'histogram_quantile(0.95, rate(x{version="{version}"}[1m]))',
                },
                "conditions": ["http_5xx < 0.1", "latency < 500ms"],
            }
        )
        client = httpx.Client(transport=httpx.MockTransport(answer))
        values, problems = analysis.prometheus_values(
            spec_, {"release": "r1", "version": "2.0"}, client=client
        )
        assert (values, problems) == ({"http_5xx": 0.2, "latency": 0.35}, [])
        assert seen[0] == 'sum(rate(http_requests_total{release="r1",code=~"5.."}[1m]))'
        assert 'version="2.0"' in seen[1]
        verdict = analysis.evaluate(spec_, analysis.build_context(None, None, values))
        assert verdict.outcome == analysis.FAIL
        assert verdict.message == "http_5xx < 0.1: observed 0.2 (failed)"

    def test_empty_and_broken_answers_are_problems(self) -> None:
        """No series or an error answer is reported, so the verdict cannot pass on it."""

        def answer(request: httpx.Request) -> httpx.Response:
            if "missing" in request.url.params["query"]:
                return httpx.Response(200, json={"status": "success", "data": {"result": []}})
            return httpx.Response(400, json={"status": "error", "error": "parse error"})

        spec_ = AnalysisSpec.model_validate(
            {"prometheus_url": "http://p.test", "queries": {"a": "missing", "b": "broken("}}
        )
        client = httpx.Client(transport=httpx.MockTransport(answer))
        values, problems = analysis.prometheus_values(spec_, {}, client=client)
        assert values == {}
        assert problems == ["query a: no data", "query b: no data"]
