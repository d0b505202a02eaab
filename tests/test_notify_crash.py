"""kill -9 of ``tower serve`` during an incident storm: no notification lost, and a
duplicate only where the incident's timeline says one may have happened.

A real ``tower serve`` process, a real PostgreSQL store (the recovery itself runs
on both stores in test_notify_dispatch.py's TestCrashRecovery), a real HTTP
target whose monitors flap, and a real webhook receiver that counts every
delivery and deduplicates nothing (the channel does not declare
``deduplicates``, as for Slack or a plain webhook).
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from controltower.store import Store
from controltower.store.models import Incident, IncidentEvent, OutboxMessage
from tests.fakes.server import FakeServer, Request, Response
from tests.monitor_support import Target
from tests.serve_support import ServeProcess, wait_until

MONITORS = [f"m{index:02d}" for index in range(12)]


class CountingReceiver(FakeServer):
    """Counts each delivery by its ``Idempotency-Key``; acts on every one, repeats too.

    ``hold`` keeps the next request open that long before answering, and ``held``
    is set while it does, so a test can kill the sender mid-send.
    """

    def __init__(self) -> None:
        super().__init__()
        self.hold = 0.0
        self.held = threading.Event()

    def handle(self, request: Request) -> Response:
        with self.lock:
            hold, self.hold = self.hold, 0.0
        if hold:
            self.held.set()
            time.sleep(hold)
        else:
            time.sleep(0.02)
        return Response(200, b"ok")

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(request.header("Idempotency-Key") for request in self.requests)


def write_spec(path: Path, target: Target, receiver: CountingReceiver) -> Path:
    monitors = "".join(
        f'[[monitors]]\nname = "{name}"\nurl = "{target.url}/{name}"\n'
        'interval = "500ms"\ntimeout = "3s"\nfailure_threshold = 1\n'
        for name in MONITORS
    )
    path.write_text(
        f"""
[service]
name = "shop"

[alerts.delivery]
backoff = "200ms"
backoff_max = "1s"

[alerts.channels.hook]
type = "webhook"
url = "{receiver.url}/hook"

[[alerts.routes]]
channels = ["hook"]
group_by = ["monitor"]

{monitors}"""
    )
    return path


class Storm:
    """Flips which half of the monitors fails every ``period`` seconds until stopped."""

    def __init__(self, target: Target, period: float = 1.2) -> None:
        self.target, self.period = target, period
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        halves = [MONITORS[0::2], MONITORS[1::2]]
        turn = 0
        while not self.stop.is_set():
            self.target.failing = {f"/{name}" for name in halves[turn % 2]}
            turn += 1
            self.stop.wait(self.period)
        self.target.failing = set()

    def __enter__(self) -> Storm:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def outbox(store: Store) -> list[OutboxMessage]:
    with store.session() as session:
        return list(session.scalars(select(OutboxMessage)))


def reported(store: Store) -> Counter[str]:
    """How many times each outbox key was reported "may have been delivered twice"."""
    with store.session() as session:
        events = session.scalars(
            select(IncidentEvent).where(IncidentEvent.kind == "notify_unconfirmed")
        ).all()
        for event in events:
            assert "may have been delivered twice" in event.message
        return Counter(str(event.detail["key"]) for event in events)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, Target, CountingReceiver]]:
    target = Target()
    receiver = CountingReceiver()
    receiver.start()
    try:
        yield write_spec(tmp_path / "tower.toml", target, receiver), target, receiver
    finally:
        receiver.stop()
        target.down()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.xdist_group("notify-heavy")
class TestServeKilledDuringStorm:
    def test_three_kills_lose_nothing_and_report_every_duplicate(
        self, site: tuple[Path, Target, CountingReceiver], postgres_url: str
    ) -> None:
        """Incidents open and resolve continuously while ``tower serve`` is killed -9
        three times: once while the receiver holds a request, once right after a
        restart, once mid-send again. After the storm every notification enqueued
        was received at least once, and each one received twice has a "may have
        been delivered twice" line in its incident's timeline."""
        spec, target, receiver = site
        store_url = postgres_url
        server = ServeProcess(spec, store_url, "--no-dashboard")
        kills: list[str] = []

        began = time.monotonic()

        def kill(moment: str) -> None:
            nonlocal server
            print(f"{time.monotonic() - began:.1f}s: kill {moment}")
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(10)
            server.stop()
            kills.append(moment)
            server = ServeProcess(spec, store_url, "--no-dashboard")

        def kill_mid_send() -> None:
            receiver.held.clear()
            receiver.hold = 1.0
            wait_until(receiver.held.is_set, within=20, what="a delivery in flight")
            kill("mid-send")

        try:
            with Store.open(store_url) as store, Storm(target):
                kill_mid_send()
                time.sleep(0.3)
                kill("just after a restart")
                kill_mid_send()
                time.sleep(1.0)
            with Store.open(store_url) as store:

                def settled() -> bool:
                    """Every incident resolved and every notification about it sent."""
                    with store.session() as session:
                        open_ = session.scalar(
                            select(func.count()).where(Incident.open_key.is_not(None))
                        )
                    rows = outbox(store)
                    return not open_ and bool(rows) and all(row.status == "sent" for row in rows)

                wait_until(settled, within=30, what="every incident resolved and notified")
                rows = outbox(store)
                received = receiver.counts()
                twice = reported(store)
        finally:
            server.stop()
        print(f"{time.monotonic() - began:.1f}s: settled")
        keys = {row.key for row in rows}
        print(f"{len(rows)} notifications, {sum(received.values())} deliveries, kills {kills}")
        print("received more than once:", {k: n for k, n in received.items() if n > 1})
        print("reported:", dict(twice))
        assert len(kills) == 3
        assert len(rows) >= 20, "a storm: many incidents opened and resolved"
        assert set(received) == keys, "every notification received, nothing unknown"
        for key, count in received.items():
            assert count - 1 <= twice[key], f"{key} received {count}x, reported {twice[key]}x"
        assert sum(row.unconfirmed for row in rows) == sum(twice.values())
