"""Issue 14's Done-when on the local driver: artifacts, analysis of every strategy, the reconciler.

The example app is copied into the test's folder, so a "build" is a change of
its ``build.txt`` (``/api/build`` answers ``build <name>``). A constant load of
200 requests/s runs through tower's proxy and records every answer.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from controltower.deploy import ReleaseView
from controltower.spec.deploy import Strategy
from tests.conftest import EXAMPLE_APP, free_port
from tests.deploy_load import Load, LoadResult
from tests.deploy_support import RATE, TOWER, LocalSite, assert_clean, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("deploy-releases")]


def copy_app(root: Path, build: str) -> Path:
    app = root / "app"
    shutil.copytree(EXAMPLE_APP, app, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    (app / "build.txt").write_text(build)
    return app


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSite]:
    root = tmp_path_factory.mktemp("releases")
    opened = LocalSite(root, app=copy_app(root, "A"))
    opened.write()
    try:
        first = opened.engine().deploy(version="1.0")
        assert first.status == "succeeded", first.reason
        yield opened
    finally:
        opened.close()


def build_of(site: LocalSite) -> str:
    return httpx.get(site.url + "/api/build", timeout=10).text.strip()


def seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def step_at(release: ReleaseView, state: str, starts: str = "") -> datetime:
    return next(s.at for s in release.steps if s.state == state and s.message.startswith(starts))


class TestRollbackRunsThePreviousArtifact:
    def test_build_a_then_b_then_rollback_serves_a(self, site: LocalSite) -> None:
        """Build A, build B, `tower rollback`: every answer after it is build A, none failed.

        The working folder holds a third build by then; the rollback runs release
        1.0's snapshot, not the folder.
        """
        site.write(strategy="immediate")
        (site.app / "build.txt").write_text("A")
        first = site.engine().deploy(version="a")
        assert first.status == "succeeded", first.reason
        (site.app / "build.txt").write_text("B")
        second = site.engine().deploy(version="b")
        assert second.status == "succeeded", second.reason
        assert build_of(site) == "build B"
        assert first.artifact_digest != second.artifact_digest
        (site.app / "build.txt").write_text("C, not deployed")
        load = Load(site.url, rate=RATE, timeout=10.0, path="/api/build", keep_bodies=True)
        load.start()
        try:
            wait_until(lambda: load.result.ok >= 200, what="load warmed up")
            rolled = site.tower("rollback", "--format", "json")
            done = load.mark()
            time.sleep(1.5)
        finally:
            result = load.stop()
            site.write()
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        back = json.loads(rolled.stdout)
        assert back["version"] == "a" and back["artifact"]["digest"] == first.artifact_digest
        assert_clean(result)
        before = {b.strip() for at, b in result.bodies if at < done - 5}
        after = [b.strip() for at, b in result.bodies if at > done]
        assert "build B" in before
        assert len(after) > 100 and set(after) == {"build A"}
        shown = json.loads(site.tower("releases", "show", back["id"], "--format", "json").stdout)
        assert shown["artifact"]["kind"] == "snapshot"
        assert shown["artifact"]["size"] > 0 and shown["artifact"]["digest"].startswith("sha256:")
        text = site.tower("releases", "show", back["id"]).stdout
        assert "artifact: snapshot" in text and f"digest: {first.artifact_digest}" in text


class TestBadReleasesRolledBack:
    @pytest.mark.parametrize("strategy", [Strategy.ROLLING, Strategy.BLUEGREEN])
    def test_failing_20_percent_is_rolled_back(self, site: LocalSite, strategy: Strategy) -> None:
        """A release failing 20% of requests is rolled back by the analysis; < 1% of requests fail.

        The load runs 30 s with the deploy in it; the failed requests all fall
        within one analysis interval (plus 2 s) of the first traffic switch.
        """
        site.write(strategy=strategy.value, interval="1s", warm_window="30s")
        stable = site.engine().current()
        assert stable is not None
        load = Load(site.url, rate=RATE, timeout=10.0, path="/api/items").start()
        try:
            wait_until(lambda: load.result.ok >= 200, what="load warmed up")
            release = site.engine().deploy(
                version=f"bad-{strategy.value}", env={"APP_ERROR_RATE": "0.2"}
            )
            while load.mark() < 30:
                time.sleep(0.2)
        finally:
            result = load.stop()
            site.write()
        assert release.status == "rolled_back", release.reason
        assert "error_rate < 2%: observed" in release.reason
        shown = site.engine().show(release.id)
        routed = step_at(shown, "route")
        restored = step_at(shown, "rolling_back", "traffic:")
        log = "\n".join(f"{s.at:%H:%M:%S.%f} {s.state} {s.message}" for s in shown.steps)
        assert seconds(restored, routed) <= 1.0 + 2.0, log
        assert result.failed / result.sent < 0.01, f"{result.failed} of {result.sent} failed"
        assert result.rate >= RATE * 0.95
        assert all("status 500" in why for _, why in result.failures)
        assert site.engine().driver.routes() == {stable.id: 1.0}


class TestReadinessFailsFast:
    def test_rejected_within_consecutive_probes(self, site: LocalSite) -> None:
        """A release answering 503 to readiness is rejected within consecutive x interval + 1 s."""
        site.write(health_deadline="60s")
        try:
            release = site.engine().deploy(version="unready", env={"APP_FAIL_HEALTH": "1"})
        finally:
            site.write()
        assert release.status == "rolled_back"
        assert "2 times in a row with a definite answer" in release.reason
        shown = site.engine().show(release.id)
        first = step_at(shown, "health", "instance ")
        rejected = step_at(shown, "rolling_back")
        assert seconds(rejected, first) <= 2 * 0.2 + 1.0
        assert seconds(rejected, step_at(shown, "health", "started")) < 15


class TestNoTraffic:
    def test_canary_without_traffic_pauses_at_the_limit(self, site: LocalSite) -> None:
        """No traffic at all: `tower deploy` ends paused (exit 3) within inconclusive_limit + 2 s."""
        site.write(steps=[("20%", "30s")], interval="1s", analysis='inconclusive_limit = "3s"')
        try:
            deployed = site.tower("deploy", "--version", "quiet", "--format", "json")
            assert deployed.returncode == 3, deployed.stdout + deployed.stderr
            paused = json.loads(deployed.stdout)
            assert paused["status"] == "running" and paused["state"] == "paused"
            shown = site.engine().show(paused["id"])
            started = step_at(shown, "analyse:30s", "started")
            ended = step_at(shown, "paused")
            assert seconds(ended, started) <= 3.0 + 2.0
            assert "inconclusive_limit reached" in shown.steps[-1].message
            aborted = site.tower("deploy", "abort", "--format", "json")
            assert json.loads(aborted.stdout)["status"] == "rolled_back", aborted.stdout
        finally:
            site.write()

    def test_canary_with_synthetic_traffic_reaches_a_verdict(self, site: LocalSite) -> None:
        """With `traffic` naming a load scenario, the quiet canary is judged and succeeds."""
        site.write(
            steps=[("20%", "2s")],
            interval="1s",
            analysis='inconclusive_limit = "5s"\ntraffic = ["items"]',
            extra='\n[[budgets.scenarios]]\nname = "items"\npath = "/api/items"\n',
        )
        try:
            release = site.engine().deploy(version="quiet-but-tested")
        finally:
            site.write()
        assert release.status == "succeeded", release.reason
        verdicts = [s.message for s in site.engine().show(release.id).steps if s.state == "analyse"]
        assert any(m.startswith("pass:") for m in verdicts), verdicts
        assert any(m.startswith("synthetic traffic:") for m in verdicts)


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.HTTPError:
        return False
    return True


@contextlib.contextmanager
def serving(site: LocalSite) -> Iterator[subprocess.Popen[str]]:
    """`tower serve` on the site's spec and store, as it runs all the time."""
    port = free_port()
    process = subprocess.Popen(
        [
            *(TOWER, "serve", "--spec", str(site.spec_path), "--env", "local"),
            *("--port", str(port), "--no-dashboard", "--log-level", "warning"),
        ],
        cwd=site.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), deadline=60)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


class TestReconciler:
    def _killed_canary(
        self, site: LocalSite, version: str, env: list[str]
    ) -> tuple[float, LoadResult, Load]:
        load = Load(site.url, rate=RATE, timeout=10.0, path="/api/items").start()
        wait_until(lambda: load.result.ok >= 200, what="load warmed up")
        killed = site.tower(
            "deploy",
            "--version",
            version,
            *env,
            env={"TOWER_DEPLOY_KILL_AT": "analyse:6s"},
        )
        assert killed.returncode == -9, killed.stdout + killed.stderr
        return time.monotonic(), load.result, load

    def test_killed_bad_canary_is_rolled_back_without_a_command(self, site: LocalSite) -> None:
        """kill -9 of `tower deploy` during a bad canary: `tower serve` rolls it back in time."""
        site.write(steps=[("50%", "6s")], interval="2s")
        stable = site.engine().current()
        assert stable is not None
        with serving(site):
            _, _, load = self._killed_canary(site, "bad-canary", ["--set", "APP_ERROR_RATE=0.5"])
            try:
                bad = site.engine().releases(1)[0]
                wait_until(
                    lambda: site.engine().show(bad.id).status == "rolled_back",
                    deadline=60,
                    what="the bad canary rolled back",
                )
            finally:
                load.stop()
                site.write()
        shown = site.engine().show(bad.id)
        killed = step_at(shown, "analyse:6s", "started")  # the process killed itself here
        restored = step_at(shown, "rolling_back", "traffic:")
        log = "\n".join(f"{s.at:%H:%M:%S.%f} {s.state} {s.message}" for s in shown.steps)
        assert seconds(restored, killed) <= 2.0 + 2.0, log
        assert "analysis failed" in shown.reason
        assert any(s.state == "recover" for s in shown.steps)
        assert site.engine().driver.routes() == {stable.id: 1.0}

    def test_killed_good_canary_is_finished(self, site: LocalSite) -> None:
        """kill -9 of `tower deploy` during a good canary: `tower serve` finishes it."""
        site.write(steps=[("50%", "6s")], interval="2s")
        with serving(site):
            _, _, load = self._killed_canary(site, "good-canary", [])
            good = site.engine().releases(1)[0]
            wait_until(
                lambda: site.engine().show(good.id).status == "succeeded",
                deadline=60,
                what="the canary finished",
            )
            result = load.stop()
        site.write()
        assert site.engine().driver.routes() == {good.id: 1.0}
        assert_clean(result)
