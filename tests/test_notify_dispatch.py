"""The dispatcher against a real store (SQLite and PostgreSQL) and real receivers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from controltower.exceptions import NotifyError
from controltower.notify import Dispatcher, Notification, RetryPolicy, enqueue
from controltower.notify.channels import Channel, build_channel
from controltower.notify.outbox import retry
from controltower.spec.alerts import ChannelSpec
from controltower.store import Store
from controltower.store.models import Incident, IncidentEvent, OutboxMessage, Service
from controltower.testing import FakeClock
from tests.fakes.receiver import WebhookReceiver
from tests.fakes.slack import FakeSlack

FAST = RetryPolicy(base=0.05, cap=0.4, max_attempts=1000, max_age=3600)


def webhook(receiver: WebhookReceiver, **values: Any) -> Channel:
    spec = ChannelSpec.model_validate(
        {"type": "webhook", "url": receiver.url + "/hook", "secret": "whsec_test", **values}
    )
    return build_channel("hook", spec)


def add(store: Store, count: int, channel: str = "hook", prefix: str = "n") -> list[str]:
    with store.session() as session:
        for index in range(count):
            note = Notification(key=f"{prefix}{index}", kind="incident.firing", title=f"#{index}")
            enqueue(session, note, [channel])
    return [f"{prefix}{index}:{channel}" for index in range(count)]


def rows(store: Store) -> dict[str, OutboxMessage]:
    with store.session() as session:
        return {row.key: row for row in session.scalars(select(OutboxMessage))}


def statuses(store: Store) -> Counter[str]:
    return Counter(row.status for row in rows(store).values())


def wait_until(condition: Any, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    delay = 0.02
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"not true within {deadline}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


async def drain(dispatcher: Dispatcher, store: Store, deadline: float = 30.0) -> None:
    """Dispatch until nothing is left to send."""
    end = time.monotonic() + deadline
    delay = 0.02
    while statuses(store).keys() - {"sent", "dead"}:
        if time.monotonic() > end:
            raise AssertionError(f"outbox not drained within {deadline}s: {statuses(store)}")
        report = await dispatcher.dispatch_once()
        if not report.claimed:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(secret="whsec_test")
    server.start()
    yield server
    if server.gate is not None:
        server.gate.set()
    server.stop()


class TestDelivery:
    async def test_sends_and_marks_sent(self, store: Store, receiver: WebhookReceiver) -> None:
        """Every due row is sent once, signed, and marked sent with its time."""
        keys = add(store, 5)
        dispatcher = Dispatcher(store, {"hook": webhook(receiver)})
        report = await dispatcher.dispatch_once()
        assert (report.claimed, report.sent) == (5, 5)
        assert sorted(receiver.keys()) == sorted(keys)
        assert receiver.rejected == []
        for row in rows(store).values():
            assert (row.status, row.attempts, row.lease_owner) == ("sent", 1, "")
            assert row.sent_at is not None
        assert (await dispatcher.dispatch_once()).claimed == 0

    async def test_claims_at_most_a_batch(self, store: Store, receiver: WebhookReceiver) -> None:
        """One pass claims no more than ``batch`` rows (PostgreSQL must not re-run the claim)."""
        add(store, 12)
        dispatcher = Dispatcher(store, {"hook": webhook(receiver)}, batch=5)
        assert [(await dispatcher.dispatch_once()).claimed for _ in range(4)] == [5, 5, 2, 0]

    async def test_failure_backs_off_then_succeeds(
        self, store: Store, receiver: WebhookReceiver
    ) -> None:
        """A 503 schedules the next attempt after the backoff; it is not retried before."""
        [key] = add(store, 1)
        clock = FakeClock(datetime.now(UTC))
        policy = RetryPolicy(base=10, cap=100, max_attempts=5)
        dispatcher = Dispatcher(
            store, {"hook": webhook(receiver)}, policy=policy, clock=clock, rand=lambda: 1.0
        )
        receiver.status = 503
        assert (await dispatcher.dispatch_once()).failed == 1
        row = rows(store)[key]
        assert (row.status, row.attempts) == ("failed", 1)
        assert row.last_error == "HTTP 503: not now"
        assert row.next_attempt_at == clock.now() + timedelta(seconds=10)
        clock.advance(9)
        assert (await dispatcher.dispatch_once()).claimed == 0
        receiver.status = 200
        clock.advance(1)
        assert (await dispatcher.dispatch_once()).sent == 1
        assert rows(store)[key].attempts == 2
        assert receiver.keys() == [key, key]
        assert list(receiver.processed) == [key]

    async def test_gives_up_after_max_attempts(
        self, store: Store, receiver: WebhookReceiver
    ) -> None:
        """After max_attempts failures the row is dead, with the last error kept."""
        [key] = add(store, 1)
        clock = FakeClock(datetime.now(UTC))
        dispatcher = Dispatcher(
            store,
            {"hook": webhook(receiver)},
            policy=RetryPolicy(base=1, cap=1, max_attempts=3),
            clock=clock,
        )
        receiver.status = 502
        for _ in range(3):
            await dispatcher.dispatch_once()
            clock.advance(2)
        row = rows(store)[key]
        assert (row.status, row.attempts) == ("dead", 3)
        assert row.last_error == "HTTP 502: not now (gave up after 3 attempts)"
        assert (await dispatcher.dispatch_once()).claimed == 0

    async def test_refused_is_dead_at_once(self, store: Store, receiver: WebhookReceiver) -> None:
        """A 4xx (here a bad signature) will not pass on retry: dead after one attempt."""
        [key] = add(store, 1)
        channel = webhook(receiver, secret="not-the-secret")
        await Dispatcher(store, {"hook": channel}).dispatch_once()
        row = rows(store)[key]
        assert (row.status, row.attempts) == ("dead", 1)
        assert "HTTP 401" in row.last_error
        assert "not-the-secret" not in row.last_error

    async def test_old_rows_and_unknown_channels_expire(self, store: Store) -> None:
        """Rows older than max_age are dead-lettered, saying which channel is missing."""
        [key] = add(store, 1, channel="gone")
        clock = FakeClock(datetime.now(UTC))
        dispatcher = Dispatcher(store, {}, policy=RetryPolicy(max_age=60), clock=clock)
        assert (await dispatcher.dispatch_once()).expired == 0
        clock.advance(61)
        assert (await dispatcher.dispatch_once()).expired == 1
        row = rows(store)[key]
        assert row.status == "dead"
        assert row.last_error == "not delivered within 60s; no channel 'gone' in [alerts.channels]"

    async def test_secrets_never_stored(self, store: Store) -> None:
        """A failing Slack URL's token is not in last_error."""
        [key] = add(store, 1, channel="ops")
        url = "http://127.0.0.1:9/services/T1/B1/s3cr3tt0k3n"
        channel = build_channel("ops", ChannelSpec.model_validate({"type": "slack", "url": url}))
        await Dispatcher(store, {"ops": channel}, policy=FAST).dispatch_once()
        row = rows(store)[key]
        assert row.status == "failed"
        assert "s3cr3tt0k3n" not in row.last_error
        assert "127.0.0.1" in row.last_error

    async def test_retry_after_is_honoured(self, store: Store) -> None:
        """Slack's 429 Retry-After sets the next attempt and pauses the channel."""
        with FakeSlack(rate_limit=True).running_for() as slack:
            assert isinstance(slack, FakeSlack)
            slack.retry_after = 30
            slack._last = time.monotonic()
            add(store, 3, channel="ops")
            clock = FakeClock(datetime.now(UTC))
            spec = ChannelSpec.model_validate({"type": "slack", "url": slack.webhook_url})
            dispatcher = Dispatcher(
                store, {"ops": build_channel("ops", spec, clock=clock)}, clock=clock, rand=lambda: 0
            )
            report = await dispatcher.dispatch_once()
        assert (report.failed, report.released) == (1, 2)
        due = {row.next_attempt_at for row in rows(store).values()}
        assert due == {clock.now() + timedelta(seconds=30)}
        assert statuses(store) == {"failed": 1, "pending": 2}
        assert sorted(row.attempts for row in rows(store).values()) == [0, 0, 1]


class TestLeases:
    async def test_expired_lease_is_taken_over(
        self, store: Store, receiver: WebhookReceiver
    ) -> None:
        """A row claimed by a dispatcher that died is sent by another once the lease expires."""
        [key] = add(store, 1)
        clock = FakeClock(datetime.now(UTC))
        with store.session() as session:
            session.execute(
                update(OutboxMessage).values(
                    status="sending",
                    attempts=1,
                    lease_owner="dead-host:1",
                    lease_expires_at=clock.now() + timedelta(seconds=30),
                    in_flight_at=clock.now(),
                )
            )
        dispatcher = Dispatcher(store, {"hook": webhook(receiver)}, clock=clock)
        assert (await dispatcher.dispatch_once()).claimed == 0
        clock.advance(31)
        assert (await dispatcher.dispatch_once()).sent == 1
        row = rows(store)[key]
        assert (row.status, row.attempts) == ("sent", 2)

    async def test_stop_releases_claimed_rows(
        self, store: Store, receiver: WebhookReceiver
    ) -> None:
        """On stop, the send in flight finishes and the rest go back unsent and uncounted."""
        keys = add(store, 10)
        receiver.delay = 0.1
        stop = asyncio.Event()
        dispatcher = Dispatcher(store, {"hook": webhook(receiver)})
        task = asyncio.create_task(dispatcher.run(stop, poll=0.05))
        await asyncio.to_thread(wait_until, lambda: len(receiver.requests) >= 3)
        stop.set()
        await asyncio.wait_for(task, 30)
        counts = statuses(store)
        assert counts["sending"] == 0
        assert counts["sent"] == len(receiver.requests)
        assert counts["pending"] == 10 - counts["sent"] > 0
        pending = [row for row in rows(store).values() if row.status == "pending"]
        assert {row.attempts for row in pending} == {0}
        await drain(Dispatcher(store, {"hook": webhook(receiver)}), store)
        assert sorted(receiver.keys()) == sorted(keys)


def incident_with_note(store: Store) -> tuple[int, str]:
    """An incident and its firing notification for channel ``hook``; the row's key."""
    with store.session() as session:
        service = Service(name="shop")
        session.add(service)
        session.flush()
        incident = Incident(service_id=service.id, group_key="g", title="api is failing")
        session.add(incident)
        session.flush()
        note = Notification(
            key=f"incident:{incident.id}:firing:critical",
            kind="incident.firing",
            title="api is failing",
            fields={"incident": str(incident.id)},
        )
        enqueue(session, note, ["hook"])
        return incident.id, f"{note.key}:hook"


def left_sending(store: Store, owner: str, *, in_flight: bool) -> None:
    """Every row as a dispatcher named ``owner`` left it when it was killed."""
    now = datetime.now(UTC)
    with store.session() as session:
        session.execute(
            update(OutboxMessage).values(
                status="sending",
                attempts=1,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=300),
                in_flight_at=now if in_flight else None,
            )
        )


def timeline(store: Store, incident_id: int) -> list[IncidentEvent]:
    with store.session() as session:
        query = select(IncidentEvent).where(IncidentEvent.incident_id == incident_id)
        return list(session.scalars(query.where(IncidentEvent.kind == "notify_unconfirmed")))


class TestCrashRecovery:
    async def test_restart_resends_at_once_and_reports_a_possible_duplicate(
        self, store: Store, receiver: WebhookReceiver
    ) -> None:
        """A row left mid-send by a killed dispatcher of the same name is sent again on
        the restarted one's first pass (not after its 300 s lease); the webhook does
        not declare ``deduplicates``, so the incident's timeline says it may have been
        delivered twice, and the row counts it."""
        incident_id, key = incident_with_note(store)
        left_sending(store, "vm:shop:notify#dead0001", in_flight=True)
        dispatcher = Dispatcher(store, {"hook": webhook(receiver)}, name="vm:shop:notify")
        report = await dispatcher.dispatch_once()
        assert (report.recovered, report.sent) == (1, 1)
        row = rows(store)[key]
        assert (row.status, row.attempts, row.unconfirmed) == ("sent", 2, 1)
        [event] = timeline(store, incident_id)
        assert "incident.firing notification to hook may have been delivered twice" in (
            event.message
        )
        assert event.detail == {"key": key, "channel": "hook", "attempt": 1}

    async def test_deduplicating_channel_resends_silently(
        self, store: Store, receiver: WebhookReceiver
    ) -> None:
        """A receiver declared ``deduplicates = true`` gets the row again under the same
        Idempotency-Key and nothing is reported: it acts once."""
        incident_id, key = incident_with_note(store)
        left_sending(store, "vm:shop:notify#dead0001", in_flight=True)
        channel = webhook(receiver, deduplicates=True)
        dispatcher = Dispatcher(store, {"hook": channel}, name="vm:shop:notify")
        assert (await dispatcher.dispatch_once()).sent == 1
        assert rows(store)[key].unconfirmed == 0
        assert timeline(store, incident_id) == []
        assert receiver.keys() == [key]

    async def test_claimed_but_never_sent_is_given_back_silently(
        self, store: Store, receiver: WebhookReceiver
    ) -> None:
        """A row claimed in a batch whose request never went out cannot have arrived:
        it is sent with its attempt given back and nothing reported."""
        incident_id, key = incident_with_note(store)
        left_sending(store, "vm:shop:notify#dead0001", in_flight=False)
        dispatcher = Dispatcher(store, {"hook": webhook(receiver)}, name="vm:shop:notify")
        assert (await dispatcher.dispatch_once()).sent == 1
        row = rows(store)[key]
        assert (row.attempts, row.unconfirmed) == (1, 0)
        assert timeline(store, incident_id) == []

    async def test_another_name_waits_for_the_lease(
        self, store: Store, receiver: WebhookReceiver
    ) -> None:
        """Rows held by a dispatcher of another name are not taken before their lease
        expires: that one may be alive."""
        _, key = incident_with_note(store)
        left_sending(store, "other-host:notify#live0001", in_flight=True)
        dispatcher = Dispatcher(store, {"hook": webhook(receiver)}, name="vm:shop:notify")
        report = await dispatcher.dispatch_once()
        assert (report.recovered, report.claimed) == (0, 0)
        assert rows(store)[key].status == "sending"

    async def test_a_timeout_after_sending_is_reported_before_the_retry(
        self, store: Store, receiver: WebhookReceiver
    ) -> None:
        """The receiver took the request and never answered in time: the retry may
        duplicate it, so the timeline says so when the failure is recorded."""
        incident_id, key = incident_with_note(store)
        receiver.delay = 1.0
        dispatcher = Dispatcher(store, {"hook": webhook(receiver, timeout="200ms")}, policy=FAST)
        assert (await dispatcher.dispatch_once()).failed == 1
        assert rows(store)[key].unconfirmed == 1
        assert len(timeline(store, incident_id)) == 1

    def test_slack_cannot_claim_to_deduplicate(self) -> None:
        """Slack incoming webhooks take no idempotency key; saying otherwise is an error."""
        spec = ChannelSpec.model_validate(
            {"type": "slack", "url": "https://hooks.slack.test/x", "deduplicates": True}
        )
        with pytest.raises(NotifyError, match="cannot deduplicate"):
            build_channel("chat", spec)


@pytest.mark.slow
@pytest.mark.xdist_group("notify-heavy")
class TestExactlyOnce:
    async def test_receiver_outage_loses_nothing(self, store: Store) -> None:
        """Receiver down for a while, then up: every notification arrives, each exactly once."""
        receiver = WebhookReceiver(secret="whsec_test")
        keys = add(store, 40)
        stop = asyncio.Event()
        dispatcher = Dispatcher(store, {"hook": webhook(receiver)}, policy=FAST)
        task = asyncio.create_task(dispatcher.run(stop, poll=0.05))
        try:
            await asyncio.sleep(2.0)
            assert receiver.requests == []
            head = rows(store)["n0:hook"]
            assert head.attempts >= 2
            assert "ConnectError" in head.last_error
            assert statuses(store)["sent"] == 0
            receiver.start()
            await asyncio.to_thread(wait_until, lambda: statuses(store) == {"sent": 40}, 60)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            receiver.stop()
        assert Counter(receiver.keys()) == Counter(dict.fromkeys(keys, 1))
        assert sorted(receiver.processed) == sorted(keys)

    async def test_receiver_restarts_mid_stream(self, store: Store) -> None:
        """Stopping and restarting the receiver while messages flow loses and repeats nothing."""
        receiver = WebhookReceiver(secret="whsec_test")
        receiver.start()
        keys = add(store, 60)
        stop = asyncio.Event()
        dispatcher = Dispatcher(store, {"hook": webhook(receiver)}, policy=FAST)
        receiver.delay = 0.02
        task = asyncio.create_task(dispatcher.run(stop, poll=0.05))
        try:
            await asyncio.to_thread(wait_until, lambda: len(receiver.requests) >= 10)
            receiver.stop()
            await asyncio.sleep(1.0)
            receiver.start()
            await asyncio.to_thread(wait_until, lambda: statuses(store) == {"sent": 60}, 60)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            receiver.stop()
        assert Counter(receiver.keys()) == Counter(dict.fromkeys(keys, 1))

    def test_two_dispatchers_deliver_each_once(
        self, store: Store, store_url: str, receiver: WebhookReceiver
    ) -> None:
        """Two dispatchers with their own connections share the outbox; each row goes once."""
        keys = add(store, 150)
        reports: list[int] = []

        def work() -> None:
            async def go() -> None:
                with Store.open(store_url) as own:
                    dispatcher = Dispatcher(own, {"hook": webhook(receiver)}, policy=FAST, batch=5)
                    sent = 0
                    end = time.monotonic() + 60
                    while time.monotonic() < end:
                        report = await dispatcher.dispatch_once()
                        sent += report.sent
                        if not report.claimed:
                            if statuses(own) == {"sent": 150}:
                                break
                            await asyncio.sleep(0.02)
                    reports.append(sent)

            asyncio.run(go())

        threads = [threading.Thread(target=work) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        print("sent by each dispatcher:", reports)
        assert sum(reports) == 150
        assert Counter(receiver.keys()) == Counter(dict.fromkeys(keys, 1))
        assert statuses(store) == {"sent": 150}

    def test_crash_mid_delivery(
        self, store: Store, store_url: str, receiver: WebhookReceiver
    ) -> None:
        """A dispatcher killed mid-request: the next one resends under the same key after
        the lease expires, and the receiver, deduplicating by Idempotency-Key, acts once."""
        [key] = add(store, 1)
        receiver.gate = threading.Event()
        script = textwrap.dedent(
            f"""
            import asyncio
            from controltower.notify import Dispatcher
            from controltower.notify.channels import build_channel
            from controltower.spec.alerts import ChannelSpec
            from controltower.store import Store
            spec = ChannelSpec.model_validate(
                {{"type": "webhook", "url": "{receiver.url}/hook", "secret": "whsec_test"}}
            )
            store = Store.open({store_url!r})
            dispatcher = Dispatcher(store, {{"hook": build_channel("hook", spec)}}, lease=2.0)
            asyncio.run(dispatcher.dispatch_once())
            """
        )
        process = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
        try:
            wait_until(lambda: len(receiver.requests) == 1)
            assert rows(store)[key].status == "sending"
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
        finally:
            if process.poll() is None:
                process.kill()
        receiver.gate.set()
        wait_until(lambda: key in receiver.processed)
        dispatcher = Dispatcher(store, {"hook": webhook(receiver)}, policy=FAST)
        asyncio.run(drain(dispatcher, store))
        row = rows(store)[key]
        assert (row.status, row.attempts) == ("sent", 2)
        assert receiver.keys() == [key, key]
        assert list(receiver.processed) == [key]


@pytest.mark.slow
@pytest.mark.xdist_group("notify-heavy")
class TestRateLimit:
    async def test_slack_gets_one_message_a_second(self, store: Store) -> None:
        """The dispatcher spaces Slack messages so the webhook never answers 429."""
        with FakeSlack(rate_limit=True).running_for() as slack:
            assert isinstance(slack, FakeSlack)
            add(store, 3, channel="ops")
            spec = ChannelSpec.model_validate({"type": "slack", "url": slack.webhook_url})
            dispatcher = Dispatcher(store, {"ops": build_channel("ops", spec)})
            report = await dispatcher.dispatch_once()
        assert report.sent == 3
        assert len(slack.messages) == 3
        gaps = [b - a for a, b in zip(slack.times, slack.times[1:], strict=False)]
        assert all(gap >= 0.9 for gap in gaps)


class TestRetryCommand:
    def test_retry_dead(self, store: Store) -> None:
        """Dead rows become due again with a fresh attempt count; sent rows are left alone."""
        keys = add(store, 3)
        with store.session() as session:
            session.execute(update(OutboxMessage).values(status="dead", attempts=20))
            session.execute(
                update(OutboxMessage).where(OutboxMessage.key == keys[0]).values(status="sent")
            )
        with store.session() as session:
            assert retry(session, dead=True) == 2
        assert statuses(store) == {"pending": 2, "sent": 1}
        assert {row.attempts for row in rows(store).values() if row.status == "pending"} == {0}
