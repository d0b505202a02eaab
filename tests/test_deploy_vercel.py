"""The vercel driver against the local Vercel (tests/fakes/vercel_api.py), unkind first."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controltower.deploy.drivers.base import ReleaseInfo
from controltower.deploy.drivers.vercel import VercelDriver, deployment_body, stages_for
from controltower.deploy.drivers.vercel_api import VercelAPI
from controltower.exceptions import DeployError, DriverError, SpecError
from controltower.spec import parse_spec
from controltower.spec.deploy import VercelDriverSpec
from tests.fakes.vercel_api import Deployment, FakeVercel
from tests.test_deploy_engine import _error_event
from tests.vercel_support import TOKEN, engine_for, fake_vercel

pytestmark = pytest.mark.xdist_group("deploy-vercel")


@pytest.fixture
def vercel() -> Iterator[FakeVercel]:
    fake = fake_vercel()
    try:
        yield fake
    finally:
        fake.stop()


class TestAPIClient:
    def test_429_waits_for_the_reset_header(self) -> None:
        """A 429 is retried once X-RateLimit-Reset (epoch seconds) has passed, not before."""
        fake = fake_vercel(rate=2.0, burst=2)
        try:
            api = VercelAPI(TOKEN, team_id=fake.team, base_url=fake.url)
            for _ in range(5):
                assert api.project("shop")["name"] == "shop"
            limited = [r for r in fake.requests if r[2] == 429]
            assert limited and api.retries == len(limited)
            assert api.waited > 0
        finally:
            fake.stop()

    def test_lists_follow_pagination_next(self, vercel: FakeVercel) -> None:
        """Seven deployments in pages of three: every one is listed, newest first."""
        made = [vercel.seed(str(n), production=False) for n in range(7)]
        api = VercelAPI(TOKEN, team_id=vercel.team, base_url=vercel.url)
        listed = [d["uid"] for d in api.deployments(vercel.project.id)]
        assert listed == [d.id for d in reversed(made)]
        assert sum(1 for r in vercel.requests if r[1] == "/v6/deployments") == 3

    def test_wrong_team_is_404_with_a_hint_and_no_token(self, vercel: FakeVercel) -> None:
        """Without the project's team the API answers 404; the error says so, never the token."""
        api = VercelAPI(TOKEN, base_url=vercel.url)
        with pytest.raises(DriverError) as caught:
            api.project("shop")
        assert "404" in caught.value.message and "not_found" in caught.value.message
        assert "team_id" in (caught.value.hint or "")
        assert TOKEN not in str(caught.value) + str(caught.value.hint)


class TestPromoteIsEventual:
    def test_promote_is_accepted_before_it_is_effective(self, vercel: FakeVercel) -> None:
        """202 first, production unchanged; the driver's wait returns once it really serves."""
        old = vercel.seed("0")
        new = vercel.seed("1", production=False)
        api = VercelAPI(TOKEN, team_id=vercel.team, base_url=vercel.url)
        api.promote(vercel.project.id, new.id)
        assert api.project("shop")["targets"]["production"]["id"] == old.id
        spec = VercelDriverSpec(
            project="shop", team_id=vercel.team, api_url=vercel.url, poll=0.05, git_repo_id="1"
        )
        driver = VercelDriver(spec, token=TOKEN, team_id=vercel.team)
        driver.route({"vercel-" + new.id: 1.0})
        assert driver.production() == new.id
        assert driver.routes() == {"vercel-" + new.id: 1.0}


class TestBuilders:
    def test_git_body_is_a_staged_production_deployment(self) -> None:
        """target production without the domains: built once with production variables."""
        spec = VercelDriverSpec(project="shop", git_repo_id="42")
        body = deployment_body(spec, ReleaseInfo(id="r1", version="1.2"), sha="abc")
        assert body == {
            "name": "shop",
            "project": "shop",
            "target": "production",
            "autoAssignCustomDomains": False,
            "meta": {"tower_release": "r1", "tower_version": "1.2"},
            "gitSource": {"type": "github", "repoId": "42", "ref": "abc", "sha": "abc"},
        }

    def test_stages_end_at_100_and_wait_for_approval(self) -> None:
        """[[deploy.steps]] weights become stages with no duration, then 100%."""
        assert stages_for([0.1, 0.5]) == [
            {"targetPercentage": 10.0},
            {"targetPercentage": 50.0},
            {"targetPercentage": 100},
        ]


class TestSpec:
    def test_vercel_driver_needs_a_project_with_file_and_line(self, tmp_path: Path) -> None:
        """driver = "vercel" without [deploy.vercel] project is refused naming where."""
        text = '[service]\nname = "shop"\n\n[deploy]\ndriver = "vercel"\n'
        with pytest.raises(SpecError) as caught:
            parse_spec(text, source="tower.toml")
        message = str(caught.value)
        assert "tower.toml:5" in message and "[deploy.vercel] project" in message

    def test_stages_must_increase(self) -> None:
        """Vercel refuses stages that do not grow; tower refuses them at validation."""
        text = (
            '[service]\nname = "shop"\n\n[deploy]\ndriver = "vercel"\n\n'
            '[deploy.vercel]\nproject = "shop"\nsource = "prebuilt"\n\n'
            '[[deploy.steps]]\nweight = "50%"\n\n[[deploy.steps]]\nweight = "20%"\n'
        )
        with pytest.raises(SpecError, match="must each send more traffic"):
            parse_spec(text, source="tower.toml")


def _production(vercel: FakeVercel) -> Deployment:
    production, _ = vercel.production_of()
    return vercel.deployments[production or ""]


class TestDeploy:
    def test_good_release_is_promoted_after_its_health_gate(
        self, vercel: FakeVercel, tmp_path: Path
    ) -> None:
        """Staged deployment → READY → health on its own URL → promote → smoke on production."""
        seed = vercel.seed("0")
        engine, _ = engine_for(tmp_path, vercel, strategy="bluegreen")
        release = engine.deploy(version="1.0")
        assert release.status == "succeeded", release.reason
        new = vercel.deployments[release.artifact]
        assert _production(vercel).id == new.id != seed.id
        assert new.target == "production" and new.meta["tower_release"] == release.id
        assert engine.releases(5)[-1].version == "before tower"
        paths = [p for _, p, s in vercel.requests if s == 0]
        promote = next(i for i, p in enumerate(paths) if "/promote/" in p)
        assert any(p == f"/v13/deployments/{new.id}" for p in paths[:promote])
        log = " ".join(e.message for e in engine.show(release.id).steps)
        assert "passed readiness /api/health 2 times" in log
        assert vercel.served and vercel.served[-1].deployment == new.id

    def test_unhealthy_release_is_never_promoted(self, vercel: FakeVercel, tmp_path: Path) -> None:
        """A READY deployment whose health answers 503 is rolled back before any promote."""
        seed = vercel.seed("0")
        engine, _ = engine_for(tmp_path, vercel, strategy="bluegreen")
        release = engine.deploy(version="bad-1")
        assert release.status == "rolled_back"
        assert "503" in release.reason
        assert _production(vercel).id == seed.id
        assert not vercel.deployments[release.artifact].served_production
        assert not any("/promote/" in p for _, p, _ in vercel.requests)

    def test_build_that_ends_in_error_is_rolled_back(
        self, vercel: FakeVercel, tmp_path: Path
    ) -> None:
        """BUILDING then ERROR: the start step fails with Vercel's errorMessage."""
        seed = vercel.seed("0")
        engine, _ = engine_for(tmp_path, vercel, strategy="bluegreen")
        release = engine.deploy(version="fail-1")
        assert release.status == "rolled_back"
        assert "ERROR" in release.reason and "npm run build" in release.reason
        assert _production(vercel).id == seed.id

    def test_protected_deployment_without_bypass_fails_definitely(
        self, vercel: FakeVercel, tmp_path: Path
    ) -> None:
        """Deployment protection answers 401: the gate fails at once and names the secret."""
        vercel.seed("0")
        engine, driver = engine_for(tmp_path, vercel, strategy="bluegreen")
        driver.site.headers.pop("x-vercel-protection-bypass")
        release = engine.deploy(version="1.0")
        assert release.status == "rolled_back"
        assert "VERCEL_AUTOMATION_BYPASS_SECRET" in release.reason

    def test_tower_rollback_goes_back_to_the_earlier_deployment(
        self, vercel: FakeVercel, tmp_path: Path
    ) -> None:
        """`tower rollback` runs the earlier release's deployment again, without a build."""
        vercel.seed("0")
        engine, _ = engine_for(tmp_path, vercel, strategy="bluegreen")
        first = engine.deploy(version="1.0")
        second = engine.deploy(version="2.0")
        assert second.status == "succeeded"
        created = len(vercel.deployments)
        back = engine.rollback()
        assert back.status == "succeeded", back.reason
        assert _production(vercel).id == first.artifact
        assert len(vercel.deployments) == created


class TestCanary:
    def test_canary_refused_when_the_project_has_no_rolling_releases(
        self, vercel: FakeVercel, tmp_path: Path
    ) -> None:
        """rolling = "auto" and no rolling-release config: a canary is refused with a hint."""
        vercel.seed("0")
        engine, _ = engine_for(tmp_path, vercel)
        with pytest.raises(DeployError, match="cannot split traffic"):
            engine.deploy(version="2.0")

    def test_good_canary_walks_the_stages_then_completes(
        self, vercel: FakeVercel, tmp_path: Path
    ) -> None:
        """Stages from [[deploy.steps]] are written, approved one by one, then completed."""
        vercel.project.rolling = [{"targetPercentage": 5}, {"targetPercentage": 100}]
        vercel.seed("0")
        engine, _ = engine_for(tmp_path, vercel)
        release = engine.deploy(version="1.0")
        assert release.status == "succeeded", release.reason
        assert vercel.project.rolling == stages_for([0.25, 0.5])
        rollout = vercel.project.rollout
        assert rollout is not None and rollout.state == "COMPLETE"
        assert _production(vercel).id == release.artifact
        assert any(p.endswith("/rolling-release/approve-stage") for _, p, _ in vercel.requests)
        log = " ".join(e.message for e in engine.show(release.id).steps)
        assert "rolling release at 25%" in log and "rolling release at 50%" in log

    def test_bad_canary_is_rolled_back_through_instant_rollback(
        self, vercel: FakeVercel, tmp_path: Path
    ) -> None:
        """Errors the canary's SDK reports to tower fail the analysis; Instant Rollback ends it."""
        vercel.project.rolling = [{"targetPercentage": 10}, {"targetPercentage": 100}]
        seed = vercel.seed("0")
        engine, _ = engine_for(tmp_path, vercel, conditions=("error_events == 0",))
        vercel.on_error = lambda d: _error_event(engine.store, d.version, datetime.now(UTC))
        with vercel.traffic(rate=40):
            release = engine.deploy(version="err-1")
        assert release.status == "rolled_back", release.reason
        assert "error_events == 0" in release.reason
        assert _production(vercel).id == seed.id
        rollout = vercel.project.rollout
        assert rollout is not None and rollout.state == "ABORTED"
        assert any(f"/rollback/{seed.id}" in p for _, p, _ in vercel.requests)
        time.sleep(0.1)
        assert vercel.send("/").deployment == seed.id
