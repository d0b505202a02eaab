"""The deploy engine on both stores, with an in-memory driver standing in for a platform."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from controltower.deploy import Engine, dora
from controltower.deploy.drivers.base import Driver, Instance, Probe, ReleaseInfo, TargetMetrics
from controltower.deploy.lock import DeployLock, lock_name
from controltower.exceptions import DeployError, LockHeld
from controltower.spec import parse_spec
from controltower.store import Store
from controltower.store.models.core import AuditEvent
from controltower.store.models.deploy import Release
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
        self.counter = 0

    def start(self, release: ReleaseInfo, count: int) -> list[Instance]:
        made = []
        for _ in range(count):
            self.counter += 1
            instance = Instance(
                f"{release.id}-{self.counter}", release.id, release.version, "running"
            )
            self.items[instance.id] = instance
            made.append(instance)
        return made

    def instances(self, release_id: str | None = None) -> list[Instance]:
        return [i for i in self.items.values() if release_id in (None, i.release)]

    def probe(self, instance: Instance, path: str, timeout: float) -> Probe:
        ok = instance.version not in self.unhealthy
        return Probe(ok, f"GET {path}: {200 if ok else 503}")

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
        assert figures.deploys == 3
        assert figures.succeeded == 2
        assert figures.failed_changes == 2  # 3.0 rolled back, 2.0 undone by `tower rollback`
        assert figures.change_failure_rate == pytest.approx(2 / 3)
        assert figures.deploys_per_day == 2
        assert figures.time_to_restore is not None and figures.time_to_restore >= 0


def _ids(rows: list[Any]) -> list[str]:
    return [r.id for r in rows]
