"""Several ``tower monitor`` processes on one PostgreSQL store: shared work, one page, takeover.

Real processes (``python -m controltower monitor``), a real PostgreSQL database,
a real HTTP target that logs every request and a real webhook receiver.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from controltower.store import Store
from controltower.store.models import Lock, MonitorState
from tests.fakes.receiver import WebhookReceiver
from tests.monitor_support import Target

SECRET = "whsec_workers"
INTERVAL = 1.0
TTL = 3.0
MONITORS = [f"m{index}" for index in range(6)]


def write_spec(path: Path, target: Target, receiver: WebhookReceiver) -> Path:
    monitors = "".join(
        f'[[monitors]]\nname = "{name}"\nurl = "{target.url}/{name}"\n'
        f'interval = "{INTERVAL:g}s"\ntimeout = "1s"\nfailure_threshold = 2\n'
        for name in MONITORS
    )
    path.write_text(
        f"""
[service]
name = "shop"

[alerts]
default_channels = ["ops"]

[alerts.delivery]
backoff = "200ms"

[alerts.channels.ops]
type = "webhook"
url = "{receiver.url}/ops"
secret = "{SECRET}"

{monitors}"""
    )
    return path


def wait_until(condition: Callable[[], Any], deadline: float, what: str) -> Any:
    end = time.monotonic() + deadline
    delay = 0.05
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline}s: {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


class Workers:
    """Starts ``tower monitor`` processes and reads what they hold from the store."""

    def __init__(
        self, tmp_path: Path, spec: Path, url: str, *, lease_ttl: float | None = TTL
    ) -> None:
        self.tmp_path, self.spec, self.url = tmp_path, spec, url
        self.lease_ttl = lease_ttl
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.store = Store.open(url)

    def start(self, owner: str, *, format: str = "json") -> subprocess.Popen[bytes]:
        """A worker named ``owner`` ("": its default name) with the fixed TTL, if any."""
        log = open(self.tmp_path / f"{owner or 'default'}.log", "ab")  # noqa: SIM115
        named = ["--owner", owner] if owner else []
        ttl = ["--lease-ttl", f"{self.lease_ttl:g}"] if self.lease_ttl else []
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controltower",
                "monitor",
                "--spec",
                str(self.spec),
                "--store",
                self.url,
                "--listen",
                "",
                *named,
                *ttl,
                "--format",
                format,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TOWER_DATABASE_URL": ""},
        )
        log.close()
        self.processes[owner] = process
        return process

    def holders(self) -> dict[str, str]:
        with self.store.session() as session:
            rows = session.execute(select(MonitorState.name, MonitorState.lease_owner)).all()
        return {name: owner for name, owner in rows}

    def leader(self) -> str:
        with self.store.session() as session:
            lock = session.scalars(select(Lock).where(Lock.name.startswith("monitor-alerting:")))
            found = lock.first()
            return found.owner if found is not None else ""

    def log(self, owner: str) -> str:
        return (self.tmp_path / f"{owner or 'default'}.log").read_text(errors="replace")

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)
        self.store.close()


@pytest.fixture
def workers(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Workers, Target, WebhookReceiver]]:
    target = Target()
    receiver = WebhookReceiver(secret=SECRET)
    receiver.start()
    spec = write_spec(tmp_path / "tower.toml", target, receiver)
    group = Workers(tmp_path, spec, postgres_url)
    try:
        yield group, target, receiver
    finally:
        group.close()
        receiver.stop()
        target.down()


def extra_checks(target: Target, since: float = 0.0) -> dict[str, int]:
    """Checks of each monitor beyond one per interval since its first (double checks show up
    here; a late check followed by an on-time one does not)."""
    extra = {}
    for name in MONITORS:
        hits = target.hits_of(f"/{name}", since)
        allowed = int((hits[-1] - hits[0]) / INTERVAL) + 2 if hits else 0
        extra[name] = max(0, len(hits) - allowed)
    return extra


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.xdist_group("monitor-heavy")
class TestTwoWorkers:
    def test_share_page_once_and_take_over(
        self, workers: tuple[Workers, Target, WebhookReceiver]
    ) -> None:
        """Two processes split the monitors with no double check, page once, and the survivor
        of a kill -9 takes over every monitor and the alerting without repeating anything."""
        group, target, receiver = workers
        started = time.monotonic()
        group.start("alpha")
        group.start("beta")
        shared = wait_until(
            lambda: Counter(group.holders().values()) == {"alpha": 3, "beta": 3},
            30,
            f"an even split, have {group.holders()}",
        )
        assert shared
        time.sleep(4 * INTERVAL)
        for name in MONITORS:
            hits = target.hits_of(f"/{name}", time.monotonic() - 3.5 * INTERVAL)
            assert 1 <= len(hits) <= 4, (name, len(hits))

        # One monitor fails: one incident, one notification, from whichever worker leads.
        target.failing = {"/m0"}
        wait_until(lambda: receiver.processed, 10, "the firing notification")
        leader = wait_until(group.leader, 5, "an alerting leader")
        survivor = "beta" if leader == "alpha" else "alpha"

        # The leader dies mid-incident; the other takes over its monitors and the alerting.
        killed_at = time.monotonic()
        group.processes[leader].send_signal(signal.SIGKILL)
        group.processes[leader].wait(10)
        wait_until(
            lambda: set(group.holders().values()) == {survivor},
            4 * TTL,
            f"{survivor} holding every monitor, have {group.holders()}",
        )
        time.sleep(2 * INTERVAL)
        for name in MONITORS:
            assert target.hits_of(f"/{name}", time.monotonic() - 1.5 * INTERVAL), name
        target.failing = set()
        wait_until(lambda: len(receiver.processed) >= 2, 15, "the resolved notification")
        assert group.leader() == survivor
        time.sleep(2 * INTERVAL)

        survivor_process = group.processes[survivor]
        survivor_process.send_signal(signal.SIGTERM)
        assert survivor_process.wait(20) == 0, group.log(survivor)

        kinds = sorted(body["kind"] for body in receiver.processed.values())
        assert kinds == ["incident.firing", "incident.resolved"]
        assert all(count == 1 for count in Counter(receiver.keys()).values())
        extra = extra_checks(target, started)
        assert sum(extra.values()) == 0, extra
        assert time.monotonic() - killed_at < 60
