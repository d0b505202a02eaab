"""The writer: events into issues, states, hourly counts, alert rules and CSP groups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from controltower.ingest import issues
from controltower.ingest.alerts import ErrorAlertRules
from controltower.ingest.csp import parse_csp, store_violations
from controltower.ingest.event import ParsedEvent, parse_event
from controltower.ingest.projects import ensure_projects
from controltower.ingest.writer import write_batch
from controltower.spec import parse_spec
from controltower.spec.server import ProjectSpec
from controltower.store import Store
from controltower.store.models.ingest import ErrorEvent, ErrorIssueHour
from controltower.store.models.notify import OutboxMessage
from controltower.testing import FakeClock

NOW = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)


def error(
    project_id: int,
    kind: str = "ValueError",
    *,
    level: str = "error",
    at: datetime = NOW,
    **extra: Any,
) -> ParsedEvent:
    payload = {
        "level": level,
        "release": extra.pop("release", "1.0"),
        "exception": {
            "values": [
                {
                    "type": kind,
                    "value": "x",
                    "stacktrace": {"frames": [{"module": "app", "function": "f", "in_app": True}]},
                }
            ]
        },
        **extra,
    }
    return parse_event(payload, project_id=project_id, received_at=at)


def project(store: Store, name: str = "web") -> int:
    [found] = [p for p in ensure_projects(store, [ProjectSpec(name=name)]) if p.name == name]
    return found.id


RULES = ErrorAlertRules(channels=["mail"], min_level="error", spike_count=5, spike_window=300)


class TestGrouping:
    def test_events_group_into_issues_with_counts(self, store: Store) -> None:
        """Events with one fingerprint make one issue whose count is their number."""
        pid = project(store)
        result = write_batch(store, [error(pid), error(pid), error(pid, "KeyError")])
        assert result.stored == 3
        assert len(result.new_issues) == 2
        write_batch(store, [error(pid)])
        listed = {item["title"]: item for item in issues.list_issues(store)}
        assert listed["ValueError: x"]["count"] == 3
        assert listed["KeyError: x"]["count"] == 1
        assert listed["ValueError: x"]["status"] == "unresolved"

    def test_resent_event_id_is_stored_once(self, store: Store) -> None:
        """An SDK that re-sends an event (same id) does not duplicate it."""
        pid = project(store)
        event = error(pid, event_id="0" * 31 + "1")
        write_batch(store, [event])
        again = write_batch(store, [event])
        assert again.stored == 0
        with store.session() as session:
            assert session.scalar(select(func.count()).select_from(ErrorEvent)) == 1

    def test_hourly_counts(self, store: Store) -> None:
        """Each issue counts its events per UTC hour."""
        pid = project(store)
        write_batch(store, [error(pid, at=NOW), error(pid, at=NOW + timedelta(minutes=10))])
        write_batch(store, [error(pid, at=NOW + timedelta(hours=1))])
        with store.session() as session:
            rows = session.execute(
                select(ErrorIssueHour.hour, ErrorIssueHour.count).order_by(ErrorIssueHour.hour)
            ).all()
        assert [(hour.hour, count) for hour, count in rows] == [(12, 2), (13, 1)]

    def test_projects_keep_issues_apart(self, store: Store) -> None:
        """The same error in two projects is two issues."""
        web, api = project(store, "web"), project(store, "api")
        result = write_batch(store, [error(web), error(api)])
        assert len(result.new_issues) == 2
        assert [i["project"] for i in issues.list_issues(store, project="api")] == ["api"]


class TestStates:
    def test_resolved_issue_regresses_on_new_event(self, store: Store) -> None:
        """An event after resolving turns the issue regressed (and notifies once)."""
        pid = project(store)
        issue_id = write_batch(store, [error(pid)], RULES).new_issues[0]
        issues.set_status(store, issue_id, "resolve", actor="test")
        assert issues.get_issue(store, issue_id)["status"] == "resolved"
        later = datetime.now(UTC) + timedelta(seconds=1)
        result = write_batch(store, [error(pid, at=later)], RULES)
        assert result.regressed == [issue_id]
        assert issues.get_issue(store, issue_id)["status"] == "regressed"
        with store.session() as session:
            kinds = sorted(session.scalars(select(OutboxMessage.kind)))
        assert kinds == ["error.new", "error.regressed"]

    def test_ignored_stays_ignored(self, store: Store) -> None:
        """An ignored issue is not reopened by new events."""
        pid = project(store)
        issue_id = write_batch(store, [error(pid)]).new_issues[0]
        issues.set_status(store, issue_id, "ignore", actor="test")
        write_batch(store, [error(pid, at=datetime.now(UTC) + timedelta(seconds=1))])
        assert issues.get_issue(store, issue_id)["status"] == "ignored"


class TestAlerts:
    def _outbox(self, store: Store) -> list[tuple[str, str, str]]:
        with store.session() as session:
            return [
                (row.kind, row.channel, row.payload["severity"])
                for row in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
            ]

    def test_new_issue_at_min_level_notifies(self, store: Store) -> None:
        """A new issue at error or above notifies the channels; a warning issue does not."""
        pid = project(store)
        write_batch(store, [error(pid, "A"), error(pid, "B", level="warning")], RULES)
        assert self._outbox(store) == [("error.new", "mail", "warning")]

    def test_spike_notifies_once_per_window(self, store: Store) -> None:
        """N events within M minutes notify a spike, once until the window passes."""
        pid = project(store)
        clock = FakeClock(datetime.now(UTC))
        now = clock.now()
        write_batch(store, [error(pid, at=now) for _ in range(3)], RULES, clock=clock)
        assert [k for k, _, _ in self._outbox(store)] == ["error.new"]
        write_batch(store, [error(pid, at=now) for _ in range(3)], RULES, clock=clock)
        write_batch(store, [error(pid, at=now) for _ in range(3)], RULES, clock=clock)
        assert [k for k, _, _ in self._outbox(store)] == ["error.new", "error.spike"]
        clock.advance(301)
        later = clock.now()
        write_batch(store, [error(pid, at=later) for _ in range(5)], RULES, clock=clock)
        assert [k for k, _, _ in self._outbox(store)] == ["error.new", "error.spike", "error.spike"]

    def test_no_channels_no_notifications(self, store: Store) -> None:
        """Without channels the rules are off."""
        pid = project(store)
        write_batch(store, [error(pid)], ErrorAlertRules())
        assert self._outbox(store) == []

    def test_rules_from_spec_default_to_first_resend_channel(self) -> None:
        """With no channels named, error alerts go to the first resend channel."""
        spec = parse_spec(
            '[service]\nname = "a"\n'
            '[alerts.channels.team]\ntype = "slack"\nurl = "https://hooks.example/x"\n'
            '[alerts.channels.mail]\ntype = "resend"\napi_key = "k"\nfrom = "t@b.c"\nto = ["a@b.c"]\n'
            '[server.error_alerts]\nspike = "3 in 1m"\n',
            environ={},
        )
        rules = ErrorAlertRules.from_spec(spec)
        assert rules.channels == ["mail"]
        assert (rules.spike_count, rules.spike_window) == (3, 60.0)


class TestCsp:
    def test_violations_group_and_count(self, store: Store) -> None:
        """Reports with the same directive and blocked origin count into one group."""
        pid = project(store)
        report = b'{"csp-report": {"effective-directive": "script-src", "blocked-uri": "https://evil.example/a.js"}}'
        for _ in range(3):
            store_violations(store, pid, parse_csp(report), NOW)
        store_violations(store, pid, parse_csp(report.replace(b"script-src", b"img-src")), NOW)
        groups = {(g["directive"], g["blocked_uri"]): g["count"] for g in issues.list_csp(store)}
        assert groups == {
            ("script-src", "https://evil.example"): 3,
            ("img-src", "https://evil.example"): 1,
        }
