"""The issue's Done-when, for real: the example app on the local driver under constant load.

One agent (proxy and supervised app processes) serves the whole module; every
test deploys the next release over whatever serves now, while a constant-rate
load of 200 requests/s runs through the proxy and records every answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from controltower.deploy import ReleaseView
from controltower.spec.deploy import Strategy
from tests.deploy_load import Load, LoadResult
from tests.deploy_support import RATE, LocalSite, assert_clean, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("deploy-local")]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSite]:
    opened = LocalSite(tmp_path_factory.mktemp("site"))
    try:
        first = opened.engine().deploy(version="1.0")
        assert first.status == "succeeded", first.reason
        yield opened
    finally:
        opened.close()


def under_load(site: LocalSite, **deploy: object) -> tuple[ReleaseView, LoadResult, float]:
    """Deploy while the load runs; returns the release, what the load saw, and when it ended."""
    load = Load(site.url, rate=RATE, timeout=10.0).start()
    try:
        wait_until(lambda: load.result.ok >= 100, what="load warmed up")
        release = site.engine().deploy(**deploy)  # type: ignore[arg-type]
        finished = load.mark()
        time.sleep(1.0)
    finally:
        result = load.stop()
    return release, result, finished


def routes(site: LocalSite) -> dict[str, float]:
    return site.engine().driver.routes()


class TestGoodReleases:
    @pytest.mark.parametrize("strategy", [Strategy.BLUEGREEN, Strategy.CANARY, Strategy.ROLLING])
    def test_zero_failed_requests(self, site: LocalSite, strategy: Strategy) -> None:
        """A good release deploys with each progressive strategy and not one request fails."""
        before = site.engine().current()
        assert before is not None
        release, result, finished = under_load(
            site, version=f"2.{strategy.value}", strategy=strategy
        )
        assert release.status == "succeeded", release.reason
        assert_clean(result)
        assert result.releases[before.id] > 0 and result.releases[release.id] > 0
        after = [r for at, r, _ in result.timeline if at > finished + 0.1]
        assert after and set(after) == {release.id}
        assert routes(site) == {release.id: 1.0}
        old = site.engine().driver.instances(before.id)
        if strategy is Strategy.BLUEGREEN:
            assert old and all(i.state == "running" for i in old), "blue stays warm"
        else:
            assert old == []


class TestBadReleases:
    def test_failing_health_never_gets_traffic(self, site: LocalSite) -> None:
        """A release whose readiness answers 503 is rolled back without a single request."""
        site.write(health_deadline="4s")
        try:
            release, result, _ = under_load(
                site, version="3.unhealthy", env={"APP_FAIL_HEALTH": "1"}
            )
        finally:
            site.write()
        assert release.status == "rolled_back"
        assert "failed readiness /api/health 2 times in a row with a definite answer" in (
            release.reason
        )
        assert result.releases[release.id] == 0
        assert_clean(result)
        assert site.engine().driver.instances(release.id) == []

    def test_crashing_release_never_gets_traffic(self, site: LocalSite) -> None:
        """A release that exits at startup is found crash-looping and rolled back, unseen."""
        release, result, _ = under_load(site, version="3.crashing", env={"APP_FAIL_START": "1"})
        assert release.status == "rolled_back"
        assert "crashed 3 times" in release.reason
        assert result.releases[release.id] == 0
        assert_clean(result)

    def test_bad_canary_rolled_back_within_an_interval(self, site: LocalSite) -> None:
        """5xx on 20% of requests: back to stable within one analysis interval plus 2 s, <1% failed."""
        interval = 4.0
        stable = site.engine().current()
        assert stable is not None
        release, result, _ = under_load(
            site, version="4.erroring", env={"APP_ERROR_RATE": "0.2"}, strategy=Strategy.CANARY
        )
        assert release.status == "rolled_back"
        assert "error_rate < 2%: observed" in release.reason
        steps = site.engine().show(release.id).steps
        routed = next(s.at for s in steps if s.state == "route")
        restored = next(
            s.at for s in steps if s.state == "rolling_back" and s.message.startswith("traffic:")
        )
        assert (restored - routed).total_seconds() <= interval + 2.0
        served = [at for at, r, _ in result.timeline if r == release.id]
        assert served, "the canary took some traffic"
        assert max(served) - min(served) <= interval + 2.0
        assert result.failed / result.sent < 0.01, f"{result.failed} of {result.sent} failed"
        assert all("status 500" in why for _, why in result.failures)
        assert routes(site) == {stable.id: 1.0}
        assert site.engine().driver.instances(release.id) == []
