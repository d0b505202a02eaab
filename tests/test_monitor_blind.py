"""No blind window: kill -9 of one of two ``tower monitor`` workers, and kill -9 and
restart of a single one, with a 3 s outage right then. Real processes, a real
PostgreSQL store, a real HTTP target that logs every check."""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from controltower.monitor.leases import lease_ttl_for, worker_name
from controltower.store.models import Incident
from tests.fakes.receiver import WebhookReceiver
from tests.monitor_support import Target
from tests.test_monitor_workers import MONITORS, SECRET, Workers, wait_until, write_spec

INTERVAL = 1.0
OUTAGE = 3.0


def longest_gap(target: Target, since: float, until: float) -> tuple[float, str]:
    """The longest time between two checks of any monitor in [since, until]."""
    worst, which = 0.0, ""
    for name in MONITORS:
        hits = [at for at in target.hits_of(f"/{name}", since) if at <= until]
        for earlier, later in itertools.pairwise([*hits, until]):
            if later - earlier > worst:
                worst, which = later - earlier, name
    return worst, which


def incidents(group: Workers) -> list[Incident]:
    with group.store.session() as session:
        return list(session.scalars(select(Incident)))


@pytest.fixture
def site(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Workers, Target]]:
    target = Target()
    receiver = WebhookReceiver(secret=SECRET)
    receiver.start()
    spec = write_spec(tmp_path / "tower.toml", target, receiver)
    group = Workers(tmp_path, spec, postgres_url, lease_ttl=None)
    try:
        yield group, target
    finally:
        group.close()
        receiver.stop()
        target.down()


def outage_then_check(group: Workers, target: Target, since: float, lost: float = 0.0) -> None:
    """All monitors fail for 3 s from ``since``; every gap stays within interval + 2 s
    (plus ``lost``, the restarted process's own start-up) and the outage opens an
    incident."""
    target.failing = {f"/{name}" for name in MONITORS}
    time.sleep(OUTAGE)
    target.failing = set()
    time.sleep(4 * INTERVAL)
    gap, name = longest_gap(target, since - 2 * INTERVAL, time.monotonic())
    assert gap <= INTERVAL + 2.0 + lost, f"{name} went {gap:.2f}s without a check"
    wait_until(lambda: incidents(group), 15, "an incident for the outage")


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.xdist_group("monitor-heavy")
class TestNoBlindWindow:
    def test_lease_ttl_follows_the_shortest_interval(self) -> None:
        """Half the shortest interval, within 1 s and 15 s; the default worker name is
        the same for every run of one spec on one host."""
        assert lease_ttl_for([60.0, 4.0]) == 2.0
        assert lease_ttl_for([1.0]) == 1.0
        assert lease_ttl_for([600.0]) == 15.0
        assert worker_name("shop", None, "tower.toml") == worker_name("shop", None, "tower.toml")
        assert worker_name("shop", "prod", "tower.toml") != worker_name("shop", None, "tower.toml")

    def test_kill_one_of_two_workers(self, site: tuple[Workers, Target]) -> None:
        """kill -9 of the worker that leads alerting: the other takes its monitors over
        within one interval and the alerting lease after it expires; no monitor goes
        more than interval + 2 s unchecked; a 3 s outage right then, over before the
        new leader's first pass, still opens an incident (judged from the counters the
        outage left, not from the monitors' state at the hand-over)."""
        group, target = site
        group.start("alpha")
        group.start("beta")
        wait_until(
            lambda: set(group.holders().values()) == {"alpha", "beta"},
            30,
            "both workers holding monitors",
        )
        leader = wait_until(group.leader, 30, "an alerting leader")
        victim, survivor = ("alpha", "beta") if leader == "alpha" else ("beta", "alpha")
        time.sleep(3 * INTERVAL)
        killed_at = time.monotonic()
        group.processes[victim].send_signal(signal.SIGKILL)
        group.processes[victim].wait(10)
        outage_then_check(group, target, killed_at)
        assert set(group.holders().values()) == {survivor}

    def test_kill_and_restart_one_worker(self, site: tuple[Workers, Target]) -> None:
        """kill -9 and restart of the only worker (default name, a 15 s lease TTL): it
        reclaims its own unexpired leases at once instead of waiting them out, so no
        monitor goes more than interval + 2 s unchecked beyond the process's own
        start-up (measured from the kill to its first line), and a 3 s outage right
        then opens an incident."""
        group, target = site
        group.lease_ttl = 15.0
        group.start("")
        wait_until(
            lambda: len(group.holders()) == len(MONITORS) and all(group.holders().values()),
            30,
            "the worker holding every monitor",
        )
        owner = set(group.holders().values())
        time.sleep(3 * INTERVAL)
        killed_at = time.monotonic()
        group.processes[""].send_signal(signal.SIGKILL)
        group.processes[""].wait(10)
        (group.tmp_path / "default.log").write_text("")
        group.start("", format="text")
        wait_until(lambda: "watching" in group.log(""), 60, "the restarted worker's first line")
        started = time.monotonic() - killed_at
        outage_then_check(group, target, killed_at, lost=started)
        assert set(group.holders().values()) == owner, "the same name after the restart"
