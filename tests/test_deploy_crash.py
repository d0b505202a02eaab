"""Done-when: ``kill -9`` of ``tower deploy`` at each step boundary, under constant load.

The deploying ``tower`` process kills itself (``TOWER_DEPLOY_KILL_AT``) at the
start of a step; the next command must find traffic on a healthy release and
finish or roll back the interrupted deploy. That command is ``tower deploy
status`` in another process for a few boundaries, and for the rest the
``Engine.recover()`` call every command starts with, run here (it saves a
process start per case).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from controltower.spec.deploy import Strategy
from tests.deploy_load import Load, LoadResult
from tests.deploy_support import RATE, LocalSite, assert_clean, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("deploy-crash")]


CANARY_BOUNDARIES = [
    ("gates", "rolled_back"),
    ("hooks:pre_deploy", "rolled_back"),
    ("start:1", "rolled_back"),
    ("health", "rolled_back"),
    ("hooks:pre_switch", "rolled_back"),
    ("route:50%", "rolled_back"),
    ("analyse:1s", "rolled_back"),
    ("route:100%", "rolled_back"),
    ("smoke", "rolled_back"),
    ("stop_old:all", "succeeded"),
    ("hooks:post_deploy", "succeeded"),
    ("done", "succeeded"),
]


CRASH_SPEC: dict[str, Any] = {
    "instances": 1,
    "steps": [("50%", "1s")],
    "conditions": [],
    "health_deadline": "20s",
}
BY_COMMAND = {"route:50%", "stop_old:all", "done"}


@pytest.fixture(scope="module")
def crash_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSite]:
    opened = LocalSite(tmp_path_factory.mktemp("crash"))
    opened.write(**CRASH_SPEC)
    try:
        first = opened.engine().deploy(version="1.0")
        assert first.status == "succeeded", first.reason
        yield opened
    finally:
        opened.close()


def kill_and_recover(
    site: LocalSite, label: str, *args: str, command: bool = True
) -> tuple[dict[str, object], LoadResult, str]:
    """``tower deploy`` SIGKILLs itself at ``label``; then the next command recovers.

    ``command``: recover with ``tower deploy status`` (another process); else with
    ``Engine.recover()`` in this one, which is what every command calls first.
    """
    load = Load(site.url, rate=RATE, timeout=10.0).start()
    try:
        wait_until(lambda: load.result.ok >= 100, what="load warmed up")
        killed = site.tower(
            "deploy", "--version", f"k-{label}", *args, env={"TOWER_DEPLOY_KILL_AT": label}
        )
        assert killed.returncode == -9, killed.stdout + killed.stderr
        if command:
            status = site.tower("deploy", "status", "--format", "json")
            assert status.returncode == 0, status.stdout + status.stderr
            data = json.loads(status.stdout)
        else:
            data = status_in_process(site)
        time.sleep(0.5)
    finally:
        result = load.stop()
    return data, result, killed.stdout


def status_in_process(site: LocalSite) -> dict[str, object]:
    engine = site.engine()
    recovered = engine.recover()
    active, current = engine.active(), engine.current()
    return {
        "recovered": [r.to_dict() for r in recovered],
        "active": active.to_dict() if active else None,
        "current": current.to_dict() if current else None,
        "holder": engine.lock.holder(),
        "routes": engine.driver.routes(),
    }


def assert_serving(site: LocalSite, data: dict[str, object]) -> str:
    """One release takes all traffic, it is the current one, and it answers."""
    current = data["current"]
    assert isinstance(current, dict)
    assert data["active"] is None and data["holder"] is None
    assert data["routes"] == {current["id"]: 1.0}
    response = httpx.get(site.url + "/api/health", timeout=10)
    assert response.status_code == 200
    assert response.headers["x-tower-release"] == current["id"]
    return str(current["id"])


class TestKilledAtEachStepBoundary:
    @pytest.mark.parametrize(("label", "outcome"), CANARY_BOUNDARIES)
    def test_canary(self, crash_site: LocalSite, label: str, outcome: str) -> None:
        """kill -9 at a step boundary: traffic stays on a healthy release; the next command ends it."""
        before = crash_site.engine().current()
        assert before is not None
        data, result, _ = kill_and_recover(
            crash_site, label, "--strategy", "canary", command=label in BY_COMMAND
        )
        assert_clean(result)
        killed = crash_site.engine().releases(1)[0]
        assert killed.version == f"k-{label}" and killed.status == outcome, killed.reason
        serving = assert_serving(crash_site, data)
        if outcome == "rolled_back":
            assert serving == before.id
            assert f"interrupted at {label}" in killed.reason
            assert crash_site.engine().driver.instances(killed.id) == []
        else:
            assert serving == killed.id
            assert crash_site.engine().driver.instances(before.id) == []
        recovered = [r["id"] for r in data["recovered"]]  # type: ignore[attr-defined]
        assert recovered == ([] if label == "done" else [killed.id])

    def test_during_rollback(self, crash_site: LocalSite) -> None:
        """Killed while rolling back an unhealthy release: the next command finishes the rollback."""
        before = crash_site.engine().current()
        assert before is not None
        crash_site.write(**{**CRASH_SPEC, "health_deadline": "3s"})
        try:
            data, result, _ = kill_and_recover(
                crash_site, "rolling_back", "--set", "APP_FAIL_HEALTH=1"
            )
        finally:
            crash_site.write(**CRASH_SPEC)
        assert_clean(result)
        killed = crash_site.engine().releases(1)[0]
        assert killed.status == "rolled_back"
        assert "failed readiness /api/health 2 times in a row" in killed.reason
        assert assert_serving(crash_site, data) == before.id
        assert result.releases[killed.id] == 0

    def test_rolling_after_an_old_instance_stopped(self, crash_site: LocalSite) -> None:
        """Killed mid-rolling, one old instance already gone: rollback restores the old count."""
        crash_site.write(
            strategy="rolling", instances=2, steps=[], conditions=[], health_deadline="20s"
        )
        try:
            grown = crash_site.engine().deploy(version="2.0", strategy=Strategy.IMMEDIATE)
            assert grown.status == "succeeded", grown.reason
            # plan: gates, hooks, start:1, health, pre_switch, route:50%, stop_old:1, start:1 (#7)
            data, result, _ = kill_and_recover(crash_site, "#7")
            assert_clean(result)
            killed = crash_site.engine().releases(1)[0]
            assert killed.status == "rolled_back"
            assert "interrupted at start:1" in killed.reason
            assert assert_serving(crash_site, data) == grown.id
            old = crash_site.engine().driver.instances(grown.id)
            assert len(old) == 2 and all(i.state == "running" for i in old)
            assert crash_site.engine().driver.instances(killed.id) == []
        finally:
            crash_site.write(**CRASH_SPEC)
