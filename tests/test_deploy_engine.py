"""The deploy engine on both stores, with an in-memory driver standing in for a platform."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from controltower.clock import utcnow
from controltower.deploy import Engine, analysis, dora
from controltower.deploy.drivers.base import (
    Artifact,
    Driver,
    Instance,
    Probe,
    ReleaseInfo,
    TargetMetrics,
)
from controltower.deploy.lock import DeployLock, lock_name
from controltower.exceptions import DeployError, LockHeld
from controltower.ingest.projects import ensure_project
from controltower.ingest.vitals import Beacon, store_vitals
from controltower.spec import parse_spec
from controltower.spec.deploy import AnalysisSpec
from controltower.store import Store
from controltower.store.models.core import AuditEvent
from controltower.store.models.deploy import Release
from controltower.store.models.ingest import ErrorEvent, ErrorIssue, Project
from controltower.store.models.notify import OutboxMessage
from controltower.testing import FakeClock

BASE = """
[service]
name = "shop"

[alerts.channels.ops]
type = "webhook"
url = "https://example.invalid/hook"

[alerts]
default_channels = ["ops"]

[deploy]
driver = "exec"
strategy = "{strategy}"
instances = 2
drain_timeout = "1s"

[deploy.exec]
deploy = "true"
switch = "true"

[deploy.health]
consecutive = 2
deadline = "5s"
interval = "100ms"

[deploy.analysis]
conditions = ["error_rate < 5%", "p95 < 300ms"]
interval = "1s"
min_requests = 10

[[deploy.steps]]
weight = "10%"
pause = "1s"

[[deploy.steps]]
weight = "50%"
pause = "1s"
"""


class MemoryDriver(Driver):
    """Instances are dict entries; ``healthy``/``metrics`` per version say how they behave."""

    name = "memory"

    def __init__(self) -> None:
        self.items: dict[str, Instance] = {}
        self.weights: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self.unhealthy: set[str] = set()
        self.bad_metrics: dict[str, TargetMetrics] = {}
        self.definite: set[str] = set()
        self.pruned: set[str] = set()
        self.counter = 0
        self.on_metrics: Any = None

    def start(self, release: ReleaseInfo, count: int) -> list[Instance]:
        made = []
        for _ in range(count):
            self.counter += 1
            instance = Instance(
                f"{release.id}-{self.counter}",
                release.id,
                release.version,
                "running",
                detail={"artifact": release.artifact},
            )
            self.items[instance.id] = instance
            made.append(instance)
        return made

    def instances(self, release_id: str | None = None) -> list[Instance]:
        return [i for i in self.items.values() if release_id in (None, i.release)]

    def probe(self, instance: Instance, path: str, timeout: float) -> Probe:
        if instance.version in self.definite:
            return Probe(False, f"GET {path}: 503", retryable=False)
        ok = instance.version not in self.unhealthy
        return Probe(ok, f"GET {path}: {200 if ok else 503}")

    def artifact(self, release: ReleaseInfo) -> Artifact:
        digest = hashlib.sha256(release.version.encode()).hexdigest()
        return Artifact("image", f"registry.example/shop@sha256:{digest}", f"sha256:{digest}", 1234)

    def has_artifact(self, ref: str) -> bool:
        return ref not in self.pruned

    def route(self, weights: dict[str, float]) -> None:
        self.weights = dict(weights)
        self.history.append(dict(weights))

    def routes(self) -> dict[str, float]:
        return dict(self.weights)

    def stop(
        self,
        release_id: str,
        *,
        count: int = 0,
        ids: Sequence[str] = (),
        drain: float = 30.0,
        after: float = 0.0,
    ) -> None:
        if after:
            return
        chosen = [
            i for i in self.items.values() if i.release == release_id and (not ids or i.id in ids)
        ]
        for instance in chosen[: count or len(chosen)]:
            del self.items[instance.id]

    def metrics(self, release_id: str, window: float) -> TargetMetrics | None:
        if self.on_metrics is not None:
            self.on_metrics(release_id, window)
        version = next((i.version for i in self.items.values() if i.release == release_id), "")
        return self.bad_metrics.get(version, TargetMetrics(100, 0, 0.0, 0.01, 0.05, 0.08))


def make(
    store: Store,
    tmp_path: Path,
    strategy: str = "canary",
    extra: str = "",
    driver: MemoryDriver | None = None,
) -> tuple[Engine, MemoryDriver]:
    spec = parse_spec(
        BASE.replace("{strategy}", strategy) + extra, source=str(tmp_path / "tower.toml")
    )
    memory = driver or MemoryDriver()
    engine = Engine(spec, store, memory, root=tmp_path, clock=FakeClock(), actor="tester")
    return engine, memory


class TestDeploy:
    def test_first_deploy_is_immediate_and_succeeds(self, store: Store, tmp_path: Path) -> None:
        """With nothing serving, a canary spec deploys at once and the release takes 100%."""
        engine, driver = make(store, tmp_path)
        release = engine.deploy(version="1.0")
        assert release.status == "succeeded"
        assert driver.weights == {release.id: 1.0}
        assert [s.state for s in engine.show(release.id).steps][-1] == "succeeded"

    def test_canary_walks_the_steps(self, store: Store, tmp_path: Path) -> None:
        """A second deploy shifts traffic 10% -> 50% -> 100% and stops the old release."""
        engine, driver = make(store, tmp_path)
        first = engine.deploy(version="1.0")
        second = engine.deploy(version="2.0")
        assert second.status == "succeeded", second.reason
        assert driver.history[-3:] == [
            {second.id: 0.1, first.id: 0.9},
            {second.id: 0.5, first.id: 0.5},
            {second.id: 1.0},
        ]
        assert not driver.instances(first.id)
        assert engine.current() is not None and engine.current().id == second.id  # type: ignore[union-attr]

    def test_health_failure_never_routes(self, store: Store, tmp_path: Path) -> None:
        """A release failing readiness is rolled back before any traffic reaches it."""
        engine, driver = make(store, tmp_path)
        first = engine.deploy(version="1.0")
        driver.unhealthy.add("2.0")
        second = engine.deploy(version="2.0")
        assert second.status == "rolled_back"
        assert "passed readiness /api/health 0 of 2" in second.reason
        assert all(second.id not in weights for weights in driver.history)
        assert driver.weights == {first.id: 1.0}
        assert not driver.instances(second.id)

    def test_analysis_failure_names_condition_and_value(self, store: Store, tmp_path: Path) -> None:
        """A canary whose error rate breaks the condition is rolled back with the observed value."""
        engine, driver = make(store, tmp_path)
        first = engine.deploy(version="1.0")
        driver.bad_metrics["2.0"] = TargetMetrics(200, 40, 0.2, 0.01, 0.05, 0.1)
        second = engine.deploy(version="2.0")
        assert second.status == "rolled_back"
        assert "error_rate < 5%: observed 20%" in second.reason
        assert driver.weights == {first.id: 1.0}

    def test_failure_limit_tolerates_one_bad_verdict(self, store: Store, tmp_path: Path) -> None:
        """With failure_limit = 2, one failed verdict is logged and the canary goes on."""
        engine, driver = make(store, tmp_path)
        engine.spec = engine.spec.model_copy(
            update={
                "deploy": engine.spec.deploy.model_copy(
                    update={
                        "analysis": engine.spec.deploy.analysis.model_copy(
                            update={"failure_limit": 2}
                        )
                    }
                )
            }
        )
        engine.deploy(version="1.0")
        bad = TargetMetrics(200, 40, 0.2, 0.01, 0.05, 0.1)
        calls = {"n": 0}
        original = driver.metrics

        def metrics(release_id: str, window: float) -> TargetMetrics | None:
            calls["n"] += 1  # the first call is the new release's first verdict
            return bad if calls["n"] == 1 else original(release_id, window)

        driver.metrics = metrics  # type: ignore[method-assign]
        second = engine.deploy(version="2.0")
        assert second.status == "succeeded", second.reason
        log = [s.message for s in engine.show(second.id).steps if s.state == "analyse"]
        assert log[0].startswith("fail: error_rate < 5%: observed 20%")
        assert any(m.startswith("pass:") for m in log[1:])

    def test_too_little_traffic_pauses_until_promote(self, store: Store, tmp_path: Path) -> None:
        """An inconclusive analysis pauses the canary; a promote request moves it on."""
        engine, driver = make(store, tmp_path)
        engine.deploy(version="1.0")
        driver.bad_metrics["2.0"] = TargetMetrics(3, 0, 0.0, 0.01, 0.02, 0.03)
        calls = {"n": 0}
        original = engine._wait

        def wait(release_id: str, seconds: float) -> str:
            calls["n"] += 1
            with store.session() as session:
                state = session.scalar(select(Release.state).where(Release.id == release_id))
            if state == "paused":
                with store.session() as session:
                    row = session.get(Release, release_id)
                    assert row is not None
                    row.request = "promote"
            return original(release_id, seconds)

        engine._wait = wait  # type: ignore[method-assign]
        second = engine.deploy(version="2.0")
        assert second.status == "succeeded"
        log = [s.message for s in engine.show(second.id).steps]
        assert any("inconclusive: 3 requests" in m for m in log)
        assert "promoted by request" in log

    def test_hook_failure_aborts(self, store: Store, tmp_path: Path) -> None:
        """A pre-deploy hook exiting non-zero rolls back and quotes its exit code."""
        extra = '\n[deploy.hooks]\npre_deploy = ["echo checking $TOWER_VERSION; exit 3"]\non_rollback = ["echo $TOWER_RELEASE_ID > rolled.txt"]\n'
        engine, _driver = make(store, tmp_path, extra=extra)
        release = engine.deploy(version="1.0")
        assert release.status == "failed"
        assert "hooks:pre_deploy: " in release.reason and "exited 3" in release.reason
        assert "checking 1.0" in release.reason
        assert (tmp_path / "rolled.txt").read_text().strip() == release.id

    def test_notifications_and_audit(self, store: Store, tmp_path: Path) -> None:
        """Start, success and rollback are audited and queued for the alert channels."""
        engine, driver = make(store, tmp_path)
        engine.deploy(version="1.0")
        driver.unhealthy.add("2.0")
        bad = engine.deploy(version="2.0")
        with store.session() as session:
            kinds = [
                row.kind
                for row in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
            ]
            actions = set(session.scalars(select(AuditEvent.action)))
            keys = set(session.scalars(select(OutboxMessage.key)))
        assert kinds == [
            "deploy.started",
            "deploy.succeeded",
            "deploy.started",
            "deploy.rolled_back",
        ]
        assert f"deploy:{bad.id}:rolled_back:ops" in keys
        assert {
            "deploy.started",
            "deploy.succeeded",
            "deploy.rolled_back",
            "deploy.rolling_back",
        } <= actions


class TestEveryStrategyAnalysed:
    BAD = TargetMetrics(200, 40, 0.2, 0.01, 0.05, 0.1)

    @pytest.mark.parametrize("strategy", ["rolling", "bluegreen", "canary"])
    def test_bad_release_is_rolled_back(self, store: Store, tmp_path: Path, strategy: str) -> None:
        """Rolling, blue-green and canary all judge the new release and roll a bad one back."""
        engine, driver = make(store, tmp_path, strategy=strategy)
        first = engine.deploy(version="1.0")
        driver.bad_metrics["2.0"] = self.BAD
        second = engine.deploy(version="2.0")
        assert second.status == "rolled_back", second.reason
        assert "error_rate < 5%: observed 20%" in second.reason
        assert driver.weights == {first.id: 1.0}
        assert any(s.state == "analyse" for s in engine.show(second.id).steps)

    def test_rolling_analyses_every_batch(self, store: Store, tmp_path: Path) -> None:
        """A good rolling deploy is judged after each batch's traffic share, before old ones stop."""
        engine, _ = make(store, tmp_path, strategy="rolling")
        engine.deploy(version="1.0")
        second = engine.deploy(version="2.0")
        assert second.status == "succeeded", second.reason
        states = [s.state for s in engine.show(second.id).steps if s.message == "started"]
        assert states.count("analyse:1s") == 2
        assert states.index("analyse:1s") < states.index("stop_old:1")

    def test_last_window_of_each_step_is_judged_despite_timer_drift(
        self, store: Store, tmp_path: Path
    ) -> None:
        """A step of two windows gets two verdicts even when each verdict takes time."""
        engine, driver = make(store, tmp_path)
        engine.spec = _steps(engine, pause=2.0)
        engine.deploy(version="1.0")
        clock = engine.clock
        assert isinstance(clock, FakeClock)
        driver.on_metrics = lambda release_id, window: clock.advance(0.004)
        second = engine.deploy(version="2.0")
        assert second.status == "succeeded", second.reason
        log = engine.show(second.id).steps
        verdicts = [s for s in log if s.state == "analyse" and s.message.startswith("pass")]
        assert len(verdicts) == 4  # two steps x two windows

    def test_failure_in_the_last_window_is_caught(self, store: Store, tmp_path: Path) -> None:
        """Errors that start in a step's last window (late timer and all) roll the release back."""
        engine, driver = make(store, tmp_path)
        engine.spec = _steps(engine, pause=2.0)
        engine.deploy(version="1.0")
        clock = engine.clock
        assert isinstance(clock, FakeClock)
        calls = {"n": 0}
        original = driver.metrics

        def metrics(release_id: str, window: float) -> TargetMetrics | None:
            clock.advance(0.004)  # a verdict takes time: the timer wakes late
            found = original(release_id, window)
            if any(i.version == "2.0" and i.release == release_id for i in driver.items.values()):
                calls["n"] += 1
                if calls["n"] == 2:  # the second (last) window of the first step
                    return self.BAD
            return found

        driver.metrics = metrics  # type: ignore[method-assign]
        second = engine.deploy(version="2.0")
        assert second.status == "rolled_back", second.reason
        assert second.reason.startswith("analyse:2s: analysis failed")


class TestInconclusive:
    NO_TRAFFIC = TargetMetrics(0, 0, 0.0)

    def test_no_traffic_pauses_visibly_at_the_limit(self, store: Store, tmp_path: Path) -> None:
        """With no traffic the step ends paused after inconclusive_limit, not waiting forever."""
        engine, driver = make(store, tmp_path)
        engine.spec = _analysis(engine, inconclusive_limit="3 windows")
        first = engine.deploy(version="1.0")
        driver.bad_metrics["2.0"] = self.NO_TRAFFIC
        started = engine.clock.monotonic()
        second = engine.deploy(version="2.0")
        took = engine.clock.monotonic() - started
        assert second.status == "running" and second.state == "paused"
        assert "inconclusive_limit reached" in engine.show(second.id).steps[-1].message
        assert took < 3 * 1.0 + 1.0
        assert driver.weights == {second.id: 0.1, first.id: 0.9}
        assert engine.recover() == []  # a visible pause waits for a decision
        del driver.bad_metrics["2.0"]  # traffic arrives for the next step
        promoted = engine.request("promote")
        assert promoted.status == "succeeded", promoted.reason

    def test_no_traffic_rolls_back_when_configured(self, store: Store, tmp_path: Path) -> None:
        """on_inconclusive = "rollback" ends the deploy rolled back at the limit."""
        engine, driver = make(store, tmp_path)
        engine.spec = _analysis(engine, inconclusive_limit="2s", on_inconclusive="rollback")
        first = engine.deploy(version="1.0")
        driver.bad_metrics["2.0"] = self.NO_TRAFFIC
        second = engine.deploy(version="2.0")
        assert second.status == "rolled_back"
        assert "inconclusive_limit reached" in second.reason
        assert driver.weights == {first.id: 1.0}

    def test_limit_is_a_duration_or_a_count(self) -> None:
        """`inconclusive_limit` takes windows (5, "5 windows") or a duration ("2m")."""
        spec = parse_spec(BASE.replace("{strategy}", "canary"))
        analysis = spec.deploy.analysis
        assert analysis.inconclusive_seconds() == 5 * analysis.interval
        assert (
            analysis.model_copy(update={"inconclusive_limit": "2m"}).inconclusive_seconds() == 120
        )


class TestHealthFailsFast:
    def test_definite_failures_reject_within_consecutive_probes(
        self, store: Store, tmp_path: Path
    ) -> None:
        """`consecutive` definite failing answers reject the release long before the deadline."""
        engine, driver = make(store, tmp_path)
        engine.deploy(version="1.0")
        driver.definite.add("2.0")
        started = engine.clock.monotonic()
        second = engine.deploy(version="2.0")
        took = engine.clock.monotonic() - started
        assert second.status == "rolled_back"
        assert "failed readiness /api/health 2 times in a row" in second.reason
        assert "not waiting for the 5s deadline" in second.reason
        assert took < 2 * 0.1 + 1.0

    def test_slow_starter_still_gets_the_deadline(self, store: Store, tmp_path: Path) -> None:
        """Retryable failures (no answer yet) keep polling until the deadline."""
        engine, driver = make(store, tmp_path)
        engine.deploy(version="1.0")
        driver.unhealthy.add("2.0")
        started = engine.clock.monotonic()
        second = engine.deploy(version="2.0")
        assert second.status == "rolled_back"
        assert engine.clock.monotonic() - started >= 5.0


class TestArtifacts:
    def test_release_records_its_artifact(self, store: Store, tmp_path: Path) -> None:
        """A deploy records the driver's artifact: reference, kind, digest and size."""
        engine, driver = make(store, tmp_path)
        release = engine.deploy(version="1.0")
        assert release.artifact.startswith("registry.example/shop@sha256:")
        assert release.artifact_digest == release.artifact.split("@")[1]
        assert release.artifact_size == 1234 and release.artifact_kind == "image"
        data = engine.show(release.id).to_dict()
        assert data["artifact"]["digest"] == release.artifact_digest
        assert any(s.state == "artifact" for s in engine.show(release.id).steps)
        assert driver.instances(release.id)[0].detail["artifact"] == release.artifact

    def test_rollback_runs_the_previous_artifact(self, store: Store, tmp_path: Path) -> None:
        """`tower rollback` starts the earlier release's artifact, not a new build."""
        engine, driver = make(store, tmp_path, strategy="immediate")
        first = engine.deploy(version="1.0")
        engine.deploy(version="2.0")
        back = engine.rollback()
        assert back.artifact == first.artifact and back.artifact_digest == first.artifact_digest
        (serving,) = driver.weights
        assert {i.detail["artifact"] for i in driver.instances(serving)} == {first.artifact}

    def test_rollback_to_a_pruned_artifact_is_refused(self, store: Store, tmp_path: Path) -> None:
        """When retention deleted the artifact, rollback says so before touching anything."""
        engine, driver = make(store, tmp_path, strategy="immediate")
        first = engine.deploy(version="1.0")
        engine.deploy(version="2.0")
        driver.pruned.add(first.artifact)
        with pytest.raises(DeployError, match="is no longer kept"):
            engine.rollback()


class TestIngestConditions:
    def test_new_issue_from_the_release_rolls_it_back(self, store: Store, tmp_path: Path) -> None:
        """`new_issues == 0` fails when the new release's SDK reported a new issue."""
        engine, driver = make(store, tmp_path)
        engine.spec = _analysis(engine, conditions=["error_rate < 5%", "new_issues == 0"])
        engine.deploy(version="1.0")
        original = driver.metrics

        def metrics(release_id: str, window: float) -> TargetMetrics | None:
            version = next(
                (i.version for i in driver.items.values() if i.release == release_id), ""
            )
            if version == "2.0":
                _error_event(store, "2.0", engine.clock.now())
            return original(release_id, window)

        driver.metrics = metrics  # type: ignore[method-assign]
        second = engine.deploy(version="2.0")
        assert second.status == "rolled_back"
        assert "new_issues == 0: observed 1" in second.reason

    def test_error_events_rate_is_per_request(self, store: Store, tmp_path: Path) -> None:
        """`error_events_rate` is the release's error events over its requests in the window."""
        engine, driver = make(store, tmp_path)
        engine.spec = _analysis(engine, conditions=["error_events_rate < 1%"])
        engine.deploy(version="1.0")
        original = driver.metrics

        def metrics(release_id: str, window: float) -> TargetMetrics | None:
            if any(i.version == "2.0" and i.release == release_id for i in driver.items.values()):
                for _ in range(3):
                    _error_event(store, "2.0", engine.clock.now())
            return original(release_id, window)

        driver.metrics = metrics  # type: ignore[method-assign]
        second = engine.deploy(version="2.0")
        assert second.status == "rolled_back"
        assert "error_events_rate < 1%: observed 3%" in second.reason


class TestVitalsConditions:
    def _beacons(self, store: Store, release: str, lcp: float, count: int, at: Any) -> None:
        project = ensure_project(store, "shop")
        beacons = [Beacon("LCP", lcp, f"v4-{n}", page="/", release=release) for n in range(count)]
        store_vitals(store, project.id, beacons, at)

    def test_slow_pages_of_the_release_roll_it_back(self, store: Store, tmp_path: Path) -> None:
        """`vitals.lcp.p75 < 2500` fails when the new release's beacons report a slow LCP."""
        engine, driver = make(store, tmp_path)
        engine.spec = _analysis(
            engine, conditions=["error_rate < 5%", "vitals.lcp.p75 < 2500"], min_vitals_samples=5
        )
        engine.deploy(version="1.0")
        original = driver.metrics

        def metrics(release_id: str, window: float) -> TargetMetrics | None:
            if any(i.version == "2.0" and i.release == release_id for i in driver.items.values()):
                self._beacons(store, "2.0", 4000.0, 5, engine.clock.now())
            return original(release_id, window)

        driver.metrics = metrics  # type: ignore[method-assign]
        second = engine.deploy(version="2.0")
        assert second.status == "rolled_back"
        assert "vitals.lcp.p75 < 2500: observed 4000" in second.reason

    def test_too_few_samples_is_inconclusive(self, store: Store) -> None:
        """Below min_vitals_samples the metric has no value: the verdict waits, not passes."""
        now = utcnow()
        self._beacons(store, "2.0", 900.0, 3, now)
        values = analysis.vitals_values(store, ["2.0"], window_since=now, min_samples=5)
        assert values == {"vitals": {}}
        spec = AnalysisSpec(conditions=["vitals.lcp.p75 < 2500"], min_requests=0)
        verdict = analysis.evaluate(spec, values)
        assert verdict.outcome == analysis.INCONCLUSIVE and "vitals.lcp.p75" in verdict.message
        enough = analysis.vitals_values(store, ["2.0"], window_since=now, min_samples=3)
        assert analysis.evaluate(spec, enough).outcome == analysis.PASS


class TestReconcilerResume:
    def test_dead_deploy_during_analysis_is_analysed_on(self, store: Store, tmp_path: Path) -> None:
        """The reconciler resumes a canary that died while analysed: good ones finish."""
        _engine, driver, _first, second = TestLockAndRecovery()._interrupt(
            store, tmp_path, "analyse:1s"
        )
        fresh, _ = make(store, tmp_path, driver=driver)
        fresh.recover(resume_analysis=True)
        assert fresh.show(second).status == "succeeded"
        assert any(s.state == "recover" for s in fresh.show(second).steps)

    def test_dead_bad_canary_is_rolled_back_after_a_verdict(
        self, store: Store, tmp_path: Path
    ) -> None:
        """A bad canary resumed by the reconciler fails its next verdict and is rolled back."""
        _engine, driver, first, second = TestLockAndRecovery()._interrupt(
            store, tmp_path, "analyse:1s"
        )
        driver.bad_metrics["2.0"] = TestEveryStrategyAnalysed.BAD
        fresh, _ = make(store, tmp_path, driver=driver)
        fresh.recover(resume_analysis=True)
        assert fresh.show(second).status == "rolled_back"
        assert "error_rate < 5%" in fresh.show(second).reason
        assert driver.weights == {first: 1.0}


def _steps(engine: Engine, pause: float) -> Any:
    deploy = engine.spec.deploy
    steps = [s.model_copy(update={"pause": pause}) for s in deploy.steps]
    return engine.spec.model_copy(update={"deploy": deploy.model_copy(update={"steps": steps})})


def _analysis(engine: Engine, **changes: Any) -> Any:
    spec = engine.spec
    analysis = spec.deploy.analysis.model_validate({**spec.deploy.analysis.model_dump(), **changes})
    return spec.model_copy(update={"deploy": spec.deploy.model_copy(update={"analysis": analysis})})


def _error_event(store: Store, release: str, at: Any) -> None:
    with store.session() as session:
        project = session.scalar(select(Project).where(Project.name == "shop"))
        if project is None:
            project = Project(name="shop", public_key=os.urandom(8).hex())
            session.add(project)
            session.flush()
        issue = ErrorIssue(
            project_id=project.id,
            fingerprint=os.urandom(8).hex(),
            title="TypeError",
            first_seen=at,
            last_seen=at,
            count=1,
        )
        session.add(issue)
        session.flush()
        session.add(
            ErrorEvent(
                project_id=project.id,
                issue_id=issue.id,
                event_id=os.urandom(16).hex(),
                timestamp=at,
                received_at=at,
                level="error",
                release=release,
            )
        )


class TestRollback:
    def test_rollback_to_previous_good(self, store: Store, tmp_path: Path) -> None:
        """`tower rollback` goes back to the release before the current one, health-gated."""
        engine, driver = make(store, tmp_path, strategy="immediate")
        first = engine.deploy(version="1.0")
        engine.deploy(version="2.0")
        back = engine.rollback()
        assert back.status == "succeeded" and back.kind == "rollback" and back.version == "1.0"
        assert list(driver.weights.values()) == [1.0]
        assert driver.instances(next(iter(driver.weights)))[0].version == "1.0"
        assert first.id != back.id

    def test_rollback_reuses_warm_bluegreen(self, store: Store, tmp_path: Path) -> None:
        """After a blue-green deploy the old release stays warm; rollback switches to it without starting anything."""
        engine, driver = make(store, tmp_path, strategy="bluegreen")
        first = engine.deploy(version="1.0")
        engine.deploy(version="2.0")
        started = driver.counter
        back = engine.rollback()
        assert back.status == "succeeded"
        assert driver.counter == started
        assert driver.weights == {first.id: 1.0}

    def test_nothing_to_roll_back(self, store: Store, tmp_path: Path) -> None:
        """Rolling back with one release says there is nothing before it."""
        engine, _ = make(store, tmp_path)
        engine.deploy(version="1.0")
        with pytest.raises(DeployError, match="no good release before"):
            engine.rollback()


class TestLockAndRecovery:
    def test_one_deploy_at_a_time(self, store: Store, tmp_path: Path) -> None:
        """A lock held by a live process refuses a second deploy and names the holder."""
        engine, _ = make(store, tmp_path)
        holder = DeployLock(
            store, lock_name("shop", "default"), owner=f"ci@{socket.gethostname()}:{os.getpid()}"
        )
        holder.acquire()
        with pytest.raises(LockHeld, match=str(os.getpid())):
            engine.deploy(version="1.0")

    def test_stale_lock_is_taken_over(self, store: Store, tmp_path: Path) -> None:
        """A lock whose holder process is gone does not block the next deploy."""
        engine, _ = make(store, tmp_path)
        DeployLock(
            store, lock_name("shop", "default"), owner=f"ci@{socket.gethostname()}:999999999"
        ).acquire()
        assert engine.deploy(version="1.0").status == "succeeded"

    def _interrupt(
        self, store: Store, tmp_path: Path, stop_at: str
    ) -> tuple[Engine, MemoryDriver, str, str]:
        engine, driver = make(store, tmp_path)
        first = engine.deploy(version="1.0")

        class Crash(BaseException):
            pass

        def crash(label: str, index: int | None = None) -> None:
            if label == stop_at:
                raise Crash

        engine._kill_point = crash  # type: ignore[method-assign]
        with pytest.raises(Crash):
            engine.deploy(version="2.0")
        engine.lock.release()
        with store.session() as session:
            second = session.scalar(select(Release.id).where(Release.status == "running"))
        assert second is not None
        return engine, driver, first.id, second

    def test_interrupted_before_commit_rolls_back(self, store: Store, tmp_path: Path) -> None:
        """A deploy that died mid-canary is rolled back by the next command."""
        _engine, driver, first, second = self._interrupt(store, tmp_path, "route:50%")
        fresh, _ = make(store, tmp_path, driver=driver)
        recovered = fresh.recover()
        assert [r.id for r in recovered] == [second]
        assert fresh.show(second).status == "rolled_back"
        assert "interrupted at route:50%" in fresh.show(second).reason
        assert driver.weights == {first: 1.0}

    def test_interrupted_after_smoke_is_finished(self, store: Store, tmp_path: Path) -> None:
        """A deploy that died after its smoke checks passed is resumed to success."""
        _engine, driver, first, second = self._interrupt(store, tmp_path, "stop_old:all")
        fresh, _ = make(store, tmp_path, driver=driver)
        fresh.recover()
        assert fresh.show(second).status == "succeeded"
        assert driver.weights == {second: 1.0}
        assert not driver.instances(first)

    def test_recover_leaves_a_live_deploy_alone(self, store: Store, tmp_path: Path) -> None:
        """Recovery does nothing while the lock's holder is alive."""
        _engine, driver, _first, second = self._interrupt(store, tmp_path, "route:50%")
        DeployLock(
            store, lock_name("shop", "default"), owner=f"x@{socket.gethostname()}:{os.getpid()}"
        ).acquire()
        fresh, _ = make(store, tmp_path, driver=driver)
        assert fresh.recover() == []
        assert fresh.show(second).status == "running"


class TestDora:
    def test_figures_from_history(self, store: Store, tmp_path: Path) -> None:
        """Frequency, failure rate, time to restore and lead time come from releases."""
        engine, driver = make(store, tmp_path, strategy="immediate")
        engine.deploy(version="1.0")
        engine.deploy(version="2.0")
        driver.unhealthy.add("3.0")
        engine.deploy(version="3.0")
        engine.rollback()
        releases = engine.releases()
        figures = dora(releases, now=engine.clock.now(), days=1)
        assert figures.deploys == 2  # 3.0 never served traffic: refused, not a change
        assert figures.refused == 1
        assert figures.succeeded == 2
        assert figures.failed_changes == 1  # 2.0, undone by `tower rollback`
        assert figures.change_failure_rate == pytest.approx(1 / 2)
        assert figures.deploys_per_day == 2
        assert figures.time_to_restore is not None and figures.time_to_restore >= 0

    def test_only_a_release_that_served_is_a_failed_change(
        self, store: Store, tmp_path: Path
    ) -> None:
        """Rolled back after serving: a failed change; refused at health: counted apart."""
        engine, driver = make(store, tmp_path)
        engine.deploy(version="1.0")
        driver.bad_metrics["2.0"] = TargetMetrics(200, 40, 0.2, 0.01, 0.05, 0.1)
        served = engine.deploy(version="2.0")
        driver.unhealthy.add("3.0")
        refused = engine.deploy(version="3.0")
        assert served.status == refused.status == "rolled_back"
        views = {r.id: r for r in engine.releases()}
        assert views[served.id].served_traffic is True
        assert views[refused.id].served_traffic is False
        figures = dora(engine.releases(), now=engine.clock.now(), days=1)
        assert (figures.deploys, figures.failed_changes, figures.refused) == (2, 1, 1)

    def test_an_incident_while_a_release_serves_makes_it_a_failed_change(
        self, store: Store, tmp_path: Path
    ) -> None:
        """A release that succeeded and was followed by an incident is a failed change."""
        engine, _ = make(store, tmp_path, strategy="immediate")
        engine.deploy(version="1.0")
        clock = engine.clock
        assert isinstance(clock, FakeClock)
        clock.advance(60)
        second = engine.deploy(version="2.0")
        assert second.finished_at is not None
        incident = second.finished_at + timedelta(seconds=30)
        before = dora(engine.releases(), now=clock.now(), days=1)
        after = dora(engine.releases(), now=clock.now(), days=1, incidents=[incident])
        assert (before.failed_changes, after.failed_changes) == (0, 1)


def _ids(rows: list[Any]) -> list[str]:
    return [r.id for r in rows]
