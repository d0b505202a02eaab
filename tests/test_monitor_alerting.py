"""Alert rules, incidents and the notifications they enqueue, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from controltower.exceptions import MonitorError
from controltower.monitor import acknowledge, add_silence, expire_silence, get_incident, resolve
from controltower.monitor.alerting import Alerting
from controltower.monitor.probes import CheckOutcome
from controltower.monitor.registry import sync_monitors
from controltower.monitor.results import Pending, ResultWriter
from controltower.spec import Spec
from controltower.store import Store
from controltower.store.models import Incident
from controltower.testing import FakeClock
from tests.monitor_support import outbox, spec_from

BASE = """
[service]
name = "shop"

[alerts]
default_channels = ["ops"]

[alerts.channels.ops]
type = "webhook"
url = "http://127.0.0.1:9/ops"

[alerts.channels.pager]
type = "webhook"
url = "http://127.0.0.1:9/pager"
"""


def monitor_block(name: str, url: str = "http://127.0.0.1:9/", **extra: object) -> str:
    lines = [f'[[monitors]]\nname = "{name}"\nurl = "{url}"']
    for key, value in extra.items():
        key = "for" if key == "for_" else key
        if isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        elif isinstance(value, list):
            lines.append(f"{key} = {json.dumps(value)}")
        elif isinstance(value, dict):
            inner = ", ".join(f'{k} = "{v}"' for k, v in value.items())
            lines.append(f"{key} = {{ {inner} }}")
        else:
            lines.append(f"{key} = {str(value).lower() if isinstance(value, bool) else value}")
    return "\n".join(lines) + "\n"


class Harness:
    """Feeds check outcomes at chosen times and runs alerting passes, no network."""

    def __init__(self, store: Store, spec: Spec, clock: FakeClock) -> None:
        self.store, self.spec, self.clock = store, spec, clock
        self.service, self.ids = sync_monitors(store, spec)
        self.writer = ResultWriter(store)
        self.alerting = Alerting(
            store,
            service_id=self.service,
            service=spec.service.name,
            environment="default",
            monitors=spec.monitors,
            alerts=spec.alerts,
        )
        self.by_name = {m.name: m for m in spec.monitors}

    def check(self, name: str, level: str = "critical", message: str = "") -> None:
        monitor = self.by_name[name]
        outcome = CheckOutcome(name, self.clock.now(), level, 0.01, {}, error=message or level)
        if level == "ok":
            outcome = CheckOutcome(name, self.clock.now(), "ok", 0.01, {})
        self.writer.flush(
            [
                Pending(
                    self.ids[name],
                    outcome,
                    None,
                    monitor.failure_threshold,
                    monitor.success_threshold,
                )
            ]
        )

    def tick(self, seconds: float = 0.0) -> None:
        self.clock.advance(seconds)
        self.alerting.run_pass(self.clock.now())

    def incidents(self) -> list[Incident]:
        with self.store.session() as session:
            return list(session.scalars(select(Incident).order_by(Incident.id)))


def harness(store: Store, text: str) -> Harness:
    return Harness(
        store, spec_from(BASE + text), FakeClock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    )


class TestLifecycle:
    def test_threshold_then_one_firing_notification(self, store: Store) -> None:
        """Failures below the threshold page nobody; reaching it fires once, to the routed channel."""
        h = harness(store, monitor_block("api", failure_threshold=3))
        for _ in range(2):
            h.check("api")
            h.tick(1)
        assert outbox(store) == []
        h.check("api")
        h.tick(1)
        h.check("api")
        h.tick(1)
        rows = outbox(store)
        assert [(r.kind, r.channel) for r in rows] == [("incident.firing", "ops")]
        assert h.incidents()[0].status == "firing"

    def test_recovery_sends_one_resolved(self, store: Store) -> None:
        """A recovered monitor resolves its incident, and the channels hear it once."""
        h = harness(store, monitor_block("api", failure_threshold=1, success_threshold=2))
        h.check("api")
        h.tick(1)
        h.check("api", "ok")
        h.tick(1)
        assert outbox(store, "incident.resolved") == []
        h.check("api", "ok")
        h.tick(1)
        h.tick(1)
        assert [r.channel for r in outbox(store, "incident.resolved")] == ["ops"]
        incident = h.incidents()[0]
        assert incident.status == "resolved" and incident.open_key is None
        kinds = [e.kind for e in get_incident(store, incident.id).timeline]
        assert kinds[0] == "opened" and "firing" in kinds and kinds[-1] == "resolved"

    def test_for_keeps_the_alert_pending(self, store: Store) -> None:
        """With ``for = 60s`` a failing monitor is pending, and a recovery before then pages nobody."""
        h = harness(store, monitor_block("api", failure_threshold=1, for_="60s"))
        h.check("api")
        h.tick(30)
        assert h.incidents()[0].status == "pending"
        h.check("api", "ok")
        h.tick(1)
        assert h.incidents()[0].status == "resolved"
        assert outbox(store) == []

    def test_outage_between_two_passes_is_paged_late(self, store: Store) -> None:
        """A monitor that failed and recovered while no pass ran (the alerting leader
        died and another took over) still opens an incident: firing on the next pass,
        with when it failed, and resolved on the one after."""
        h = harness(store, monitor_block("api", failure_threshold=2))
        h.tick(1)
        for _ in range(3):
            h.check("api")
            h.clock.advance(1)
        h.check("api", "ok")
        h.tick(5)
        [incident] = h.incidents()
        assert incident.status == "firing"
        [firing] = outbox(store, "incident.firing")
        assert "recovered before an alerting pass saw it" in firing.payload["text"]
        h.tick(1)
        assert h.incidents()[0].status == "resolved"
        assert [r.kind for r in outbox(store)] == ["incident.firing", "incident.resolved"]
        h.tick(1)
        assert len(h.incidents()) == 1, "the outage is judged once"

    def test_unseen_outage_shorter_than_for_pages_nobody(self, store: Store) -> None:
        """Judged late, an outage still has to last ``for`` to page."""
        h = harness(store, monitor_block("api", failure_threshold=1, for_="60s"))
        h.check("api")
        h.clock.advance(30)
        h.check("api", "ok")
        h.tick(1)
        assert h.incidents() == [] and outbox(store) == []

    def test_keep_firing_for_absorbs_flapping(self, store: Store) -> None:
        """A flap inside ``keep_firing_for`` stays one incident with one notification."""
        h = harness(store, monitor_block("api", failure_threshold=1, keep_firing_for="5m"))
        h.check("api")
        h.tick(1)
        h.check("api", "ok")
        h.tick(60)
        h.check("api")
        h.tick(60)
        h.check("api", "ok")
        h.tick(60)
        assert len(h.incidents()) == 1 and h.incidents()[0].status == "firing"
        h.tick(300)
        assert h.incidents()[0].status == "resolved"
        assert [r.kind for r in outbox(store)] == ["incident.firing", "incident.resolved"]

    def test_warning_then_critical_notifies_twice(self, store: Store) -> None:
        """One monitor can go warning, then critical: the raise in severity is a new notification."""
        h = harness(store, monitor_block("mem", failure_threshold=1))
        h.check("mem", "warning")
        h.tick(1)
        h.check("mem", "critical")
        h.tick(1)
        h.check("mem", "critical")
        h.tick(1)
        rows = outbox(store, "incident.firing")
        assert [r.payload["severity"] for r in rows] == ["warning", "critical"]
        assert len(h.incidents()) == 1

    def test_passes_are_idempotent(self, store: Store) -> None:
        """Running the same pass again, as a restarted process would, adds no row."""
        h = harness(store, monitor_block("api", failure_threshold=1))
        h.check("api")
        for _ in range(5):
            h.tick(0)
        assert len(outbox(store)) == 1
        fresh = Harness(store, h.spec, h.clock)
        fresh.tick(1)
        assert len(outbox(store)) == 1 and len(h.incidents()) == 1


class TestGroupingAndDependencies:
    def test_one_outage_one_notification(self, store: Store) -> None:
        """Three monitors of one service failing together are one incident and one notification."""
        text = "".join(monitor_block(n, failure_threshold=1) for n in ("a", "b", "c"))
        h = harness(store, text)
        for name in ("a", "b", "c"):
            h.check(name)
        h.tick(1)
        assert len(outbox(store)) == 1
        incident = h.incidents()[0]
        assert sorted(incident.monitors) == ["a", "b", "c"]
        for name in ("a", "b", "c"):
            h.check(name, "ok")
        h.tick(1)
        assert [r.kind for r in outbox(store)] == ["incident.firing", "incident.resolved"]

    def test_group_wait_gathers_late_members(self, store: Store) -> None:
        """With group_wait, a monitor failing a little later joins before anything is sent."""
        text = (
            '[[alerts.routes]]\nchannels = ["ops"]\ngroup_wait = "10s"\n'
            + monitor_block("a", failure_threshold=1)
            + monitor_block("b", failure_threshold=1)
        )
        h = harness(store, text)
        h.check("a")
        h.tick(1)
        assert outbox(store) == []
        h.check("b")
        h.tick(10)
        rows = outbox(store)
        assert len(rows) == 1 and "a" in rows[0].payload["fields"]["monitors"]
        assert "b" in rows[0].payload["fields"]["monitors"]

    def test_group_by_monitor_separates(self, store: Store) -> None:
        """Grouping by monitor gives each monitor its own incident."""
        text = (
            '[[alerts.routes]]\nchannels = ["ops"]\ngroup_by = ["monitor"]\n'
            + monitor_block("a", failure_threshold=1)
            + monitor_block("b", failure_threshold=1)
        )
        h = harness(store, text)
        h.check("a")
        h.check("b")
        h.tick(1)
        assert len(h.incidents()) == 2 and len(outbox(store)) == 2

    def test_dependency_down_suppresses_dependents(self, store: Store) -> None:
        """When the database is down, the app that depends on it does not page separately."""
        text = (
            '[[alerts.routes]]\nchannels = ["ops"]\ngroup_by = ["monitor"]\n'
            + monitor_block("db", failure_threshold=1)
            + monitor_block("app", failure_threshold=2, depends_on=["db"])
        )
        h = harness(store, text)
        h.check("db")
        h.check("app")
        h.tick(1)
        h.check("db")
        h.check("app")
        h.tick(1)
        rows = outbox(store)
        assert len(rows) == 1 and rows[0].payload["fields"]["monitors"] == "db"
        timeline = get_incident(store, h.incidents()[0].id).timeline
        assert any(e.kind == "suppressed" and "app" in e.message for e in timeline)

    def test_dependent_pages_once_dependency_is_back(self, store: Store) -> None:
        """If the app stays down after the database recovers, it then pages on its own."""
        text = (
            '[[alerts.routes]]\nchannels = ["ops"]\ngroup_by = ["monitor"]\n'
            + monitor_block("db", failure_threshold=1)
            + monitor_block("app", failure_threshold=1, depends_on=["db"])
        )
        h = harness(store, text)
        h.check("db")
        h.check("app")
        h.tick(1)
        h.check("db", "ok")
        h.check("app")
        h.tick(1)
        firing = [r.payload["fields"]["monitors"] for r in outbox(store, "incident.firing")]
        assert firing == ["db", "app"]


class TestAckEscalationReminders:
    ROUTE = (
        '[[alerts.routes]]\nmatch = { severity = "critical" }\nchannels = ["ops"]\n'
        'escalate_to = ["pager"]\nescalate_after = "10m"\nrepeat_interval = "30m"\n'
    )

    def test_unacknowledged_critical_escalates(self, store: Store) -> None:
        """Unacknowledged after escalate_after, a critical incident goes to the escalation channel once."""
        h = harness(store, self.ROUTE + monitor_block("api", failure_threshold=1))
        h.check("api")
        h.tick(1)
        h.tick(9 * 60)
        assert outbox(store, "incident.escalated") == []
        h.tick(61)
        h.tick(61)
        rows = outbox(store, "incident.escalated")
        assert [r.channel for r in rows] == ["pager"]
        h.check("api", "ok")
        h.tick(1)
        assert sorted(r.channel for r in outbox(store, "incident.resolved")) == ["ops", "pager"]

    def test_acknowledged_does_not_escalate_or_remind(self, store: Store) -> None:
        """An acknowledged incident neither escalates nor reminds; its resolution still notifies."""
        h = harness(store, self.ROUTE + monitor_block("api", failure_threshold=1))
        h.check("api")
        h.tick(1)
        view = acknowledge(store, h.incidents()[0].id, "ana", clock=h.clock)
        assert view.status == "acknowledged" and view.acknowledged_by == "ana"
        h.tick(3600)
        assert outbox(store, "incident.escalated") == []
        assert outbox(store, "incident.reminder") == []
        h.check("api", "ok")
        h.tick(1)
        assert len(outbox(store, "incident.resolved")) == 1

    def test_reminders_repeat_while_unacknowledged(self, store: Store) -> None:
        """Every repeat_interval an unacknowledged incident reminds each channel it reached, once."""
        h = harness(store, self.ROUTE + monitor_block("api", failure_threshold=1))
        h.check("api")
        h.tick(1)
        for _ in range(3):
            h.tick(30 * 60)
            h.tick(0)
        rows = outbox(store, "incident.reminder")
        assert [r.key for r in rows if r.channel == "ops"] == [
            f"incident:1:reminder:{n}:ops" for n in (1, 2, 3)
        ]
        assert len({r.key for r in rows}) == len(rows)

    def test_manual_resolve_needs_threshold_again(self, store: Store) -> None:
        """Resolved by hand, an incident reopens only when the monitor fails its threshold again."""
        h = harness(store, monitor_block("api", failure_threshold=2))
        h.check("api")
        h.check("api")
        h.tick(1)
        first = h.incidents()[0]
        resolve(store, first.id, "ana", reason="known issue", clock=h.clock)
        h.tick(1)
        assert len(h.incidents()) == 1
        h.check("api")
        h.tick(1)
        assert len(h.incidents()) == 1
        h.check("api")
        h.tick(1)
        assert len(h.incidents()) == 2
        with pytest.raises(MonitorError):
            resolve(store, first.id, "ana")


class TestSilences:
    def test_silence_suppresses_then_expiry_notifies(self, store: Store) -> None:
        """A matching silence holds the notification; expiring it lets the firing one through."""
        h = harness(store, monitor_block("api", failure_threshold=1))
        silence = add_silence(
            store, h.service, {"monitor": "api"}, duration=3600, actor="ana", clock=h.clock
        )
        h.check("api")
        h.tick(1)
        h.tick(60)
        assert outbox(store) == []
        timeline = get_incident(store, h.incidents()[0].id).timeline
        assert any(e.kind == "silenced" for e in timeline)
        expire_silence(store, silence.id, actor="ana", clock=h.clock)
        h.tick(1)
        assert len(outbox(store, "incident.firing")) == 1

    def test_non_matching_silence_does_not_suppress(self, store: Store) -> None:
        """A silence for another monitor leaves this one's notification alone."""
        h = harness(store, monitor_block("api", failure_threshold=1))
        add_silence(store, h.service, {"monitor": "web"}, duration=3600, actor="ana", clock=h.clock)
        h.check("api")
        h.tick(1)
        assert len(outbox(store)) == 1

    def test_maintenance_window_suppresses(self, store: Store) -> None:
        """Inside a weekday maintenance window nothing pages; after it, the incident notifies."""
        window = (
            '[[alerts.maintenance]]\nname = "monday"\nweekdays = ["mon"]\n'
            'start = "11:30"\nduration = "1h"\n'
        )
        h = harness(store, window + monitor_block("api", failure_threshold=1))
        assert h.clock.now().strftime("%a %H:%M") == "Mon 12:00"
        h.check("api")
        h.tick(1)
        assert outbox(store) == []
        h.tick(31 * 60)
        assert len(outbox(store)) == 1
