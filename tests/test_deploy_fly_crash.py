"""Done-when: ``kill -9`` of ``tower deploy`` at each step boundary of a Fly canary.

The deploying ``tower`` process (a real ``tower`` command against the local
Fly) kills itself at the start of a step (``TOWER_DEPLOY_KILL_AT``) while the
fake's proxy routes a steady stream of requests. The next command (``tower
deploy status`` in another process, or ``Engine.recover()`` here) must finish
or roll back the deploy, and no request may have gone to a machine that was
not healthy or found no machine at all.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy_support import run_tower
from tests.fakes.fly_api import FakeFly
from tests.fly_support import TOKEN, engine_for, fake_fly, machines_of, write_site

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("deploy-fly-crash")]

BOUNDARIES = [
    ("gates", "rolled_back"),
    ("start:1", "rolled_back"),
    ("health", "rolled_back"),
    ("hooks:pre_switch", "rolled_back"),
    ("route:50%", "rolled_back"),
    ("analyse:0.3s", "rolled_back"),
    ("route:100%", "rolled_back"),
    ("smoke", "rolled_back"),
    ("stop_old:all", "succeeded"),
    ("hooks:post_deploy", "succeeded"),
    ("done", "succeeded"),
]
BY_COMMAND = {"route:50%", "stop_old:all", "done"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, FakeFly]]:
    root = tmp_path_factory.mktemp("fly-crash")
    fly = fake_fly(checks_empty=0.5)
    fly.seed(1, image="registry.fly.io/shop:0")
    write_site(root, fly, instances=1)
    try:
        yield root, fly
    finally:
        fly.stop()


def tower(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_tower(root, *args, env={"FLY_API_TOKEN": TOKEN, **(env or {})})


class TestKilledAtEachStepBoundary:
    @pytest.mark.parametrize(("label", "outcome"), BOUNDARIES)
    def test_fly_canary(self, site: tuple[Path, FakeFly], label: str, outcome: str) -> None:
        """kill -9 at a boundary: every request reaches a healthy machine; the next command ends it."""
        root, fly = site
        fly.routed.clear()
        with fly.traffic(rate=30):
            killed = tower(
                root,
                "deploy",
                "--version",
                f"k-{label}",
                "--image",
                f"registry.fly.io/shop:{label.replace(':', '-').replace('%', '')}",
                env={"TOWER_DEPLOY_KILL_AT": label},
            )
            assert killed.returncode == -9, killed.stdout + killed.stderr
            if label in BY_COMMAND:
                status = tower(root, "deploy", "status", "--format", "json")
                assert status.returncode == 0, status.stdout + status.stderr
                json.loads(status.stdout)
            else:
                engine, _ = engine_for(root, fly, instances=1)
                engine.recover()
            time.sleep(0.5)
        engine, _ = engine_for(root, fly, instances=1)
        release = engine.releases(1)[0]
        assert release.version == f"k-{label}" and release.status == outcome, release.reason
        assert engine.active() is None
        current = engine.current()
        assert current is not None
        failed = [r for r in fly.routed if r.machine is None or r.status != 200]
        assert not failed, f"{len(failed)} of {len(fly.routed)} requests failed"
        assert len(fly.routed) > 30
        pool = fly.pool()
        assert pool and set(pool) <= set(fly.registered_healthy())
        serving = current.id if outcome == "succeeded" else engine.releases(2)[1].id
        assert release.status != "succeeded" or serving == release.id
        runs_as = {
            (m.config.get("metadata") or {}).get("tower_release")
            for m in fly.machines.values()
            if m.id in pool
        }
        assert len(runs_as) == 1
        if outcome == "rolled_back":
            assert machines_of(fly, release.id) == []
