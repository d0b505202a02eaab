"""Done-when: ``kill -9`` of ``tower deploy`` at step boundaries of a Vercel canary.

The deploying ``tower`` process (the real command against the local Vercel) kills
itself at the start of a step (``TOWER_DEPLOY_KILL_AT``) while the fake's
production domain serves a steady stream of requests. The next command (``tower
deploy status`` in another process, or ``Engine.recover()`` here) must finish or
roll back the deploy; production must end on a healthy deployment and no request
may have found none. Three boundaries keep CI time small: one mid rolling
release, one after the promote before the smoke checks, one after them.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy_support import run_tower
from tests.fakes.vercel_api import FakeVercel
from tests.vercel_support import ENVIRON, engine_for, fake_vercel, write_site

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("deploy-vercel-crash")]

BOUNDARIES = [
    ("analyse:0.4s", "rolled_back"),
    ("smoke", "rolled_back"),
    ("stop_old:all", "succeeded"),
]
BY_COMMAND = {"analyse:0.4s"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, FakeVercel]]:
    root = tmp_path_factory.mktemp("vercel-crash")
    vercel = fake_vercel()
    vercel.project.rolling = [{"targetPercentage": 25}, {"targetPercentage": 100}]
    vercel.seed("0")
    write_site(root, vercel)
    try:
        yield root, vercel
    finally:
        vercel.stop()


def tower(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_tower(root, *args, env={**ENVIRON, **(env or {})})


class TestKilledAtEachStepBoundary:
    @pytest.mark.parametrize(("label", "outcome"), BOUNDARIES)
    def test_vercel_canary(self, site: tuple[Path, FakeVercel], label: str, outcome: str) -> None:
        """kill -9 at a boundary: production stays on a healthy deployment; the next command ends it."""
        root, vercel = site
        vercel.served.clear()
        with vercel.traffic(rate=30):
            killed = tower(
                root,
                "deploy",
                "--version",
                f"k-{label}",
                env={"TOWER_DEPLOY_KILL_AT": label},
            )
            assert killed.returncode == -9, killed.stdout + killed.stderr
            if label in BY_COMMAND:
                status = tower(root, "deploy", "status", "--format", "json")
                assert status.returncode == 0, status.stdout + status.stderr
                json.loads(status.stdout)
            else:
                engine, _ = engine_for(root, vercel)
                engine.recover()
            time.sleep(0.3)
        engine, driver = engine_for(root, vercel)
        release = engine.releases(1)[0]
        assert release.version == f"k-{label}" and release.status == outcome, release.reason
        assert engine.active() is None
        production, rollout = vercel.production_of()
        assert rollout is None
        serving = vercel.deployments[production or ""]
        assert vercel.state(serving) == "READY" and vercel.answer(serving, "/api/health") == 200
        assert (serving.id == release.artifact) == (outcome == "succeeded")
        failed = [s for s in vercel.served if s.status != 200]
        assert not failed, f"{len(failed)} of {len(vercel.served)} requests failed"
        assert len(vercel.served) > 20
        assert list(driver.routes().values()) == [1.0]
