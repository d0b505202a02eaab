"""The check framework: registry, concurrent runner, platform rules, waivers, scoring, gates."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from controltower.checks import (
    Category,
    Check,
    CheckContext,
    Gate,
    Outcome,
    Severity,
    Status,
    failed,
    passed,
    register,
    registered,
    run_checks,
    select,
    unregister,
    warned,
)
from controltower.checks.model import Finding
from controltower.checks.scoring import gate_verdicts, score
from controltower.spec import parse_spec
from controltower.spec.service import Target
from controltower.testing import FakeClock

SPEC = """
[service]
name = "svc"
target = "local"
"""


def context(extra: str = "", clock: FakeClock | None = None) -> CheckContext:
    return CheckContext(spec=parse_spec(SPEC + extra), root=Path("."), clock=clock or FakeClock())


class Probe(Check):
    id = "test.probe"
    title = "probe"
    category = Category.RELIABILITY
    gate = Gate.CORE
    severity = Severity.HIGH
    outcome: Outcome = Outcome(Status.PASS, "ok")

    async def run(self, ctx: CheckContext) -> Outcome:
        return self.outcome


@pytest.fixture
def probe() -> Iterator[type[Probe]]:
    register(Probe)
    yield Probe
    unregister(Probe.id)


def finding(
    check_id: str,
    status: Status,
    gate: Gate = Gate.CORE,
    severity: Severity = Severity.MEDIUM,
    category: Category = Category.CONFIG,
) -> Finding:
    return Finding(check_id, check_id, category, gate, severity, status, "")


class TestRegistry:
    def test_register_and_select(self, probe: type[Probe]) -> None:
        """A registered check is listed and selectable by id or prefix."""
        assert registered()["test.probe"] is probe
        assert [c.id for c in select(["test."])] == ["test.probe"]
        assert [c.id for c in select(["test.probe"])] == ["test.probe"]

    def test_duplicate_id_refused(self, probe: type[Probe]) -> None:
        """Two classes cannot share an id."""

        class Other(Probe):
            pass

        with pytest.raises(ValueError, match="already registered"):
            register(Other)

    def test_builtin_ids_unique_and_described(self) -> None:
        """Every built-in check has an id, title, category, gate, what it looks for and its remedy."""
        checks = registered()
        assert len(checks) >= 45
        for check_id, cls in checks.items():
            assert cls.id == check_id and re.fullmatch(r"[a-z]+\.[a-z_]+", check_id), check_id
            assert cls.title and cls.category in Category and cls.gate in Gate, check_id
            assert cls.__doc__ and cls.__doc__ is not cls.__mro__[1].__doc__, check_id
            assert cls.remedy.endswith("."), check_id

    def test_platform_rules_say_why(self) -> None:
        """A check that is advice somewhere says why, and only lists targets it applies to."""
        for check_id, cls in registered().items():
            if cls.advice_on:
                assert cls.advice_reason, check_id
                assert cls.advice_on <= cls.targets, check_id
        assert registered()["docker.init"].advice_on == {Target.FLY}
        assert registered()["docker.healthcheck"].advice_on == {Target.FLY, Target.KUBERNETES}


class TestRunner:
    def test_checks_run_concurrently(self) -> None:
        """Checks run at the same time: two that wait for each other both finish."""
        barrier = asyncio.Barrier(2) if hasattr(asyncio, "Barrier") else None
        if barrier is None:
            pytest.skip("asyncio.Barrier needs Python 3.11")

        class Waiter(Check):
            category = Category.CONFIG

            async def run(self, ctx: CheckContext) -> Outcome:
                await asyncio.wait_for(barrier.wait(), 5)
                return passed("met")

        one = type("One", (Waiter,), {"id": "t.one", "title": "one"})()
        two = type("Two", (Waiter,), {"id": "t.two", "title": "two"})()
        run = asyncio.run(run_checks(context(), [one, two]))
        assert [f.status for f in run.findings] == [Status.PASS, Status.PASS]

    def test_progress_reports_each_check_as_it_finishes(self) -> None:
        """The progress callback gets every finding, the quick ones before a slow one."""

        class Slow(Probe):
            id = "t.slow"

            async def run(self, ctx: CheckContext) -> Outcome:
                await asyncio.sleep(0.2)
                return passed("slow")

        quick = [type(f"Q{i}", (Probe,), {"id": f"t.q{i}"})() for i in range(3)]
        seen: list[str] = []
        asyncio.run(run_checks(context(), [Slow(), *quick], progress=lambda f: seen.append(f.id)))
        assert sorted(seen[:3]) == ["t.q0", "t.q1", "t.q2"] and seen[3] == "t.slow"

    def test_exclusive_checks_run_alone_after_the_rest(self) -> None:
        """A check that measures time starts only when every other check has finished."""
        running: set[str] = set()
        overlap: list[set[str]] = []

        class Busy(Probe):
            async def run(self, ctx: CheckContext) -> Outcome:
                running.add(self.id)
                await asyncio.sleep(0.05)
                running.discard(self.id)
                return passed("done")

        class Timer(Probe):
            id = "t.timer"
            exclusive = True

            async def run(self, ctx: CheckContext) -> Outcome:
                overlap.append(set(running))
                return passed("timed")

        busy = [type(f"B{i}", (Busy,), {"id": f"t.b{i}"})() for i in range(4)]
        run = asyncio.run(run_checks(context(), [Timer(), *busy]))
        assert overlap == [set()] and len(run.findings) == 5

    def test_crash_becomes_error_and_blocks(self) -> None:
        """An exception in a check is an error finding that fails its gate."""

        class Broken(Probe):
            async def run(self, ctx: CheckContext) -> Outcome:
                raise KeyError("boom")

        run = asyncio.run(run_checks(context(), [Broken()]))
        assert run.findings[0].status is Status.ERROR and "boom" in run.findings[0].message
        assert not run.gates[1].passed

    def test_target_rules(self) -> None:
        """Checks skip targets they do not apply to; on advice targets a failure is advice with the reason."""

        class FlyOnly(Probe):
            id = "t.fly"
            targets = frozenset({Target.FLY})
            outcome = failed("bad")

        class Advice(Probe):
            id = "t.advice"
            advice_on = frozenset({Target.LOCAL})
            advice_reason = "does not matter locally"
            outcome = failed("bad")

        run = asyncio.run(run_checks(context(), [FlyOnly(), Advice()]))
        found = {f.id: f for f in run.findings}
        assert found["t.fly"].status is Status.SKIP
        assert (
            found["t.advice"].status is Status.ADVICE
            and found["t.advice"].advice_reason == "does not matter locally"
        )
        assert run.gates[1].passed

    def test_live_checks_skip_without_url(self) -> None:
        """Live checks are skipped when no URL is given."""

        class Live(Probe):
            kind = "live"

        run = asyncio.run(run_checks(context(), [Live()]))
        assert run.findings[0].status is Status.SKIP


class TestWaivers:
    WAIVER = '\n[[waivers]]\ncheck = "test.probe"\nreason = "accepted until the migration"\nexpires = {date}\n'

    def test_live_waiver(self) -> None:
        """A waiver before its expiry turns a failure into waived; the gate passes."""
        clock = FakeClock(dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
        probe = type("P", (Probe,), {"outcome": failed("bad")})()
        run = asyncio.run(
            run_checks(context(self.WAIVER.format(date="2026-12-01"), clock), [probe])
        )
        found = {f.id: f for f in run.findings}
        assert (
            found["test.probe"].status is Status.WAIVED
            and "accepted" in found["test.probe"].message
        )
        assert found["waivers.expired"].status is Status.PASS
        assert run.gates[1].passed

    def test_expired_waiver_fails(self) -> None:
        """An expired waiver waives nothing and fails gate 1 on its own."""
        clock = FakeClock(dt.datetime(2027, 1, 2, tzinfo=dt.UTC))
        probe = type("P", (Probe,), {"outcome": failed("bad")})()
        run = asyncio.run(
            run_checks(context(self.WAIVER.format(date="2026-12-01"), clock), [probe])
        )
        found = {f.id: f for f in run.findings}
        assert found["test.probe"].status is Status.FAIL
        assert (
            found["waivers.expired"].status is Status.FAIL
            and "2026-12-01" in found["waivers.expired"].details[0]
        )
        assert set(run.gates[1].failing) == {"test.probe", "waivers.expired"}

    def test_waiver_naming_no_check_fails(self) -> None:
        """A waiver for an id no check has (a typo) fails gate 1; one whose check passes is noted."""
        clock = FakeClock(dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
        extra = self.WAIVER.format(date="2026-12-01") + self.WAIVER.replace(
            "test.probe", "test.prob"
        ).format(date="2026-12-01")
        run = asyncio.run(run_checks(context(extra, clock), [Probe()]))
        found = {f.id: f for f in run.findings}
        assert found["waivers.expired"].status is Status.FAIL
        assert found["waivers.expired"].details == (
            "test.prob: no check has this id (see `tower check --list`)",
            "test.probe: passes now; the waiver can go",
        )
        assert found["test.probe"].status is Status.PASS and not run.gates[1].passed

    def test_waiver_for_another_environment_is_ignored(self) -> None:
        """A waiver limited to staging does not waive the production run."""
        clock = FakeClock(dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
        waiver = self.WAIVER.format(date="2026-12-01") + 'environments = ["staging"]\n'
        probe = type("P", (Probe,), {"outcome": failed("bad")})()
        ctx = context(waiver + "[environments.production]\n[environments.staging]\n", clock)
        ctx.environment = "production"
        run = asyncio.run(run_checks(ctx, [probe]))
        assert {f.id: f.status for f in run.findings}["test.probe"] is Status.FAIL
        ctx.environment = "staging"
        run = asyncio.run(run_checks(ctx, [probe]))
        assert {f.id: f.status for f in run.findings}["test.probe"] is Status.WAIVED

    def test_waiver_needs_reason_and_expiry(self) -> None:
        """A waiver without a reason or an expiry date is a spec error."""
        from controltower.exceptions import SpecError

        with pytest.raises(SpecError, match="expires"):
            parse_spec(SPEC + '\n[[waivers]]\ncheck = "x"\nreason = "because"\n')
        with pytest.raises(SpecError, match="reason"):
            parse_spec(SPEC + '\n[[waivers]]\ncheck = "x"\nexpires = 2026-01-01\n')


class TestScoring:
    def test_weights_and_statuses(self) -> None:
        """Passed and waived earn their severity weight, warnings half, advice and skips do not count."""
        findings = [
            finding("a", Status.PASS, severity=Severity.CRITICAL),  # 10 of 10
            finding("b", Status.FAIL, severity=Severity.HIGH),  # 0 of 5
            finding("c", Status.WARN, severity=Severity.LOW),  # 0.5 of 1
            finding("d", Status.WAIVED, severity=Severity.MEDIUM),  # 3 of 3
            finding("e", Status.ADVICE, severity=Severity.CRITICAL),
            finding("f", Status.SKIP, severity=Severity.CRITICAL),
        ]
        result = score(findings)
        assert result.overall == round(100 * 13.5 / 19, 1)
        assert result.categories["config"] == result.overall
        assert result.categories["security"] is None

    def test_gates(self) -> None:
        """A gate fails on failures and errors of its own checks, not on warnings."""
        verdicts = gate_verdicts(
            [
                finding("a", Status.WARN, Gate.CORE),
                finding("b", Status.ERROR, Gate.PRODUCTION),
                finding("c", Status.FAIL, Gate.DEPLOY),
            ]
        )
        assert [verdicts[g].passed for g in (1, 2, 3)] == [True, False, False]
        assert verdicts[2].failing == ("b",)

    def test_gate_verdicts_are_cumulative(self) -> None:
        """Gate N passes only when gates 1..N pass: a gate 1 NO-GO is NO-GO all the way up."""
        verdicts = gate_verdicts([finding("a", Status.FAIL, Gate.CORE)])
        assert [verdicts[g].passed for g in (1, 2, 3)] == [False, False, False]
        assert verdicts[2].failing == () and verdicts[2].blocked_by == (1,)
        assert verdicts[3].to_dict()["blocked_by"] == [1]

    def test_requested_gate_is_cumulative(self) -> None:
        """Requesting gate 2 needs gates 1 and 2; gate 3 does not matter."""

        class Deploy(Probe):
            id = "t.deploy"
            gate = Gate.DEPLOY
            outcome = warned("meh")

        class Bad3(Probe):
            id = "t.bad3"
            gate = Gate.DEPLOY
            outcome = failed("bad")

        run = asyncio.run(run_checks(context(), [Probe(), Deploy(), Bad3()], requested_gate=2))
        assert run.passed
        run.requested_gate = None
        assert not run.passed
