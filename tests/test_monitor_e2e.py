"""The whole loop for real: a local HTTP target, the runner, the outbox, a webhook receiver.

Each test runs ``MonitorRunner`` (what ``tower monitor`` runs) with its default
timings against a real HTTP server, and counts what a real, signature-checking
webhook receiver gets: notifications, not outbox rows.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from controltower.monitor import acknowledge, add_silence, expire_silence
from controltower.monitor.registry import sync_monitors
from controltower.spec import Spec
from controltower.store import Store
from tests.fakes.receiver import WebhookReceiver
from tests.monitor_support import Target, eventually, open_incidents, outbox, running, spec_from

SECRET = "whsec_e2e"
INTERVAL = 1.0
THRESHOLD = 2


def spec_for(target: Target, receiver: WebhookReceiver, extra: str = "") -> Spec:
    return spec_from(
        f"""
[service]
name = "shop"

[alerts]
default_channels = ["ops"]

[alerts.delivery]
backoff = "200ms"
backoff_max = "1s"

[alerts.channels.ops]
type = "webhook"
url = "{receiver.url}/ops"
secret = "{SECRET}"

[alerts.channels.pager]
type = "webhook"
url = "{receiver.url}/pager"
secret = "{SECRET}"
{extra}
[[monitors]]
name = "api"
url = "{target.url}/health"
interval = "{INTERVAL}s"
timeout = "1s"
failure_threshold = {THRESHOLD}
conditions = ["status == 200", 'body.status == "pass"']
"""
    )


def received(receiver: WebhookReceiver, kind: str = "", path: str = "") -> list[str]:
    """Idempotency keys of the notifications the receiver processed (repeats dropped)."""
    with receiver.lock:
        items = list(receiver.processed.items())
        paths = {r.header("Idempotency-Key"): r.path for r in receiver.requests}
    return [
        key
        for key, body in items
        if (not kind or body.get("kind") == kind) and (not path or paths.get(key) == path)
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """SQLite here; the tests that matter most on PostgreSQL take ``both`` instead (and
    tests/test_monitor_workers.py runs the whole loop on PostgreSQL in real processes)."""
    with Store.open(f"sqlite:///{tmp_path / 'tower.db'}") as opened:
        yield opened


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def both(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = (
        f"sqlite:///{tmp_path / 'tower.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    with Store.open(url) as opened:
        yield opened


@pytest.fixture
def target() -> Iterator[Target]:
    server = Target()
    yield server
    server.down()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(secret=SECRET)
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
@pytest.mark.xdist_group("monitor-heavy")
class TestOutageAndRecovery:
    async def test_one_notification_within_the_bound_then_one_resolve(
        self, both: Store, target: Target, receiver: WebhookReceiver
    ) -> None:
        """An outage reaches the receiver once within interval x threshold + 1 s; recovery once."""
        store = both
        async with running(spec_for(target, receiver), store, defaults=True):
            await asyncio.sleep(2 * INTERVAL)
            assert receiver.requests == []
            target.status = 503
            started = time.monotonic()
            firing = await eventually(lambda: received(receiver, "incident.firing"), within=10)
            elapsed = time.monotonic() - started
            assert len(firing) == 1
            assert elapsed <= INTERVAL * THRESHOLD + 1, elapsed
            await asyncio.sleep(2 * INTERVAL)
            assert len(received(receiver, "incident.firing")) == 1
            target.status = 200
            resolved = await eventually(lambda: received(receiver, "incident.resolved"), within=10)
            assert len(resolved) == 1
            await asyncio.sleep(INTERVAL)
        assert Counter(receiver.keys()) == Counter({firing[0]: 1, resolved[0]: 1})
        assert receiver.rejected == []
        body = receiver.processed[firing[0]]
        assert body["severity"] == "critical" and "api" in body["title"]

    async def test_connection_refused_is_an_outage(
        self, store: Store, target: Target, receiver: WebhookReceiver
    ) -> None:
        """A target that stops listening pages like one that answers 503, saying why."""
        async with running(spec_for(target, receiver), store, defaults=True):
            await asyncio.sleep(INTERVAL)
            target.down()
            firing = await eventually(lambda: received(receiver, "incident.firing"), within=10)
            assert len(firing) == 1
            assert "cannot connect" in str(receiver.processed[firing[0]])


@pytest.mark.slow
@pytest.mark.xdist_group("monitor-heavy")
class TestNothingLostNothingTwice:
    async def test_receiver_outage_loses_nothing(
        self, store: Store, target: Target, receiver: WebhookReceiver
    ) -> None:
        """With the receiver down through an outage and its recovery, both arrive once it is back."""
        receiver.stop()
        async with running(spec_for(target, receiver), store, defaults=True):
            target.status = 503
            await eventually(lambda: outbox(store, "incident.firing"), within=10)
            await asyncio.sleep(1.5)
            row = outbox(store, "incident.firing")[0]
            assert row.status == "failed" and row.attempts >= 2, (row.status, row.attempts)
            target.status = 200
            await eventually(lambda: outbox(store, "incident.resolved"), within=10)
            receiver.start()
            done = await eventually(
                lambda: {r.status for r in outbox(store)} == {"sent"}, within=15
            )
            assert done, [(r.kind, r.status) for r in outbox(store)]
        assert len(received(receiver, "incident.firing")) == 1
        assert len(received(receiver, "incident.resolved")) == 1
        assert all(count == 1 for count in Counter(receiver.keys()).values())

    async def test_restart_mid_incident_duplicates_nothing(
        self, both: Store, target: Target, receiver: WebhookReceiver
    ) -> None:
        """Stopping the runner mid-incident and starting another neither re-sends nor forgets."""
        store = both
        spec = spec_for(target, receiver)
        target.status = 500
        async with running(spec, store, defaults=True):
            await eventually(lambda: received(receiver, "incident.firing"), within=10)
        async with running(spec, store, defaults=True):
            await asyncio.sleep(3 * INTERVAL)
            assert len(received(receiver, "incident.firing")) == 1
            assert len(open_incidents(store)) == 1
            target.status = 200
            await eventually(lambda: received(receiver, "incident.resolved"), within=10)
        assert len(received(receiver)) == 2
        assert all(count == 1 for count in Counter(receiver.keys()).values())


@pytest.mark.slow
@pytest.mark.xdist_group("monitor-heavy")
class TestSilenceAndEscalation:
    async def test_silence_suppresses(
        self, store: Store, target: Target, receiver: WebhookReceiver
    ) -> None:
        """A silence on the monitor holds the page; expiring it lets exactly one through."""
        spec = spec_for(target, receiver)
        service, _ids = sync_monitors(store, spec)
        silence = add_silence(store, service, {"monitor": "api"}, duration=600, actor="test")
        target.status = 503
        async with running(spec, store, defaults=True):
            await eventually(
                lambda: [i for i in open_incidents(store) if i.status == "firing"], within=10
            )
            await asyncio.sleep(2 * INTERVAL)
            assert receiver.requests == []
            expire_silence(store, silence.id, actor="test")
            firing = await eventually(lambda: received(receiver, "incident.firing"), within=10)
            assert len(firing) == 1

    async def test_unacknowledged_critical_escalates(
        self, store: Store, target: Target, receiver: WebhookReceiver
    ) -> None:
        """Left unacknowledged, a critical incident reaches the escalation channel, once."""
        route = (
            '[[alerts.routes]]\nmatch = { severity = "critical" }\nchannels = ["ops"]\n'
            'escalate_to = ["pager"]\nescalate_after = "2s"\n'
        )
        target.status = 503
        async with running(spec_for(target, receiver, route), store, defaults=True):
            first = await eventually(lambda: received(receiver, "incident.firing"), within=10)
            assert received(receiver, path="/ops") == first
            escalated = await eventually(
                lambda: received(receiver, "incident.escalated", "/pager"), within=10
            )
            await asyncio.sleep(INTERVAL)
        assert len(escalated) == 1
        assert len(received(receiver, "incident.escalated")) == 1

    async def test_acknowledged_critical_does_not_escalate(
        self, store: Store, target: Target, receiver: WebhookReceiver
    ) -> None:
        """Acknowledged before escalate_after, the incident never reaches the escalation channel."""
        route = (
            '[[alerts.routes]]\nmatch = { severity = "critical" }\nchannels = ["ops"]\n'
            'escalate_to = ["pager"]\nescalate_after = "2s"\n'
        )
        target.status = 503
        async with running(spec_for(target, receiver, route), store, defaults=True):
            await eventually(lambda: received(receiver, "incident.firing"), within=10)
            acknowledge(store, open_incidents(store)[0].id, "ana")
            await asyncio.sleep(3.5)
        assert received(receiver, path="/pager") == []


@pytest.mark.slow
@pytest.mark.xdist_group("monitor-heavy")
class TestBeatAcrossRestarts:
    async def test_next_runner_keeps_the_beat(
        self, store: Store, target: Target, receiver: WebhookReceiver
    ) -> None:
        """A runner taking over a monitor checks it at its stored due time, not at once."""
        spec = spec_for(target, receiver)
        interval = spec.monitors[0].interval
        async with running(spec, store, defaults=True, jitter=False):
            await eventually(lambda: target.hits_of("/health"), within=5)
            await asyncio.sleep(0.2)
        [last] = target.hits_of("/health")
        async with running(spec, store, defaults=True, jitter=False):
            await eventually(lambda: target.hits_of("/health", last + 0.01), within=5)
        first = target.hits_of("/health", last + 0.01)[0]
        assert first - last >= 0.8 * interval, first - last
