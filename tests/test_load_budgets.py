"""Plans from [budgets], the arrival schedule, budgets and when a budget is already lost."""

from __future__ import annotations

import pytest

import controltower.load as load
from controltower.exceptions import LoadTestError
from controltower.load.budgets import evaluate, lost
from controltower.load.client import Response, Target, build_request
from controltower.load.plan import Schedule, plan_from_budgets, resolve_capture, substitute
from controltower.load.results import LatencyStats
from controltower.spec import parse_spec

SPEC = """
[service]
name = "shop"

[budgets]
conditions = ["p95 < 200ms", "error_rate < 0.1%"]
rate = 80
duration = "20s"
ramp_up = "5s"

[[budgets.scenarios]]
name = "landing"
weight = 3
conditions = ["p99 < 500ms"]

[[budgets.scenarios]]
name = "checkout"
[[budgets.scenarios.steps]]
method = "post"
path = "/login"
body = '{"user": "a"}'
capture = { token = "body.token" }
[[budgets.scenarios.steps]]
path = "/cart"
headers = { Authorization = "Bearer {{token}}" }
expect_status = [200, 204]
"""


def _stats(latencies_ms: list[float], errors: int = 0) -> LatencyStats:
    stats = LatencyStats()
    for value in latencies_ms:
        stats.histogram.record_value(int(value * 1000))
    stats.requests = len(latencies_ms) + errors
    if errors:
        stats.errors = {"status_5xx": errors}
    return stats


class TestPublicApi:
    def test_all_is_pinned(self) -> None:
        """The package exports exactly its public API."""
        assert sorted(load.__all__) == sorted(
            [
                "BudgetCheckResult",
                "BudgetResult",
                "Comparison",
                "LoadOutcome",
                "LoadResult",
                "Plan",
                "Progress",
                "Scenario",
                "Step",
                "compare_samples",
                "compare_with",
                "judge",
                "mann_whitney_u",
                "plan_from_budgets",
                "run_budget_check",
                "run_load",
                "run_plan",
            ]
        )


class TestPlan:
    def test_scenarios_and_flows_come_from_the_spec(self) -> None:
        """Each [[budgets.scenarios]] becomes a weighted scenario; steps become a flow."""
        spec = parse_spec(SPEC, environ={})
        plan = plan_from_budgets(spec.budgets, "http://127.0.0.1:9")
        assert [s.name for s in plan.scenarios] == ["landing", "checkout"]
        landing, checkout = plan.scenarios
        assert landing.weight == 3 and landing.conditions == ("p99 < 500ms",)
        assert [step.method for step in checkout.steps] == ["POST", "GET"]
        assert checkout.steps[0].capture == (("token", "body.token"),)
        assert checkout.steps[1].expect == frozenset({200, 204})
        assert checkout.steps[1].templated and not checkout.steps[0].templated
        assert plan.model == "open" and plan.rate == 80 and plan.ramp_up == 5
        assert plan.conditions == ("p95 < 200ms", "error_rate < 0.1%")

    def test_command_line_overrides_choose_the_model(self) -> None:
        """--users switches to the closed model, --rate to the open one; None leaves the spec's value."""
        spec = parse_spec(SPEC, environ={})
        closed = plan_from_budgets(spec.budgets, "http://x", users=5, rate=None, duration=9.0)
        assert closed.model == "closed" and closed.users == 5 and closed.duration == 9.0
        opened = plan_from_budgets(spec.budgets, "http://x", rate=500.0)
        assert opened.model == "open" and opened.rate == 500

    def test_without_scenarios_the_root_is_loaded(self) -> None:
        """No scenarios means one default scenario: GET /, expecting 200."""
        spec = parse_spec('[service]\nname = "a"\n', environ={})
        plan = plan_from_budgets(spec.budgets, "http://x")
        assert [(s.name, s.steps[0].path) for s in plan.scenarios] == [("default", "/")]

    def test_default_workers_follow_the_load_and_the_cores(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """One worker per 2,500 arrivals/s up to the usable cores; closed: one per core or user."""
        from controltower.load import plan as plan_module

        monkeypatch.setattr(plan_module, "usable_cores", lambda: 4)
        spec = parse_spec('[service]\nname = "a"\n', environ={})
        workers = {
            (model, value): plan_from_budgets(spec.budgets, "http://x", **{model: value}).workers
            for model, value in (("rate", 100.0), ("rate", 6000.0), ("rate", 1e6))
        }
        assert workers == {("rate", 100.0): 1, ("rate", 6000.0): 3, ("rate", 1e6): 4}
        assert plan_from_budgets(spec.budgets, "http://x", users=1).workers == 1
        assert plan_from_budgets(spec.budgets, "http://x", users=50).workers == 4
        assert plan_from_budgets(spec.budgets, "http://x", users=50, workers=2).workers == 2

    def test_a_ramp_longer_than_the_run_is_refused(self) -> None:
        """Ramp-up must fit in the duration."""
        spec = parse_spec(SPEC, environ={})
        with pytest.raises(LoadTestError, match="ramp-up"):
            plan_from_budgets(spec.budgets, "http://x", duration=2.0)

    def test_a_bad_capture_path_is_refused(self) -> None:
        """A capture that is not a path is an error naming it."""
        spec = parse_spec(SPEC.replace('"body.token"', '"body..token"'), environ={})
        with pytest.raises(LoadTestError, match="capture 'token'"):
            plan_from_budgets(spec.budgets, "http://x")


class TestSchedule:
    def test_constant_rate_without_ramp(self) -> None:
        """Arrival i is due at i / rate."""
        schedule = Schedule(100.0)
        assert [schedule.at(i) for i in (0, 1, 250)] == [0.0, 0.01, 2.5]

    def test_linear_ramp_then_constant(self) -> None:
        """Over a 2 s ramp to 100/s, 100 arrivals are due; then one each 10 ms."""
        schedule = Schedule(100.0, ramp_up=2.0)
        assert schedule.at(25) == pytest.approx(1.0)
        assert schedule.at(100) == pytest.approx(2.0)
        assert schedule.at(150) == pytest.approx(2.5)


class TestRequests:
    def test_request_bytes(self) -> None:
        """A request is built once: method, base path, Host, headers, Content-Length for bodies."""
        target = Target.from_url("http://example.test:8080/api")
        built = build_request(target, "post", "/items", {"X-A": "1"}, b"{}")
        assert built == (
            b"POST /api/items HTTP/1.1\r\nHost: example.test:8080\r\nX-A: 1\r\n"
            b"User-Agent: controltower-load\r\nContent-Length: 2\r\n\r\n{}"
        )

    def test_captures_and_substitution(self) -> None:
        """Captured values come from body, header or status and fill {{name}} later."""
        headers = {"location": "/orders/7"}
        body = b'{"token": "abc", "items": [{"id": 3}]}'
        assert resolve_capture("body.token", 200, headers, body) == "abc"
        assert resolve_capture("body.items[0].id", 200, headers, body) == 3
        assert resolve_capture("header.location", 201, headers, body) == "/orders/7"
        assert resolve_capture("body.missing", 200, headers, body) is None
        assert substitute("Bearer {{token}} {{ other }}", {"token": "abc"}) == "Bearer abc "

    def test_response_headers_are_parsed_on_demand(self) -> None:
        """Header names are lowercased."""
        response = Response(200, [(b"X-Trace", b"9"), (b"Content-Type", b"text/plain")], b"")
        assert response.headers() == {"x-trace": "9", "content-type": "text/plain"}


class TestBudgets:
    def test_global_and_scenario_budgets(self) -> None:
        """Global budgets see totals and scenarios.<name>; scenario budgets see their own figures."""
        fast = _stats([10.0] * 99 + [300.0])
        slow = _stats([250.0] * 10, errors=1)
        total = LatencyStats()
        total.merge(fast)
        total.merge(slow)
        results = evaluate(
            ("p95 < 200ms", "error_rate < 0.1%", "rps >= 50", "scenarios.fast.p50 < 20ms"),
            {"fast": ("p99 < 500ms",), "slow": ("p50 < 200ms",)},
            total,
            {"fast": fast, "slow": slow},
            elapsed=2.0,
        )
        verdicts = {(item.scope, item.result.condition): item.ok for item in results}
        assert verdicts == {
            ("global", "p95 < 200ms"): False,
            ("global", "error_rate < 0.1%"): False,
            ("global", "rps >= 50"): True,
            ("global", "scenarios.fast.p50 < 20ms"): True,
            ("fast", "p99 < 500ms"): True,
            ("slow", "p50 < 200ms"): False,
        }
        message = next(item.result.message for item in results if item.scope == "slow")
        assert "observed 250ms" in message
        kinds = evaluate(
            ("errors_by_kind.timeout < 1", "errors_by_kind.status_5xx < 1"), {}, slow, {}, 1.0
        )
        assert [item.ok for item in kinds] == [True, False]  # a kind that never happened is 0

    def test_a_budget_is_lost_only_when_the_rest_cannot_save_it(self) -> None:
        """p95 < 100ms is lost when more than 5% of all planned requests were slower."""
        stats = _stats([150.0] * 40 + [10.0] * 60)
        assert lost(("p95 < 100ms",), {}, stats, {}, {}, expected_total=1000) == []
        assert lost(("p95 < 100ms",), {}, stats, {}, {}, expected_total=700) == ["p95 < 100ms"]
        assert lost(("max < 100ms",), {}, stats, {}, {}, expected_total=10**6) == ["max < 100ms"]
        failing = _stats([10.0] * 10, errors=5)
        assert lost(("error_rate < 1%",), {}, failing, {}, {}, 1000) == []
        assert lost(("error_rate < 1%",), {}, failing, {}, {}, 400) == ["error_rate < 1%"]
        assert lost(("rps >= 50",), {}, failing, {}, {}, 10) == []
        assert lost((), {"s": ("errors < 3",)}, stats, {"s": failing}, {"s": 0.5}, 100) == [
            "s: errors < 3"
        ]
